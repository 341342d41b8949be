from drf_spectacular.utils import extend_schema
from rest_framework import status

from events import outbox, webhooks
from events.models import Event, WebhookEndpoint
from events.serializers import (
    EventListQuerySerializer,
    EventPageSerializer,
    EventSerializer,
    WebhookEndpointCreateSerializer,
    WebhookEndpointSerializer,
    WebhookEndpointWithSecretSerializer,
)
from wallet_project.api import ApiViewSet, EnvelopeCursorPagination, ok
from wallet_project.schema import envelope, error
from wallet_project.throttling import READS, TRANSFERS


class EventViewSet(ApiViewSet):
    """GET /api/events: the calling client's events, oldest first in commit
    order, after a cursor (events/outbox.py says why a late commit is never
    skipped). Any authenticated client reads its own; nobody reads another's."""

    serializer_class = EventSerializer
    # ?type=a&type=b: the events of either type.
    repeatable_query_parameters = ("type",)
    queryset = Event.objects.none()  # for the schema generator; reads go through events.outbox
    required_permissions = {"list": []}
    throttle_scopes = {"list": READS}
    query_parameters = {"list": ("after", "type", "limit")}

    @extend_schema(
        parameters=[EventListQuerySerializer],
        responses={
            200: envelope(EventPageSerializer(), "EventPage"),
            400: error("A malformed cursor, type or limit (the parameter is named in errors)."),
        },
    )
    def list(self, request):
        query = EventListQuerySerializer(data=request.query_params, context={"client": request.user})
        query.is_valid(raise_exception=True)
        wanted = query.validated_data
        after = wanted.get("after")
        page = outbox.client_events(client=request.user, after=after, types=wanted.get("type"), limit=wanted["limit"])
        cursor = outbox.EventCursor.of(page[-1]) if page else after
        next_cursor = cursor.seal(client_id=request.user.pk) if cursor else None
        return ok({"events": EventSerializer(page, many=True).data, "nextCursor": next_cursor})


class WebhookEndpointViewSet(ApiViewSet):
    """The calling client's webhook endpoints: create (the signing secret is
    in that answer only), list (newest first, in pages like every list), delete."""

    serializer_class = WebhookEndpointSerializer
    queryset = WebhookEndpoint.objects.none()  # for the schema generator; reads go through events.webhooks
    pagination_class = EnvelopeCursorPagination
    lookup_value_converter = "canonical_uuid"
    required_permissions = {"create": [], "list": [], "destroy": []}
    throttle_scopes = {"create": TRANSFERS, "list": READS, "destroy": TRANSFERS}
    query_parameters = {"list": ("cursor", "limit")}  # EnvelopeCursorPagination's

    @extend_schema(
        request=WebhookEndpointCreateSerializer,
        responses={
            201: envelope(WebhookEndpointWithSecretSerializer(), "WebhookEndpointWithSecret"),
            400: error(
                "Not an http(s) URL, an address deliveries may not reach, or an unknown event type (named in errors)."
            ),
            409: error(
                "The client has WEBHOOK_MAX_ENDPOINTS_PER_CLIENT endpoints already (code webhook_endpoints_limit)."
            ),
        },
    )
    def create(self, request):
        payload = WebhookEndpointCreateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        endpoint, secret = webhooks.webhook_endpoint_create(client=request.user, **payload.validated_data)
        endpoint.secret = secret
        return ok(WebhookEndpointWithSecretSerializer(endpoint).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses={200: WebhookEndpointSerializer(many=True)})
    def list(self, request):
        page = self.paginate_queryset(webhooks.client_webhook_endpoints(client=request.user))
        return self.get_paginated_response(WebhookEndpointSerializer(page, many=True).data)

    @extend_schema(
        responses={
            200: envelope(WebhookEndpointSerializer(), "WebhookEndpoint"),
            404: error("No such endpoint of this client (code webhook_endpoint_not_found)."),
        }
    )
    def destroy(self, request, pk):
        endpoint = webhooks.webhook_endpoint_delete(client=request.user, endpoint_id=pk)
        return ok(WebhookEndpointSerializer(endpoint).data)
