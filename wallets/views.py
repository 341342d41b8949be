from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.exceptions import PermissionDenied

from wallet_project.api import ApiViewSet, ok
from wallet_project.schema import UUID_PATTERN, envelope, error
from wallet_project.throttling import READS, TRANSFERS
from wallets import selectors, services
from wallets.models import TierProfile, Wallet
from wallets.serializers import (
    TierListQuerySerializer,
    TierProfileSerializer,
    WalletCreateSerializer,
    WalletLimitsUpdateSerializer,
    WalletListQuerySerializer,
    WalletSerializer,
    WalletWithTodaySerializer,
)


class WalletViewSet(ApiViewSet):
    """Customer wallets. Balances change only through transfers/services.py."""

    serializer_class = WalletSerializer
    queryset = Wallet.objects.none()  # for the schema generator; reads go through selectors
    lookup_value_converter = "canonical_uuid"
    required_permissions = {
        "create": ["wallets.add_wallet"],
        "retrieve": ["wallets.view_wallet"],
        "list": ["wallets.view_wallet"],
        # And set_wallet_tier or restrict_wallet for what the body sets (partial_update).
        "partial_update": ["wallets.view_wallet"],
    }
    # Opening a wallet and setting its limits write: charged as transfers (wallet_project/throttling.py).
    throttle_scopes = {"create": TRANSFERS, "retrieve": READS, "list": READS, "partial_update": TRANSFERS}
    query_parameters = {"list": ("userId",)}

    @extend_schema(
        request=WalletCreateSerializer,
        responses={
            201: envelope(WalletSerializer(), "Wallet"),
            409: error("This client already has a wallet for the user in this currency (code wallet_exists)."),
        },
    )
    def create(self, request):
        payload = WalletCreateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        wallet = services.wallet_create(owner=request.user, **payload.validated_data)
        return ok(WalletSerializer(wallet).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        responses={
            200: envelope(WalletWithTodaySerializer(), "WalletDetail"),
            404: error("No such wallet of this client (code wallet_not_found)."),
        }
    )
    def retrieve(self, request, pk):
        return ok(
            WalletWithTodaySerializer(selectors.customer_wallet_get(wallet_id=pk, viewer=request.user, today=True)).data
        )

    @extend_schema(
        request=WalletLimitsUpdateSerializer,
        responses={
            200: envelope(WalletWithTodaySerializer(), "WalletDetail"),
            400: error("An unknown tier for the wallet's currency, a restriction without a reason (named in errors)."),
            403: error("The client lacks wallets.set_wallet_tier or wallets.restrict_wallet for what it sets."),
            404: error("No such wallet of this client (code wallet_not_found)."),
        },
    )
    def partial_update(self, request, pk):
        """Set the wallet's tier and restrictions (docs/limits.md); an empty
        body changes nothing. Only the owning client: any other wallet is not found."""
        wallet = selectors.owned_wallet_get(wallet_id=pk, owner=request.user)
        payload = WalletLimitsUpdateSerializer(data=request.data, context={"wallet": wallet})
        payload.is_valid(raise_exception=True)
        wanted = payload.validated_data
        needed = []
        if "tier" in wanted:
            needed.append("wallets.set_wallet_tier")
        if "post_no_debit" in wanted or "post_no_credit" in wanted:
            needed.append("wallets.restrict_wallet")
        missing = [perm for perm in needed if not request.user.has_perm(perm)]
        if missing:
            raise PermissionDenied(f"Permission denied: this API client lacks {', '.join(missing)}.")
        wallet = services.wallet_limits_set(
            wallet=wallet,
            changed_by=request.user,
            tier=wanted.get("tier", services.UNCHANGED),
            post_no_debit=wanted.get("post_no_debit"),
            post_no_credit=wanted.get("post_no_credit"),
            reason=wanted.get("reason", ""),
        )
        return ok(WalletWithTodaySerializer(wallet).data)

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "userId",
                OpenApiTypes.UUID,
                required=True,
                pattern=UUID_PATTERN,
                description="The end user's id in the client's own system (a UUID).",
            )
        ],
        responses={
            200: envelope(WalletSerializer(many=True), "WalletList"),
        },
    )
    def list(self, request):
        query = WalletListQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        wallets = selectors.wallets_for_user(viewer=request.user, **query.validated_data)
        return ok(WalletSerializer(wallets, many=True).data)


class TierViewSet(ApiViewSet):
    """GET /api/tiers: the tier profiles a client may give its wallets."""

    serializer_class = TierProfileSerializer
    queryset = TierProfile.objects.none()  # for the schema generator; reads go through selectors
    required_permissions = {"list": ["wallets.view_tierprofile"]}
    throttle_scopes = {"list": READS}
    query_parameters = {"list": ("currency",)}

    @extend_schema(
        parameters=[TierListQuerySerializer],
        responses={
            200: envelope(TierProfileSerializer(many=True), "TierList"),
            400: error("An unsupported currency (named in errors)."),
        },
    )
    def list(self, request):
        query = TierListQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        return ok(TierProfileSerializer(selectors.tiers(**query.validated_data), many=True).data)
