"""The outbox and webhook delivery in the admin, for support staff: what each
client was told, its endpoints and each delivery; send again, enable again."""

from django.contrib import admin, messages
from django.template.loader import render_to_string

from events.models import Event, WebhookDelivery, WebhookEndpoint
from events.webhooks import event_resend, webhook_endpoint_enable
from wallet_project.admin_lists import EstimatedCountPaginator, ReadOnlyAdminMixin, parse_uuid
from wallet_project.db.routers import LagTolerantChangeListMixin


class EventListMixin:
    """What the event and delivery lists share: searched by a whole event id
    (an index lookup), never counted row by row, and the resend permission."""

    event_id_lookup = "pk"
    search_help_text = "An event id (the webhook-id of its deliveries; the whole UUID)."
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER

    def get_search_results(self, request, queryset, search_term):
        if not search_term.strip():
            return queryset, False
        value = parse_uuid(search_term)
        return (queryset.filter(**{self.event_id_lookup: value}) if value else queryset.none()), False

    def has_resend_permission(self, request) -> bool:
        return request.user.has_perm("events.resend_event")


@admin.register(Event)
class EventAdmin(EventListMixin, LagTolerantChangeListMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    """The outbox, read-only: what each client was told. "Send again" queues
    an event to its client's endpoints once more (same webhook-id)."""

    list_display = ("id", "type", "client", "created_at")
    list_select_related = ("client",)
    list_filter = ("type", "client")
    search_fields = ("=id",)
    readonly_fields = ("id", "type", "client", "created_at", "seq", "txid", "data")
    actions = ["send_again"]

    @admin.action(description="Send selected events again to their client's endpoints", permissions=["resend"])
    def send_again(self, request, queryset):
        queued = sum(event_resend(event=event) for event in queryset)
        self.message_user(request, f"{queued} deliveries queued.", messages.SUCCESS)


class RecentDeliveriesMixin:
    RECENT = 20

    @admin.display(description="Recent deliveries")
    def recent_deliveries(self, endpoint):
        deliveries = endpoint.deliveries.select_related("event").order_by("-created_at")[: self.RECENT]
        return render_to_string("admin/events/recent_deliveries.html", {"deliveries": deliveries})


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(RecentDeliveriesMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    """A client's endpoints: whether each works, why one was disabled, its
    recent deliveries. The signing secret is never shown (it is encrypted)."""

    list_display = ("url", "client", "is_active", "failing_since", "disabled_reason", "created_at")
    list_select_related = ("client",)
    list_filter = ("is_active", "client")
    readonly_fields = (
        "id", "client", "url", "event_types", "is_active", "failing_since", "disabled_at", "disabled_reason",
        "created_at", "recent_deliveries",
    )  # fmt: skip
    exclude = ("secret_encrypted", "cursor_txid", "cursor_seq")
    actions = ["enable"]
    has_resend_permission = EventListMixin.has_resend_permission

    @admin.action(description="Enable selected endpoints again", permissions=["resend"])
    def enable(self, request, queryset):
        for endpoint in queryset:
            webhook_endpoint_enable(endpoint=endpoint)
            self.log_change(request, endpoint, "Enabled the endpoint again.")
        self.message_user(request, f"{queryset.count()} endpoint(s) enabled.", messages.SUCCESS)


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(EventListMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    """Each event to each endpoint: attempts, the last status code and error,
    the next attempt. "Send again" queues the selected ones now."""

    list_display = (
        "event", "endpoint", "status", "attempts", "last_status_code", "last_error", "next_attempt_at", "delivered_at",
    )  # fmt: skip
    list_select_related = ("event", "endpoint")
    list_filter = ("status", "endpoint__client")
    search_fields = ("=event__id",)
    event_id_lookup = "event_id"
    readonly_fields = (
        "event", "endpoint", "status", "attempts", "last_attempt_at", "last_status_code", "last_error",
        "next_attempt_at", "delivered_at", "created_at",
    )  # fmt: skip
    exclude = ("lease",)
    actions = ["send_again"]

    @admin.action(description="Send selected deliveries again now", permissions=["resend"])
    def send_again(self, request, queryset):
        queued = sum(event_resend(event=d.event, endpoint=d.endpoint) for d in queryset)
        self.message_user(request, f"{queued} deliveries queued.", messages.SUCCESS)
