"""Serializer fields shared by the apps' input serializers."""

from rest_framework import serializers


class StrictUUIDField(serializers.UUIDField):
    """A UUID given as a string. DRF's UUIDField also reads an integer (and so
    `true`) as UUID(int=n), which would open a wallet for user 00...01."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid", value=data)
        return super().to_internal_value(data)
