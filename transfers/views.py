"""The money-moving endpoints. Each action hands the request to one service,
with an input serializer to read it by, and renders the result; nothing here
touches a balance."""

import hashlib
from collections.abc import Callable
from functools import cache, partial

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from transfers import selectors, services
from transfers.exceptions import BUSINESS_RULE_ERRORS
from transfers.filters import TransactionLogFilter
from transfers.models import REFERENCE_FORMAT, TransactionLog, TransactionStatus
from transfers.serializers import (
    IDEMPOTENCY_HEADER,
    MoneyRequestSerializer,
    TransactionLogSerializer,
    TransferRequestSerializer,
    TransferResultSerializer,
    validate_idempotency_key,
)
from transfers.services import Movement, TransferResult
from wallet_project.db.routers import lag_tolerant_read
from wallet_project.responses import EnvelopeCursorPagination, ok
from wallet_project.schema import envelope, error
from wallet_project.throttling import CHARGED_BY_SERVICE, movement_admission
from wallets.selectors import customer_wallet_get

REPLAYED_HEADER = "Idempotent-Replayed"

IDEMPOTENCY_KEY_PARAMETER = OpenApiParameter(
    IDEMPOTENCY_HEADER,
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    required=False,
    description="The idempotency key (or the idempotencyKey body field; if both, they must agree). "
    "At most 255 printable characters, scoped to the calling client.",
)

MONEY_RESPONSES = {
    201: OpenApiResponse(envelope(TransferResultSerializer(), "TransferCompleted"), description="Money moved."),
    200: OpenApiResponse(
        envelope(TransferResultSerializer(), "TransferReplayed"),
        description="Same key and payload again: the first result, with header Idempotent-Replayed: true.",
    ),
    404: error("Unknown wallet (code wallet_not_found); nothing stored, the key stays free."),
    409: error("The key is being processed by another request (code idempotency_key_in_use); see Retry-After."),
    422: error(
        "A business rule refused the movement and a FAILED log was stored (codes insufficient_balance, "
        "wallet_inactive, currency_mismatch, balance_limit_exceeded; replays return the same), or the key was used "
        "for a different "
        "request (code idempotency_key_reused)."
    ),
}


def money_request(request, view, serializer_class, movement_of: Callable[..., Movement]) -> Response:
    """Answer a money-moving request (services.money_request_answer).

    With a well-formed Idempotency-Key header the service looks the key up
    before the body is read, so a byte-identical retry of a finished request
    is answered without parsing or validating it again; otherwise (the key in
    the body only, or a malformed header, which validation then reports) the
    body is read first."""
    admit = movement_admission(request, view)

    @cache
    def read() -> tuple[str, Movement]:
        payload = validated(serializer_class, request, admit)
        # With a header too, the same key: validation refuses a body key that differs.
        key = payload.pop("idempotency_key")
        return key, movement_of(**payload)

    # Before anything parses the body: the digest reads it as sent.
    digest = request_digest(request)
    result = services.money_request_answer(
        client=request.user,
        idempotency_key=_header_key(request) or read()[0],
        read_movement=lambda: read()[1],
        request_digest=digest,
        admit=admit,
    )
    return money_response(result)


def _header_key(request) -> str | None:
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is None:
        return None
    try:
        return validate_idempotency_key(key)
    except ValidationError:
        return None


def request_digest(request) -> str:
    """sha256 of the request as sent: its path, content type and body. Two
    requests with the same digest parse and validate alike (the client and
    the key are matched separately)."""
    digest = hashlib.sha256()
    for part in (request.path.encode(), request.META.get("CONTENT_TYPE", "").encode()):
        digest.update(len(part).to_bytes(4, "big"))
        digest.update(part)
    digest.update(request.body)
    return digest.hexdigest()


def validated(serializer_class, request, admit: services.Admission) -> dict:
    """The request's validated payload. A malformed one never reaches the
    protocol, which charges the others to the rate limits, so it is charged
    here, as new work, before the 400."""
    payload = serializer_class(data=request.data, context={"request": request})
    if not payload.is_valid():
        admit(False)
        raise ValidationError(payload.errors)
    return payload.validated_data


def money_response(result: TransferResult) -> Response:
    """201 for the request that settled the log, 200 + Idempotent-Replayed for
    a replay; a FAILED log is the same 422 every time."""
    headers = {REPLAYED_HEADER: "true"} if result.replayed else {}
    data = TransferResultSerializer(result).data
    if result.log.status == TransactionStatus.FAILED:
        failure = BUSINESS_RULE_ERRORS[result.log.error_code]
        raise failure(result.log.error_message, data=data, headers=headers)
    return ok(data, status=status.HTTP_200_OK if result.replayed else status.HTTP_201_CREATED, headers=headers)


def is_finished(log: TransactionLog) -> bool:
    """A replica's copy of a log may be read once it is final; a PENDING one
    may be settling on the primary right now."""
    return log.status != TransactionStatus.PENDING


class TransferViewSet(viewsets.GenericViewSet):
    """POST /api/transfer and the log views by idempotency key and by reference."""

    required_permissions = {
        "create": ["transfers.create_transfer"],
        "retrieve": [],
        "by_reference": [],
    }
    # A new transfer or a replay: the service knows which (throttling.py).
    throttle_scopes = {"create": CHARGED_BY_SERVICE}

    @extend_schema(request=TransferRequestSerializer, parameters=[IDEMPOTENCY_KEY_PARAMETER], responses=MONEY_RESPONSES)
    def create(self, request):
        return money_request(request, self, TransferRequestSerializer, Movement.transfer)

    @extend_schema(
        responses={
            200: envelope(TransactionLogSerializer(), "TransactionByKey"),
            404: error("No transaction of this client has that key (code transaction_not_found)."),
        }
    )
    def retrieve(self, request, idempotency_key: str):
        log = lag_tolerant_read(
            lambda: selectors.log_for_client_key(client=request.user, idempotency_key=idempotency_key),
            fresh_enough=is_finished,
        )
        return ok(TransactionLogSerializer(log, context={"request": request}).data)

    @extend_schema(
        responses={
            200: envelope(TransactionLogSerializer(), "TransactionByReference"),
            404: error("No visible transaction has that reference (code transaction_not_found)."),
        }
    )
    def by_reference(self, request, reference: str):
        if not REFERENCE_FORMAT.fullmatch(reference):
            # Not a reference: an idempotency key that happens to start with
            # "reference/" (keys may hold "/"), so look it up as one.
            return self.retrieve(request, idempotency_key=f"reference/{reference}")
        log = lag_tolerant_read(
            lambda: selectors.log_by_reference(viewer=request.user, reference=reference), fresh_enough=is_finished
        )
        return ok(TransactionLogSerializer(log, context={"request": request}).data)


class WalletMoneyViewSet(viewsets.GenericViewSet):
    """Deposit, withdraw and history under /api/wallets/{id}/: they move or
    list money, so they live here, beside the service that moves it."""

    lookup_value_converter = "uuid"
    # Used by the history action only (and by the schema generator).
    queryset = TransactionLog.objects.none()
    serializer_class = TransactionLogSerializer
    filterset_class = TransactionLogFilter
    pagination_class = EnvelopeCursorPagination
    required_permissions = {
        "deposit": ["transfers.create_deposit"],
        "withdraw": ["transfers.create_withdrawal"],
        "transactions": ["wallets.view_wallet"],
    }
    throttle_scopes = {"deposit": CHARGED_BY_SERVICE, "withdraw": CHARGED_BY_SERVICE}

    @extend_schema(request=MoneyRequestSerializer, parameters=[IDEMPOTENCY_KEY_PARAMETER], responses=MONEY_RESPONSES)
    @action(detail=True, methods=["post"])
    def deposit(self, request, pk):
        return money_request(request, self, MoneyRequestSerializer, partial(Movement.deposit, wallet_id=pk))

    @extend_schema(request=MoneyRequestSerializer, parameters=[IDEMPOTENCY_KEY_PARAMETER], responses=MONEY_RESPONSES)
    @action(detail=True, methods=["post"])
    def withdraw(self, request, pk):
        return money_request(request, self, MoneyRequestSerializer, partial(Movement.withdrawal, wallet_id=pk))

    @extend_schema(
        filters=True,
        responses={
            200: TransactionLogSerializer(many=True),
            404: error("No such customer wallet (code wallet_not_found)."),
        },
    )
    @action(detail=True, methods=["get"])
    def transactions(self, request, pk):
        # History may lag the primary by DATABASE_REPLICA_MAX_LAG_SECONDS.
        return lag_tolerant_read(lambda: self._history(request, pk))

    def _history(self, request, pk):
        customer_wallet_get(wallet_id=pk)
        logs = self.filter_queryset(selectors.wallet_transactions(wallet_id=pk))
        page = self.paginate_queryset(logs)
        return self.get_paginated_response(TransactionLogSerializer(page, many=True, context={"request": request}).data)
