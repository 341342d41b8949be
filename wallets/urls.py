from rest_framework.routers import SimpleRouter

from wallets.views import TierViewSet, WalletViewSet

router = SimpleRouter(trailing_slash=False, use_regex_path=False)
router.register("wallets", WalletViewSet, basename="wallet")
router.register("tiers", TierViewSet, basename="tier")

urlpatterns = router.urls
