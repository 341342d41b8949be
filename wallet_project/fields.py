"""Serializer fields shared by the apps' serializers, and the one rendering
of a timestamp."""

from datetime import UTC, datetime

from rest_framework import serializers

_TIMESTAMP = serializers.DateTimeField()


def timestamp_text(value: datetime | None) -> str | None:
    """A timestamp as every answer and event shows it: ISO 8601 in UTC with a
    `Z` ("2026-11-30T05:46:47.123456Z"), DRF's DateTimeField rendering, so
    that a hand-written serializer says what the generated ones say. None
    stays None.

    An aware time (every one the service has: USE_TZ) is written here
    directly, as DRF writes it in the UTC the service runs in: DRF's field
    asks for the current time zone on every call, and a hold's answer and
    its event write four timestamps each; through DRF they made rendering a
    hold (transfers.rendering.hold_json) about three times as slow (timeit
    on the shared bench machine). wallet_project/tests/test_fields.py keeps
    the two the same."""
    if value is None:
        return None
    if value.tzinfo is None:
        return _TIMESTAMP.to_representation(value)
    return value.astimezone(UTC).isoformat()[:-6] + "Z"


class StrictUUIDField(serializers.UUIDField):
    """A UUID given as a string. DRF's UUIDField also reads an integer (and so
    `true`) as UUID(int=n), which would open a wallet for user 00...01."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid", value=data)
        return super().to_internal_value(data)


class StrictCharField(serializers.CharField):
    """Text given as a JSON string. DRF's CharField also reads a number as its
    text: `"idempotencyKey": 123` would be the key "123", the same key as the
    string, and a currency of 840 would be looked up as "840". A number where
    text is asked for is a client's bug, answered 400."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    """true or false, nothing else: DRF's BooleanField also reads "yes", 1 and
    "off", and a payout mode is no place to guess."""

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data
