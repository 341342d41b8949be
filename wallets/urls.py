from rest_framework.routers import SimpleRouter

from wallets.views import WalletViewSet

router = SimpleRouter(trailing_slash=False, use_regex_path=False)
router.register("wallets", WalletViewSet, basename="wallet")

urlpatterns = router.urls
