"""A cheaper base for the serializers every money request runs."""

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
