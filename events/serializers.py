import re
from urllib.parse import urlsplit

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from events import webhook_addresses
from events.models import EventType, WebhookEndpoint
from events.outbox import EventCursor, current_horizon
from events.webhook_addresses import Unresolvable, UnsafeAddress, resolve_allowed
from wallet_project.api import RefusesUnknownFields, StrictIntegerField


class EventSerializer(serializers.Serializer):
    """An event as GET /api/events lists it and a webhook delivers it: `data`
    is the transaction or wallet as the API showed it to this client when
    the change committed."""

    id = serializers.UUIDField()
    type = serializers.ChoiceField(choices=EventType.choices)
    createdAt = serializers.DateTimeField(source="created_at")
    data = serializers.JSONField()


# What the schema promises is a cursor: EventCursor's sealed form, 43
# base64url characters (events/outbox.py), so the schema admits what the
# API wrote and refuses what it never could have.
@extend_schema_field(
    {"type": "string", "pattern": r"^[A-Za-z0-9_-]{43}$", "example": "kzMRilWirL2b5zFSvVHMuA0XrAt8c0HOR5kRmE8L1Iw"}
)
class EventCursorField(serializers.CharField):
    pass


class EventListQuerySerializer(serializers.Serializer):
    """GET /api/events: ?after=<cursor>&type=<type>[&type=...]&limit=."""

    after = EventCursorField(required=False, help_text="The nextCursor of the previous page.")
    type = serializers.ListField(child=serializers.ChoiceField(choices=EventType.choices), required=False)
    limit = StrictIntegerField(required=False, min_value=1, max_value=500, default=100)

    def to_internal_value(self, data):
        # A QueryDict: `type` may repeat, the others may not.
        for name in ("after", "limit"):
            if len(data.getlist(name)) > 1:
                raise serializers.ValidationError({name: ["Given once."]})
        values = {name: data[name] for name in ("after", "limit") if name in data}
        if "type" in data:
            values["type"] = data.getlist("type")
        attrs = super().to_internal_value(values)
        if "after" in attrs:
            attrs["after"] = self._position(attrs["after"])
        return attrs

    def _position(self, text: str) -> EventCursor:
        """The position a cursor holds, if it is one this API wrote for the
        calling client (context["client"]) and no further than the events that
        exist: a client must never poll in silence past a position that a
        corrupted cursor, or one from before a database restore, names."""
        cursor = EventCursor.unseal(text, client_id=self.context["client"].pk)
        if cursor is None:
            raise serializers.ValidationError(
                {"after": ["Not a cursor this API wrote for you: pass the nextCursor of a previous page, or none."]}
            )
        # Every cursor the API writes is below the horizon it read the events
        # under, and the horizon only rises (events/outbox.py).
        if cursor.txid >= current_horizon():
            raise serializers.ValidationError(
                {"after": ["Beyond the events that exist (a database restore?): start again without a cursor."]}
            )
        return cursor


_MALFORMED_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")


@extend_schema_field(
    {
        "type": "string",
        "format": "uri",
        "maxLength": 2000,
        # What is always accepted: http(s), a DNS host name (as Django's
        # URLValidator reads one), an optional port, path and query. A public
        # IP address is accepted too, but whether an address is public is
        # decided at registration (events/webhook_addresses.py), which a
        # pattern cannot state: the description says it.
        "pattern": r"^[Hh][Tt][Tt][Pp][Ss]?://([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.){1,8}[A-Za-z]{2,63}"
        r"(:[1-9][0-9]{0,3})?(/([A-Za-z0-9._~!$&'()*+,;=:@-]|%[0-9A-Fa-f]{2})*)*"
        r"(\?([A-Za-z0-9._~!$&'()*+,;=:@/?-]|%[0-9A-Fa-f]{2})*)?$",
        "description": "Where deliveries go: http or https, a host name (or a public IP address: one that "
        "resolves to a private, loopback or link-local address is refused), an optional port, path and "
        "query; no user name, password or fragment. At most 2,000 printable ASCII characters.",
        "example": "https://hooks.example.com/wallet-events",
    }
)
class WebhookUrlField(serializers.URLField):
    """An http(s) URL with a host that resolves to addresses deliveries may
    reach (events/webhook_addresses.py), checked again at each delivery on
    the addresses it resolves to then. A name that does not resolve yet is
    accepted: its deliveries fail until it does."""

    default_error_messages = {
        "scheme": "Only http and https URLs.",
        "characters": "Only printable ASCII characters: percent-encode any other in the path or query "
        "(RFC 3986), and write an international host name in its xn-- form.",
        "credentials": "A webhook URL carries no user name or password (deliveries are signed instead): "
        "leave them out.",
        "fragment": "A URL fragment (#...) is never sent to the receiver: leave it out.",
        "percent": "A '%' in a URL starts an encoded byte, two hexadecimal digits (%2F): write a '%' itself as %25.",
    }

    def to_internal_value(self, data):
        # The length first and alone: past it, "Enter a valid URL." (Django's
        # URLValidator has its own bound) would be told beside it.
        if isinstance(data, str) and self.max_length is not None and len(data) > self.max_length:
            self.fail("max_length", max_length=self.max_length)
        url = super().to_internal_value(data)
        # What goes on the request line as it is: a character outside printable
        # ASCII cannot be sent there (http.client refuses it), and a URL that
        # cannot be sent crashed every delivery attempt instead of failing it.
        if not all("!" <= char <= "~" for char in url):
            self.fail("characters")
        # RFC 3986: a URL the receiver's server could not decode would be
        # stored, and shown back, as if it were one (the schema says "uri").
        if _MALFORMED_PERCENT.search(url):
            self.fail("percent")
        parts = urlsplit(url)
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            self.fail("scheme")
        if parts.username or parts.password:
            self.fail("credentials")
        if parts.fragment or url.endswith("#"):
            self.fail("fragment")
        try:
            port = parts.port  # ValueError past 65535
        except ValueError:
            self.fail("invalid")
        if port == 0:
            self.fail("invalid")
        scheme = parts.scheme.lower()
        try:
            resolve_allowed(
                parts.hostname,
                port or (443 if scheme == "https" else 80),
                timeout=webhook_addresses.LOOKUP_SECONDS,
                lookups=webhook_addresses.REGISTRATION_LOOKUPS,
            )
        except Unresolvable:
            pass
        except UnsafeAddress as refused:
            raise serializers.ValidationError(str(refused), code="invalid") from None
        # Schemes are case-insensitive (RFC 3986): stored in lower case, as the
        # database's CHECK on the scheme expects ("HTTP://..." was a 500).
        return parts._replace(scheme=scheme).geturl()


class WebhookEndpointCreateSerializer(RefusesUnknownFields, serializers.Serializer):
    url = WebhookUrlField(max_length=2000)
    eventTypes = serializers.ListField(
        source="event_types", child=serializers.ChoiceField(choices=EventType.choices), min_length=1, max_length=20
    )


class WebhookEndpointSerializer(serializers.ModelSerializer):
    """An endpoint as its client sees it; never the secret."""

    eventTypes = serializers.ListField(
        source="event_types", child=serializers.ChoiceField(choices=EventType.choices, read_only=True)
    )
    isActive = serializers.BooleanField(source="is_active")
    disabledAt = serializers.DateTimeField(source="disabled_at", allow_null=True)
    disabledReason = serializers.CharField(source="disabled_reason")
    failingSince = serializers.DateTimeField(source="failing_since", allow_null=True)
    lastAttemptAt = serializers.DateTimeField(
        source="last_attempt_at", allow_null=True, help_text="When a delivery to it was last attempted."
    )
    lastStatusCode = serializers.IntegerField(
        source="last_status_code", allow_null=True, help_text="What the receiver answered then (null: no answer)."
    )
    lastError = serializers.CharField(
        source="last_error",
        help_text="Why that attempt failed (empty when it succeeded); never an address the host resolved to.",
    )
    createdAt = serializers.DateTimeField(source="created_at")

    class Meta:
        model = WebhookEndpoint
        fields = [
            *("id", "url", "eventTypes", "isActive", "disabledAt", "disabledReason", "failingSince"),
            *("lastAttemptAt", "lastStatusCode", "lastError", "createdAt"),
        ]
        read_only_fields = fields


class WebhookEndpointWithSecretSerializer(WebhookEndpointSerializer):
    """The answer to POST /api/webhook-endpoints: the only time the signing secret is shown."""

    secret = serializers.CharField(help_text="The signing secret (whsec_...), shown this once.")

    class Meta(WebhookEndpointSerializer.Meta):
        fields = [*WebhookEndpointSerializer.Meta.fields, "secret"]
        read_only_fields = fields


class EventPageSerializer(serializers.Serializer):
    """One page of GET /api/events (for the schema)."""

    events = EventSerializer(many=True)
    nextCursor = serializers.CharField(
        allow_null=True, help_text="Pass as ?after= for the next page; the same cursor again when nothing is new."
    )
