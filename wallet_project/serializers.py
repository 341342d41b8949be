"""The serializer base and fields the apps' serializers share: a cheaper base
for the serializers every money request runs, strict fields, the one
rendering of a timestamp, and the one reader of an instant and of a day."""

import re
from datetime import UTC, date, datetime
from functools import cached_property

from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.fields import SkipField, empty, get_error_detail
from rest_framework.utils.serializer_helpers import BindingDict


class LeanSerializer(serializers.Serializer):
    """A Serializer whose fields are shallow copies of the declared ones.

    DRF deep-copies every declared field for each serializer instance
    (Serializer.get_fields), which runs each field's __init__ again: on the
    request and response serializers of a transfer that was more than half of
    their cost (bench/HISTORY.md). A declared field is an unbound template
    no request changes, so a shallow copy, which bind() then makes this
    instance's own, is enough. For flat serializers only: a nested serializer
    would share its own fields between the copies, so one is refused.

    Built from per-class state (__init__), bound field templates (fields)
    and read without DRF's generic per-field steps (to_internal_value):
    with the body digest's direct reads (transfers/http.py), about 86K
    instructions less per transfer body read (callgrind, 200 reads of the
    bench's transfer body: 857K to 771K).
    """

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        nested = [name for name, f in cls._declared_fields.items() if isinstance(f, serializers.BaseSerializer)]
        if nested:
            raise TypeError(f"{cls.__name__}: LeanSerializer cannot hold nested serializers ({', '.join(nested)})")

    def __init__(self, instance=None, data=empty, **kwargs):
        """DRF's Serializer.__init__; for the per-request call (data and a
        context, nothing else) without re-running Field.__init__, whose
        walk over the class's MRO collecting error messages was the largest
        own cost of reading a transfer's body (cProfile): its result for no
        arguments is built once per class and copied."""
        if not kwargs.keys() <= {"context"}:
            super().__init__(instance, data, **kwargs)
            return
        state = type(self).__dict__.get("_lean_state")
        if state is None:
            prototype = object.__new__(type(self))
            serializers.Serializer.__init__(prototype)
            state = {k: v for k, v in prototype.__dict__.items() if k not in _PER_INSTANCE}
            type(self)._lean_state = state
        self.__dict__.update(state)
        self._creation_counter = serializers.Field._creation_counter
        serializers.Field._creation_counter += 1
        self.style = {}
        self.error_messages = dict(state["error_messages"])
        self.instance = instance
        if data is not empty:
            self.initial_data = data
        self.partial = False
        self._context = kwargs.get("context", {})

    def get_fields(self):
        return {name: _shallow_copy(field) for name, field in self._declared_fields.items()}

    @cached_property
    def fields(self):
        """DRF's BindingDict of this instance's fields, from templates bound
        once per class (field_name, label, source, source_attrs: what bind()
        derives from the name alone), each shallow-copied and given this
        instance as its parent. A subclass with its own get_fields gets DRF's
        path."""
        if type(self).get_fields is not LeanSerializer.get_fields:
            return super().fields
        fields = BindingDict(self)
        for name, template in _bound_templates(type(self)).items():
            field = _shallow_copy(template)
            field.parent = self
            fields.fields[name] = field
        return fields

    def to_internal_value(self, data):
        """DRF's Serializer.to_internal_value for a flat serializer and a JSON
        object (a dict): the same fields in the same order, the same
        validate_<field> methods, the same errors keyed by field name. Left
        out is what such a body never needs: the HTML-form reading of each
        value (Field.get_value), the generator over writable fields, the
        dotted-source walk (set_value), and the SkipField a missing optional
        field without a default raises (Field.validate_empty_values then
        get_default: skipped, required or not partial, with no default). Any
        other data (a QueryDict, not a mapping) goes to DRF's."""
        if type(data) is not dict:
            return super().to_internal_value(data)
        ret, errors = {}, {}
        for field, validate_method in _writable_plan(self):
            primitive_value = data.get(field.field_name, empty)
            if primitive_value is empty and not field.required and field.default is empty:
                continue
            try:
                validated_value = field.run_validation(primitive_value)
                if validate_method is not None:
                    validated_value = validate_method(validated_value)
            except serializers.ValidationError as exc:
                errors[field.field_name] = exc.detail
            except DjangoValidationError as exc:
                errors[field.field_name] = get_error_detail(exc)
            except SkipField:
                pass
            else:
                if len(field.source_attrs) == 1:
                    ret[field.source_attrs[0]] = validated_value
                else:
                    self.set_value(ret, field.source_attrs, validated_value)
        if errors:
            raise serializers.ValidationError(errors)
        return ret

    def run_validators(self, value):
        """DRF's, but for its read-only defaults (Serializer.run_validators
        adds them to what the validators see): built only when the
        serializer has validators at all."""
        if not self.validators:
            return
        super().run_validators(value)


# What DRF's Serializer.__init__ sets from its arguments, or per instance.
_PER_INSTANCE = frozenset({"instance", "initial_data", "partial", "_context", "_creation_counter", "style"})


def _bound_templates(cls: type[LeanSerializer]) -> dict[str, serializers.Field]:
    """A LeanSerializer class's declared fields, each a copy bound to its
    name (with no parent), built once per class."""
    templates = cls.__dict__.get("_lean_templates")
    if templates is None:
        templates = {}
        for name, declared in cls._declared_fields.items():
            template = _shallow_copy(declared)
            template.bind(name, None)
            templates[name] = template
        cls._lean_templates = templates
    return templates


def _writable_plan(serializer: LeanSerializer) -> list[tuple[serializers.Field, object]]:
    """The serializer's writable fields, in order, each with its bound
    validate_<field_name> method or None."""
    plan = serializer.__dict__.get("_lean_plan")
    if plan is None:
        plan = [
            (field, getattr(serializer, "validate_" + field.field_name, None))
            for field in serializer.fields.values()
            if not field.read_only
        ]
        serializer._lean_plan = plan
    return plan


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


@extend_schema_field({"type": "string", "format": "date-time", "example": "2026-12-03T12:00:00+01:00"})
class InstantField(serializers.Field):
    """The one reader of an instant, wherever a client gives one (a query
    parameter, a body field): ISO 8601 with its offset
    (2026-12-03T12:00:00+01:00, or Z for UTC), read as a UTC datetime.

    A time without an offset, or a bare date, names no instant: the reader
    refuses it rather than guess UTC (a client in Lagos who meant its own
    10:00 would be an hour off). An instant that exists in its own offset
    but not in UTC (0001-01-01T00:00:00+01:00 is in year 0) is refused under
    the field's own name, not left to fail when it is written out.
    `up_to_now`: refuse one still to come (the ledger knows nothing of it)."""

    default_error_messages = {
        "invalid": "An ISO 8601 date and time with its offset, such as 2026-12-03T12:00:00+01:00 or "
        "2026-12-03T11:00:00Z.",
        "naive": "Give the time's offset (Z for UTC, +01:00 for Lagos): without one it names no instant.",
        "range": "Out of range: an instant from 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z.",
        "future": "This instant is still to come: ask for one up to now.",
    }

    def __init__(self, *, up_to_now: bool = False, **kwargs):
        self.up_to_now = up_to_now
        super().__init__(**kwargs)

    def to_internal_value(self, data) -> datetime:
        if not isinstance(data, str):
            self.fail("invalid")
        try:
            instant = parse_datetime(data)
        except ValueError:
            instant = None
        if instant is None:
            self.fail("invalid")
        if instant.tzinfo is None:
            self.fail("naive")
        try:
            instant = instant.astimezone(UTC)
        except OverflowError:
            self.fail("range")
        if self.up_to_now and instant > timezone.now():
            self.fail("future")
        return instant

    def to_representation(self, value):
        return timestamp_text(value)


# re.ASCII: \d would also take other scripts' digits, which date() reads too.
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
# A day whose every hour is an instant, in any time zone: the first and the
# last day Python has are partly outside them (Lagos's 0001-01-01 starts in year 0).
FIRST_DAY, LAST_DAY = date(1, 1, 2), date(9999, 12, 30)


@extend_schema_field({"type": "string", "format": "date", "pattern": r"^\d{4}-\d{2}-\d{2}$", "example": "2026-12-03"})
class DayField(serializers.Field):
    """The one reader of a day: ISO 8601's `YYYY-MM-DD` exactly (2026-12-06;
    not 2026-12-6, which strptime would read, nor the basic 20261206 or a
    week date, which date.fromisoformat would), a day that exists, from
    FIRST_DAY to LAST_DAY. Which time zone the day is in is the caller's."""

    default_error_messages = {
        "invalid": "A day that exists, as YYYY-MM-DD, such as 2026-12-03.",
        "range": f"Out of range: a day from {FIRST_DAY} to {LAST_DAY}.",
    }

    def to_internal_value(self, data) -> date:
        if not isinstance(data, str) or not _DAY.fullmatch(data):
            self.fail("invalid")
        try:
            day = date.fromisoformat(data)
        except ValueError:
            self.fail("invalid")
        if not FIRST_DAY <= day <= LAST_DAY:
            self.fail("range")
        return day

    def to_representation(self, value):
        return value.isoformat()
