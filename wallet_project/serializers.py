"""The serializer base and fields the apps' serializers share: a cheaper base
for the serializers every money request runs, strict fields, and the one
rendering of a timestamp."""

from datetime import datetime

from rest_framework import serializers


class LeanSerializer(serializers.Serializer):
    """A Serializer whose fields are shallow copies of the declared ones.

    DRF deep-copies every declared field for each serializer instance
    (Serializer.get_fields), which runs each field's __init__ again: on the
    request and response serializers of a transfer that was more than half of
    their cost (bench/HISTORY.md). A declared field is an unbound template
    no request changes, so a shallow copy, which bind() then makes this
    instance's own, is enough. For flat serializers only: a nested serializer
    would share its own fields between the copies, so one is refused.
    """

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        nested = [name for name, f in cls._declared_fields.items() if isinstance(f, serializers.BaseSerializer)]
        if nested:
            raise TypeError(f"{cls.__name__}: LeanSerializer cannot hold nested serializers ({', '.join(nested)})")

    def get_fields(self):
        return {name: _shallow_copy(field) for name, field in self._declared_fields.items()}


def _shallow_copy(field: serializers.Field) -> serializers.Field:
    """What copy.copy(field) makes, without its generic path through the
    pickle protocol (__reduce_ex__, copyreg): a field is a plain object whose
    state is its __dict__."""
    clone = object.__new__(type(field))
    clone.__dict__.update(field.__dict__)
    return clone


class RefusesUnknownFields:
    """Mixed into an input serializer: a body field it does not declare is a
    400 naming it, not silently ignored (a typo such as "ammount" must not
    look like a request without the field). The OpenAPI schema says the same
    (additionalProperties: false on request bodies, wallet_project/schema.py)."""

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return super().to_internal_value(data)


_TIMESTAMP = serializers.DateTimeField()


def timestamp_text(value: datetime | None) -> str | None:
    """A timestamp as every answer and event shows it: ISO 8601 in UTC with a
    `Z` ("2026-11-30T05:46:47.123456Z"), DRF's DateTimeField rendering, so
    that a hand-written serializer says what the generated ones say. None
    stays None."""
    return None if value is None else _TIMESTAMP.to_representation(value)


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
