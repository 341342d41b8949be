from django.urls import path
from rest_framework.routers import SimpleRouter

from transfers.hold_views import HoldViewSet
from transfers.views import BatchViewSet, TransferViewSet, WalletMoneyViewSet

router = SimpleRouter(trailing_slash=False, use_regex_path=False)
# Same prefix as wallets/urls.py: these routes are /api/wallets/{id}/deposit etc.
router.register("wallets", WalletMoneyViewSet, basename="wallet-money")

urlpatterns = [
    path("transfers/batch", BatchViewSet.as_view({"post": "create"}), name="batch-create"),
    path("transfers/batch/<canonical_uuid:batch_id>", BatchViewSet.as_view({"get": "retrieve"}), name="batch-detail"),
    path("transfer", TransferViewSet.as_view({"post": "create"}), name="transfer-create"),
    # Before the key route: a key may itself contain "/", so order decides.
    path(
        "transfer/reference/<str:reference>",
        TransferViewSet.as_view({"get": "by_reference"}),
        name="transfer-by-reference",
    ),
    path("transfer/<path:idempotency_key>", TransferViewSet.as_view({"get": "retrieve"}), name="transfer-detail"),
    *router.urls,
    # Last: resolving a transfer's path never tries them.
    path("holds", HoldViewSet.as_view({"post": "create"}), name="hold-create"),
    path("holds/capture", HoldViewSet.as_view({"post": "capture_set"}), name="hold-capture-set"),
    path("holds/void", HoldViewSet.as_view({"post": "void_set"}), name="hold-void-set"),
    path("holds/<canonical_uuid:hold_id>", HoldViewSet.as_view({"get": "retrieve"}), name="hold-detail"),
    path("holds/<canonical_uuid:hold_id>/capture", HoldViewSet.as_view({"post": "capture"}), name="hold-capture"),
    path("holds/<canonical_uuid:hold_id>/void", HoldViewSet.as_view({"post": "void"}), name="hold-void"),
    path("holds/<canonical_uuid:hold_id>/extend", HoldViewSet.as_view({"post": "extend"}), name="hold-extend"),
]
