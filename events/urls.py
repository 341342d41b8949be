from rest_framework.routers import SimpleRouter

from events.views import EventViewSet, WebhookEndpointViewSet

router = SimpleRouter(trailing_slash=False, use_regex_path=False)
router.register("events", EventViewSet, basename="event")
router.register("webhook-endpoints", WebhookEndpointViewSet, basename="webhook-endpoint")

urlpatterns = router.urls
