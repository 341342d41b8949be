from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from wallet_project.fields import StrictUUIDField
from wallet_project.serializers import RefusesUnknownFields
from wallets.models import Wallet


@extend_schema_field(
    {
        "type": "string",
        "enum": settings.SUPPORTED_CURRENCIES,
        "default": settings.DEFAULT_CURRENCY,
        "description": "ISO 4217 code, one of SUPPORTED_CURRENCIES (lower case is read as upper).",
    }
)
class CurrencyField(serializers.CharField):
    default_error_messages = {"unsupported": "Unsupported currency {value}; supported: {supported}."}

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 3)
        kwargs.setdefault("min_length", 3)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data).upper()
        if value not in settings.SUPPORTED_CURRENCIES:
            self.fail("unsupported", value=value, supported=", ".join(settings.SUPPORTED_CURRENCIES))
        return value


class WalletCreateSerializer(RefusesUnknownFields, serializers.Serializer):
    userId = StrictUUIDField(source="user_id")
    currency = CurrencyField(required=False, default=settings.DEFAULT_CURRENCY)


class WalletListQuerySerializer(serializers.Serializer):
    userId = serializers.UUIDField(source="user_id")


class WalletSerializer(serializers.ModelSerializer):
    userId = serializers.UUIDField(source="user_id", read_only=True)
    isActive = serializers.BooleanField(source="is_active", read_only=True)
    createdAt = serializers.DateTimeField(source="created_at", read_only=True)
    updatedAt = serializers.DateTimeField(source="updated_at", read_only=True)

    class Meta:
        model = Wallet
        fields = ["id", "userId", "currency", "balance", "isActive", "createdAt", "updatedAt"]
        read_only_fields = fields
