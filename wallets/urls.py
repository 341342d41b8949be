from rest_framework.routers import SimpleRouter

from wallets.views import EventViewSet, TierViewSet, WalletViewSet, WebhookEndpointViewSet

router = SimpleRouter(trailing_slash=False, use_regex_path=False)
router.register("wallets", WalletViewSet, basename="wallet")
router.register("tiers", TierViewSet, basename="tier")
router.register("events", EventViewSet, basename="event")
router.register("webhook-endpoints", WebhookEndpointViewSet, basename="webhook-endpoint")

urlpatterns = router.urls
