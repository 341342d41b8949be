from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from wallet_project.api import RefusesUnknownFields, StrictBooleanField, StrictCharField, StrictUUIDField
from wallets import selectors
from wallets.models import UNRESTRICTED, TierProfile, Wallet


@extend_schema_field(
    {
        "type": "string",
        "enum": settings.SUPPORTED_CURRENCIES,
        "default": settings.DEFAULT_CURRENCY,
        "description": "ISO 4217 code, one of SUPPORTED_CURRENCIES (lower case is read as upper).",
    }
)
class CurrencyField(StrictCharField):
    """An ISO 4217 code as the client wrote it: three ASCII letters, lower
    case read as upper. Nothing around it is trimmed (" gbp " is not GBP),
    and no other script is upper-cased into one: str.upper() makes "uſd"
    (a long s) "USD" and "ı" (dotless i) "I"."""

    default_error_messages = {
        "not_a_code": "An ISO 4217 code: three letters A to Z, such as NGN.",
        "unsupported": "Unsupported currency {value}; supported: {supported}.",
    }

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 3)
        kwargs.setdefault("min_length", 3)
        kwargs.setdefault("trim_whitespace", False)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if not (value.isascii() and value.isalpha()):
            self.fail("not_a_code")
        value = value.upper()
        if value not in settings.SUPPORTED_CURRENCIES:
            self.fail("unsupported", value=value, supported=", ".join(settings.SUPPORTED_CURRENCIES))
        return value


class WalletCreateSerializer(RefusesUnknownFields, serializers.Serializer):
    userId = StrictUUIDField(source="user_id")
    currency = CurrencyField(required=False, default=settings.DEFAULT_CURRENCY)


class WalletListQuerySerializer(serializers.Serializer):
    userId = StrictUUIDField(source="user_id")


class WalletSerializer(serializers.ModelSerializer):
    userId = serializers.UUIDField(source="user_id", read_only=True)
    isActive = serializers.BooleanField(source="is_active", read_only=True)
    tier = serializers.SerializerMethodField(help_text="The wallet's KYC tier (GET /api/tiers); unrestricted: none.")
    postNoDebit = serializers.BooleanField(source="post_no_debit", read_only=True)
    postNoCredit = serializers.BooleanField(source="post_no_credit", read_only=True)
    restrictionReason = serializers.CharField(source="restriction_reason", read_only=True)
    createdAt = serializers.DateTimeField(source="created_at", read_only=True)
    updatedAt = serializers.DateTimeField(source="updated_at", read_only=True)
    # docs/api.md, "Holds": balance is what is posted, held what open holds
    # reserve, available what the wallet may spend.
    held = serializers.DecimalField(max_digits=20, decimal_places=2, read_only=True)
    available = serializers.DecimalField(max_digits=21, decimal_places=2, read_only=True)

    class Meta:
        model = Wallet
        fields = [
            "id", "userId", "currency", "balance", "held", "available", "isActive", "tier", "postNoDebit",
            "postNoCredit", "restrictionReason", "createdAt", "updatedAt",
        ]  # fmt: skip
        read_only_fields = fields

    def get_tier(self, wallet: Wallet) -> str:
        return wallet.tier.name if wallet.tier_id is not None else UNRESTRICTED


def _amount(value) -> str | None:
    return None if value is None else f"{value:.2f}"


class WalletTodaySerializer(serializers.Serializer):
    """What a wallet has left today (GET /api/wallets/{id}): `day` the
    business day (BUSINESS_TIME_ZONE); what it sent and received in it; the
    room left under its tier's daily caps and balance cap (null: no cap)."""

    day = serializers.DateField()
    debits = serializers.DecimalField(max_digits=20, decimal_places=2)
    credits = serializers.DecimalField(max_digits=20, decimal_places=2)
    debitsLeft = serializers.DecimalField(max_digits=20, decimal_places=2, allow_null=True, source="debits_left")
    creditsLeft = serializers.DecimalField(max_digits=20, decimal_places=2, allow_null=True, source="credits_left")
    balanceRoom = serializers.DecimalField(max_digits=20, decimal_places=2, allow_null=True, source="balance_room")


class WalletWithTodaySerializer(WalletSerializer):
    """A wallet as GET /api/wallets/{id} shows it: with what is left today."""

    today = serializers.SerializerMethodField()

    class Meta(WalletSerializer.Meta):
        fields = [*WalletSerializer.Meta.fields, "today"]
        read_only_fields = fields

    @extend_schema_field(WalletTodaySerializer)
    def get_today(self, wallet: Wallet) -> dict:
        return WalletTodaySerializer(selectors.wallet_today(wallet=wallet)).data


class TierProfileSerializer(serializers.ModelSerializer):
    """A tier as GET /api/tiers lists it: each cap a decimal string, or null for none."""

    maxSingleCredit = serializers.DecimalField(
        max_digits=20, decimal_places=2, source="max_single_credit", allow_null=True
    )
    maxSingleDebit = serializers.DecimalField(
        max_digits=20, decimal_places=2, source="max_single_debit", allow_null=True
    )
    maxDailyCredits = serializers.DecimalField(
        max_digits=20, decimal_places=2, source="max_daily_credits", allow_null=True
    )
    maxDailyDebits = serializers.DecimalField(
        max_digits=20, decimal_places=2, source="max_daily_debits", allow_null=True
    )
    maxBalance = serializers.DecimalField(max_digits=20, decimal_places=2, source="max_balance", allow_null=True)

    class Meta:
        model = TierProfile
        fields = [
            "name", "currency", "description", "maxSingleCredit", "maxSingleDebit", "maxDailyCredits",
            "maxDailyDebits", "maxBalance",
        ]  # fmt: skip
        read_only_fields = fields


class TierListQuerySerializer(serializers.Serializer):
    currency = CurrencyField(required=False, default=None)

    def validate(self, attrs):
        # DRF reads an empty optional query parameter as absent; `?currency=` is a mistake to name.
        if self.initial_data.get("currency") == "":
            raise serializers.ValidationError({"currency": ["Name a currency, or leave the parameter out."]})
        return attrs


class WalletLimitsUpdateSerializer(RefusesUnknownFields, serializers.Serializer):
    """PATCH /api/wallets/{id}: any of the wallet's tier (a name GET
    /api/tiers lists for its currency) and restrictions; `reason` is
    required to set a restriction on."""

    tier = StrictCharField(required=False, max_length=64)
    postNoDebit = StrictBooleanField(required=False, source="post_no_debit")
    postNoCredit = StrictBooleanField(required=False, source="post_no_credit")
    reason = StrictCharField(required=False, allow_blank=True, max_length=500)

    def validate_tier(self, name: str) -> TierProfile | None:
        currency = self.context["wallet"].currency
        if name == UNRESTRICTED and not TierProfile.objects.filter(currency=currency, name=name).exists():
            return None
        try:
            return TierProfile.objects.get(currency=currency, name=name)
        except TierProfile.DoesNotExist:
            raise serializers.ValidationError(
                f"No tier {name!r} in {currency}: GET /api/tiers?currency={currency} lists them."
            ) from None

    def validate(self, attrs):
        if (attrs.get("post_no_debit") or attrs.get("post_no_credit")) and not attrs.get("reason", "").strip():
            raise serializers.ValidationError({"reason": ["Say why, to set a restriction."]})
        return attrs
