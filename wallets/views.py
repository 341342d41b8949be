from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status, viewsets

from wallet_project.responses import ok
from wallet_project.schema import UUID_PATTERN, envelope, error
from wallets import selectors, services
from wallets.models import Wallet
from wallets.serializers import WalletCreateSerializer, WalletListQuerySerializer, WalletSerializer


class WalletViewSet(viewsets.GenericViewSet):
    """Customer wallets. Balances change only through transfers/services.py."""

    serializer_class = WalletSerializer
    queryset = Wallet.objects.none()  # for the schema generator; reads go through selectors
    lookup_value_converter = "uuid"
    required_permissions = {
        "create": ["wallets.add_wallet"],
        "retrieve": ["wallets.view_wallet"],
        "list": ["wallets.view_wallet"],
    }

    @extend_schema(
        request=WalletCreateSerializer,
        responses={
            201: envelope(WalletSerializer(), "WalletCreated"),
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
            200: envelope(WalletSerializer(), "WalletDetail"),
            404: error("No such wallet of this client (code wallet_not_found)."),
        }
    )
    def retrieve(self, request, pk):
        return ok(WalletSerializer(selectors.customer_wallet_get(wallet_id=pk, viewer=request.user)).data)

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
            200: {
                "type": "object",
                "required": ["success", "data"],
                "properties": {
                    "success": {"type": "boolean", "enum": [True]},
                    "data": {"type": "array", "items": {"$ref": "#/components/schemas/Wallet"}},
                },
            }
        },
    )
    def list(self, request):
        query = WalletListQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        wallets = selectors.wallets_for_user(viewer=request.user, **query.validated_data)
        return ok(WalletSerializer(wallets, many=True).data)
