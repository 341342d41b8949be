"""The money-moving endpoints. Each action hands the request to one service,
with an input serializer to read it by, and renders the result; nothing here
touches a balance.

The door of every money request (hold_views.py's too): its idempotency key
and its body, read by one reader for single movements, batches and holds
alike (MoneyRequest), and the one step that charges the rate limit and lets
the request in (admit). The rules of the key wherever it comes from
(validate_idempotency_key, key_from_header, idempotency_key_of) are
transfers/serializers.py's."""

import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property, partial

from django.conf import settings
from django.http import HttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request

from transfers import locks, selectors, services, statements
from transfers.exceptions import BUSINESS_RULE_ERRORS, BatchFailed
from transfers.filters import TransactionLogFilter
from transfers.models import (
    BatchResult,
    Found,
    MovementResult,
    Payout,
    TransactionLog,
    TransactionStatus,
    is_final,
)
from transfers.serializers import (
    HEADER_KEY_PATTERN,
    IDEMPOTENCY_HEADER,
    BalanceQuerySerializer,
    BatchRequestSerializer,
    BatchResultSerializer,
    MoneyRequestSerializer,
    MovementResultSerializer,
    StatementQuerySerializer,
    StatementSerializer,
    TransactionDetailSerializer,
    TransactionLogSerializer,
    TransferRequestSerializer,
    WalletBalanceSerializer,
    WalletHistoryEntrySerializer,
    batch_result_json,
    idempotency_key_of,
    key_from_header,
    movement_result_json,
)
from transfers.statement_documents import StatementCSVRenderer, StatementPDFRenderer, statement_data
from wallet_project.api import ApiViewSet, EnvelopeCursorPagination, ok, ok_rendered
from wallet_project.db.routers import lag_tolerant_read
from wallet_project.schema import envelope, error
from wallet_project.throttling import READS, REPLAYS, TRANSFERS, ChargedOnLookup, charged_if_malformed
from wallets import selectors as wallet_selectors

# --- The door ---------------------------------------------------------------------------


def read_money_request(request: Request, serializer_class: type[serializers.Serializer]) -> tuple[dict, str]:
    """The validated body of a money request (transfer, deposit, withdrawal,
    batch, hold), without its idempotencyKey field, and the request's
    idempotency key, from the Idempotency-Key header or that field
    (idempotency_key_of: both given and different is an error).

    Raises ValidationError (400) naming every problem with the body and the
    key at once: a client learns in one answer that a batch lacks both its
    key and `atomic`.
    """
    serializer = serializer_class(data=request.data, context={"request": request})
    if serializer.is_valid():
        fields = dict(serializer.validated_data)
        body_key, errors = fields.pop("idempotency_key", None), {}
    else:
        fields, errors = {}, dict(serializer.errors)
        # The key is still read from what was sent, unless its field itself is what is wrong.
        data = request.data if isinstance(request.data, dict) else {}
        body_key = None if "idempotencyKey" in errors else data.get("idempotencyKey")
        if body_key is not None and not isinstance(body_key, str):
            # A serializer that stopped before its fields (an unknown field:
            # RefusesUnknownFields) never read it: what its field would say.
            errors["idempotencyKey"], body_key = [str(serializers.CharField.default_error_messages["invalid"])], None
    header = request.headers.get(IDEMPOTENCY_HEADER)
    try:
        key = idempotency_key_of(header=header, body=body_key)
    except serializers.ValidationError as exc:
        # A key field that is not text (`"idempotencyKey": 5`) was sent: its
        # own error says so, where the reader, not given it, would say
        # "Required". A header's fault is added to it, not put in its place.
        if header is not None or "idempotencyKey" not in errors:
            for field, messages in exc.detail.items():
                errors[field] = [*errors.get(field, []), *messages]
    if errors:
        raise serializers.ValidationError(errors)
    return fields, key


class MoneyRequest:
    """A money request (transfer, deposit, withdrawal, batch, hold) as its view
    reads it: its idempotency key, read once, its body digest, and its
    validated body, read only when the answer needs it.

    The key comes from a well-formed Idempotency-Key header without reading
    the body, so that a byte-identical retry of a finished request can be
    answered from what it made alone (transfers.models.Found.answers_unread);
    otherwise (the key in the body only, or a malformed header) the body is
    read first, by read_money_request. Either way ValidationError (400).
    """

    def __init__(self, request: Request, serializer_class: type[serializers.Serializer]):
        self.request, self.serializer_class = request, serializer_class
        # Before anything parses the body: the digest reads it as sent.
        self.body_digest = _body_digest(request)
        try:
            key = key_from_header(request.headers.get(IDEMPOTENCY_HEADER))
        except serializers.ValidationError:
            # Not ignored: read_money_request reads the header again and
            # reports its fault in one 400 with the body's.
            key = None
        # The header's key when it has one: a body key must then be the same
        # (read_money_request refuses one that differs, when fields() reads it).
        self.key = key if key is not None else self._read[1]

    @cached_property
    def _read(self) -> tuple[dict, str]:
        return read_money_request(self.request, self.serializer_class)

    def fields(self) -> dict:
        """The validated body, but for its key; ValidationError (400) as
        read_money_request."""
        return self._read[0]


def _body_digest(request: Request) -> str:
    """sha256 of the request as sent: its path, content type and body. Two
    requests with the same digest parse and validate alike (the client and
    the key are matched separately)."""
    # The Django request itself: each attribute read through DRF's Request
    # is a Python-level __getattr__ and a failed lookup first.
    django_request = request._request
    path, content_type = django_request.path.encode(), django_request.META.get("CONTENT_TYPE", "").encode()
    digest = hashlib.sha256(
        b"".join((len(path).to_bytes(4, "big"), path, len(content_type).to_bytes(4, "big"), content_type))
    )
    digest.update(django_request.body)
    return digest.hexdigest()


@dataclass(frozen=True)
class Admitted:
    """A money request let in by `admit`, charged: its key, its body digest,
    what the key already names (`found`), and either `unread` (a
    byte-identical retry of a finished request: answer `found.row`) or the
    validated body, but for its key (`fields`, for the service)."""

    key: str
    body_digest: str
    found: Found
    unread: bool
    fields: dict


def _one(_) -> int:
    return 1


@contextmanager
def admit(
    request: Request,
    view: ApiViewSet,
    serializer_class: type[serializers.Serializer],
    find: Callable[..., Found],
    *,
    units: Callable[[dict], int] = _one,
    replay_units: Callable[[Found], int] = _one,
    lock_key: Callable[[str], str] | None = None,
) -> Iterator[Admitted]:
    """Let one money request in (a transfer, a deposit, a withdrawal, a batch,
    a hold placed, captured, voided or extended): read its key once
    (MoneyRequest), look the key up (`find`: services.movement_find,
    services.batch_find, holds.hold_find, or nothing), validate its body
    unless a byte-identical retry of a finished request is answered unread
    (Found.answers_unread), and charge it. The view answers it inside the
    block (`with admit(...) as entry:`).

    The charging rule, for every money request, written here only
    (docs/api.md, "Rate limits"): a request is charged once, before anything
    is locked or stored, so that a 429 leaves its key free:
    - malformed: one unit of new work, whatever its key names
      (wallet_project.throttling.charged_if_malformed, the one rule);
    - under a key whose request is finished (a replay, answered unread or
      read, and a reused key's 422): the `replay` scope (replays),
      `replay_units(found)` units for one answered unread (what the first
      request was charged), else `units(fields)`;
    - anything else (new work, or a key still PENDING): `units(fields)` of
      the `new` scope. A batch is one unit per payout, anything else one.

    First-time work takes the service's idempotency lock in the charge's
    round trip (`lock_key(key)`: the name locks.unit_lock_key gives the lock
    of the request's unit, the one its service takes with
    locks.idempotency_lock; transfers/locks.py, taken_with_charge): one Redis
    round trip for a first-time request. Only once let in: a 429 takes no
    lock. A lock the service does not take over is released when the block
    exits.

    `view` is the ApiViewSet whose action's throttle_scopes entry is
    ChargedOnLookup: DRF let the request past its throttles uncharged, so
    until the charge a client found in the authentication cache is
    unconfirmed (clients/authentication.py); reading the key and `find` only
    read, and the charge's Redis round trip confirms the client.

    Raises ValidationError, ParseError (400) or UnsupportedMediaType (415),
    charged; Throttled (429) over the limit; AuthenticationFailed (401) or
    PermissionDenied (403) if the confirmed client may not."""
    with charged_if_malformed(request, view):
        money = MoneyRequest(request, serializer_class)
    found = find(client=request.user, idempotency_key=money.key)
    if found.answers_unread(money.body_digest):
        view.charge(request, replay=True, units=replay_units(found))
        yield Admitted(money.key, money.body_digest, found, unread=True, fields={})
        return
    with charged_if_malformed(request, view):
        fields = money.fields()
    lock = None
    if lock_key is not None and not found.finished:
        lock = locks.charge_lock(request.user.pk, lock_key(money.key))
    lock_taken = view.charge(request, replay=found.finished, units=units(fields), lock=lock)
    if not lock_taken:  # another request holds it, or Redis did not answer: not ours to release
        lock = None
    with locks.taken_with_charge(lock):
        yield Admitted(money.key, money.body_digest, found, unread=False, fields=fields)


def nothing_found(*, client, idempotency_key: str) -> Found:
    """admit's `find` for a request whose key is looked up by its service
    (a hold's capture or void under its lock, a set's from its holds, an
    extension in the statement that does it): charged as new work."""
    return Found(None)


# --- The money views ---------------------------------------------------------------------

REPLAYED_HEADER = "Idempotent-Replayed"

IDEMPOTENCY_KEY_PARAMETER = OpenApiParameter(
    IDEMPOTENCY_HEADER,
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    required=False,
    pattern=HEADER_KEY_PATTERN,
    description="The idempotency key (or the idempotencyKey body field; if both, they must agree): 1 to 255 "
    "printable ASCII characters, no whitespace at either end, no '.' or '..' between slashes, not starting "
    "with 'reference/' or 'hold:', scoped to the calling client. May be an RFC 8941 string (\"abc\" means abc). Sent "
    "once: a key with a comma, a repeated header or a list is a 400 (a key with a comma goes in the body).",
)

MONEY_RESPONSES = {
    201: OpenApiResponse(envelope(MovementResultSerializer(), "MovementResult"), description="Money moved."),
    200: OpenApiResponse(
        envelope(MovementResultSerializer(), "MovementResult"),
        description="Same key and payload again: the first result, with header Idempotent-Replayed: true.",
    ),
    404: error(
        "Unknown wallet, or another client's (code wallet_not_found, the same answer for both); nothing stored, "
        "the key stays free."
    ),
    409: error("The key is being processed by another request (code idempotency_key_in_use); see Retry-After."),
    422: error(
        "A business rule refused the movement and a FAILED log was stored (codes insufficient_balance, "
        "wallet_inactive, currency_mismatch, balance_limit_exceeded, limit_exceeded, wallet_restricted; data: "
        "the FAILED transaction; replays return the same), or the key was used for a different request (code "
        "idempotency_key_reused, no data).",
        data="MovementResult",
    ),
}


# A money action's rate limit (wallet_project/throttling.py), charged by
# transfers.views.admit: a replay of a finished key costs the service little,
# new work (and a malformed request) more.
MONEY_SCOPES = ChargedOnLookup(new=TRANSFERS, replay=REPLAYS)


def answer_movement(request, view, serializer_class, create: Callable[..., MovementResult]) -> HttpResponse:
    """Answer a single movement request: let it in through the door
    (transfers.views.admit: its key read once, looked up, its body validated,
    charged by the one rule), answer a byte-identical retry unread, else call
    `create` (services.transfer_create, deposit_create or withdrawal_create,
    with the body's fields), and render the result."""
    lock_key = partial(locks.unit_lock_key, locks.Unit.MOVEMENT)
    with admit(request, view, serializer_class, services.movement_find, lock_key=lock_key) as entry:
        client = request.user  # as the charge confirmed it
        if entry.unread:
            return money_response(
                request, services.movement_replay(client=client, idempotency_key=entry.key, found=entry.found)
            )
        return money_response(
            request,
            create(
                client=client,
                idempotency_key=entry.key,
                body_digest=entry.body_digest,
                found=entry.found,
                **entry.fields,
            ),
        )


def money_response(request, result: MovementResult) -> HttpResponse:
    """201 for the request that settled the log, 200 + Idempotent-Replayed for
    a replay; a FAILED log is the same 422 every time. The answer is
    serializers.movement_result_json, rendered to bytes once (wallet_project.api.ok_rendered)."""
    headers = {REPLAYED_HEADER: "true"} if result.replayed else {}
    data = movement_result_json(result)
    # The service returns a FAILED log, it does not raise: the rule's 422 is
    # raised here, with the log as data, for the exception handler's envelope.
    if result.log.status == TransactionStatus.FAILED:
        failure = BUSINESS_RULE_ERRORS[result.log.error_code]
        raise failure(result.log.error_message, data=data, headers=headers)
    return ok_rendered(
        request, data, status=status.HTTP_200_OK if result.replayed else status.HTTP_201_CREATED, headers=headers
    )


class TransferViewSet(ApiViewSet):
    """POST /api/transfer and the log views by idempotency key and by reference."""

    required_permissions = {
        "create": ["transfers.create_transfer"],
        "retrieve": [],
        "by_reference": [],
    }
    throttle_scopes = {"create": MONEY_SCOPES, "retrieve": READS, "by_reference": READS}

    @extend_schema(request=TransferRequestSerializer, parameters=[IDEMPOTENCY_KEY_PARAMETER], responses=MONEY_RESPONSES)
    def create(self, request):
        return answer_movement(request, self, TransferRequestSerializer, services.transfer_create)

    @extend_schema(
        responses={
            200: envelope(TransactionDetailSerializer(), "TransactionDetail"),
            404: error("No transaction of this client has that key (code transaction_not_found)."),
        }
    )
    def retrieve(self, request, idempotency_key: str):
        log = lag_tolerant_read(
            lambda: selectors.log_for_client_key(client=request.user, idempotency_key=idempotency_key),
            fresh_enough=is_final,
        )
        return ok(TransactionDetailSerializer(log, context={"request": request}).data)

    @extend_schema(
        responses={
            200: envelope(TransactionDetailSerializer(), "TransactionDetail"),
            404: error("No visible transaction has that reference (code transaction_not_found)."),
        }
    )
    def by_reference(self, request, reference: str):
        log = lag_tolerant_read(
            lambda: selectors.log_by_reference(viewer=request.user, reference=reference), fresh_enough=is_final
        )
        return ok(TransactionDetailSerializer(log, context={"request": request}).data)


class WalletMoneyViewSet(ApiViewSet):
    """Deposit, withdraw, history, balance as of an instant and statements
    under /api/wallets/{id}/: they move or list money, so they live here,
    beside the service that moves it."""

    lookup_value_converter = "canonical_uuid"
    # Used by the history action only (and by the schema generator).
    queryset = TransactionLog.objects.none()
    serializer_class = TransactionLogSerializer
    filterset_class = TransactionLogFilter
    pagination_class = EnvelopeCursorPagination
    required_permissions = {
        "deposit": ["transfers.create_deposit"],
        "withdraw": ["transfers.create_withdrawal"],
        "transactions": ["wallets.view_wallet"],
        "balance": ["wallets.view_wallet"],
        "statement": ["wallets.view_wallet"],
    }
    throttle_scopes = {
        "deposit": MONEY_SCOPES,
        "withdraw": MONEY_SCOPES,
        "transactions": READS,
        "balance": READS,
        "statement": READS,
    }
    query_parameters = {
        "transactions": ("status", "type", "cursor", "limit"),  # TransactionLogFilter's, the pagination's
        "balance": ("at",),
        "statement": ("from", "to", "format"),
    }

    @extend_schema(request=MoneyRequestSerializer, parameters=[IDEMPOTENCY_KEY_PARAMETER], responses=MONEY_RESPONSES)
    @action(detail=True, methods=["post"])
    def deposit(self, request, pk):
        return answer_movement(request, self, MoneyRequestSerializer, partial(services.deposit_create, wallet_id=pk))

    @extend_schema(request=MoneyRequestSerializer, parameters=[IDEMPOTENCY_KEY_PARAMETER], responses=MONEY_RESPONSES)
    @action(detail=True, methods=["post"])
    def withdraw(self, request, pk):
        return answer_movement(request, self, MoneyRequestSerializer, partial(services.withdrawal_create, wallet_id=pk))

    @extend_schema(
        filters=True,
        responses={
            200: WalletHistoryEntrySerializer(many=True),
            404: error("No such customer wallet (code wallet_not_found)."),
        },
    )
    @action(detail=True, methods=["get"])
    def transactions(self, request, pk):
        # History may lag the primary by DATABASE_REPLICA_MAX_LAG_SECONDS.
        return lag_tolerant_read(lambda: self._history(request, pk))

    @extend_schema(
        parameters=[BalanceQuerySerializer],
        responses={
            200: envelope(WalletBalanceSerializer(), "WalletBalanceAt"),
            400: error("`at` is not an ISO 8601 instant with its offset, or is still to come (named in errors)."),
            404: error("No such customer wallet of this client (code wallet_not_found)."),
        },
    )
    @action(detail=True, methods=["get"])
    def balance(self, request, pk):
        query = BalanceQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        wallet = wallet_selectors.customer_wallet_get(wallet_id=pk, viewer=request.user)
        at = query.validated_data.get("at") or timezone.now()
        balance = statements.balance_at(wallet=wallet, at=at)
        return ok(WalletBalanceSerializer({"wallet": wallet, "at": at, "balance": balance}).data)

    @extend_schema(
        parameters=[StatementQuerySerializer],
        responses={
            (200, "application/json"): envelope(StatementSerializer(), "WalletStatement"),
            (200, "text/csv"): OpenApiTypes.STR,
            (200, "application/pdf"): OpenApiTypes.BINARY,
            400: error(
                "A day that is not YYYY-MM-DD, `to` before `from`, more than STATEMENT_MAX_DAYS days, a `from` "
                "still to come, an unknown format, or more than STATEMENT_MAX_ROWS movements (named in errors)."
            ),
            404: error("No such customer wallet of this client (code wallet_not_found)."),
        },
    )
    @action(detail=True, methods=["get"], renderer_classes=[JSONRenderer, StatementCSVRenderer, StatementPDFRenderer])
    def statement(self, request, pk):
        query = StatementQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        wallet = wallet_selectors.customer_wallet_get(wallet_id=pk, viewer=request.user)
        first_day, last_day = query.validated_data["from"], query.validated_data["to"]
        try:
            statement = statements.statement(wallet=wallet, first_day=first_day, last_day=last_day)
        except statements.StatementTooLong as too_long:
            raise ValidationError({"to": [str(too_long)]}) from None
        response = ok(statement_data(statement))
        document = request.accepted_renderer.format
        if document != "json":
            name = f"statement-{wallet.pk}-{first_day:%Y%m%d}-{last_day:%Y%m%d}.{document}"
            response["Content-Disposition"] = f'attachment; filename="{name}"'
        return response

    def handle_exception(self, exc):
        # An error is JSON in the envelope, whichever document was asked for.
        response = super().handle_exception(exc)
        if not isinstance(getattr(self.request, "accepted_renderer", None), JSONRenderer):
            self.request.accepted_renderer, self.request.accepted_media_type = JSONRenderer(), JSONRenderer.media_type
        return response

    def _history(self, request, pk):
        logs = self.filter_queryset(selectors.wallet_transactions(wallet_id=pk, viewer=request.user))
        page = self.paginate_queryset(logs)
        entries = WalletHistoryEntrySerializer(page, many=True, context={"request": request, "wallet_id": pk})
        return self.get_paginated_response(entries.data)


class BatchViewSet(ApiViewSet):
    """POST /api/transfers/batch and GET /api/transfers/batch/{batchId}."""

    required_permissions = {"create": ["transfers.create_transfer"], "retrieve": []}
    throttle_scopes = {"create": MONEY_SCOPES, "retrieve": READS}

    @property
    def max_body_bytes(self) -> int:
        # Read by the JSON parser: a batch of 1,000 payouts is larger than any single request.
        return settings.BATCH_MAX_BODY_BYTES

    @extend_schema(
        request=BatchRequestSerializer,
        # The batch's own key, read as a transfer's (batch keys are their own namespace).
        parameters=[IDEMPOTENCY_KEY_PARAMETER],
        responses={
            201: OpenApiResponse(
                envelope(BatchResultSerializer(), "BatchResult"),
                description="The batch was settled: its status and each payout's outcome (atomic false: some may "
                "have FAILED, a payout to an unknown wallet with code wallet_not_found and no transaction).",
            ),
            200: OpenApiResponse(
                envelope(BatchResultSerializer(), "BatchResult"),
                description="Same batch key and payload again: the first result, with Idempotent-Replayed: true.",
            ),
            400: error(
                "Malformed batch (nothing stored), every fault in one answer: a field missing or unknown, "
                "empty, too many payouts, a payout key repeated, the source as a destination, no idempotency key "
                "(header or body)."
            ),
            404: error("Unknown source wallet, or another client's (code wallet_not_found); nothing stored."),
            409: error("The batch key is being processed by another request (code idempotency_key_in_use)."),
            422: error(
                "An atomic batch broke a rule at one payout and none moved (code batch_failed, data: the batch, "
                "failedPayoutIndex and errorCode say which and why; replays return the same), or the batch key was "
                "used for another batch, or a payout key for any other transaction (code idempotency_key_reused, "
                "nothing stored; data.payouts names them).",
                data=("BatchResult", "ReusedPayouts"),
                name="BatchError",
            ),
        },
    )
    def create(self, request):
        # One unit per payout: of transfers, or of replays as the first request was charged.
        with admit(
            request,
            self,
            BatchRequestSerializer,
            services.batch_find,
            units=lambda fields: len(fields["transfers"]),
            replay_units=lambda found: found.row.payout_count,
            lock_key=partial(locks.unit_lock_key, locks.Unit.BATCH),
        ) as entry:
            client = request.user  # as the charge confirmed it
            if entry.unread:
                return batch_response(request, services.batch_replay(client=client, found=entry.found))
            fields = entry.fields
            result = services.batch_create(
                client=client,
                idempotency_key=entry.key,
                source_wallet_id=fields["source_wallet_id"],
                atomic=fields["atomic"],
                payouts=tuple(Payout(**payout) for payout in fields["transfers"]),
                body_digest=entry.body_digest,
                found=entry.found,
            )
            return batch_response(request, result)

    @extend_schema(
        responses={
            200: envelope(BatchResultSerializer(), "BatchResult"),
            404: error("No batch of this client has that id (code batch_not_found)."),
        }
    )
    def retrieve(self, request, batch_id):
        batch = selectors.batch_for_client(client=request.user, batch_id=batch_id)
        return ok(BatchResultSerializer(BatchResult(batch, services.batch_outcomes(batch), replayed=False)).data)


def batch_response(request, result: BatchResult) -> HttpResponse:
    """201 for the request that settled the batch, 200 + Idempotent-Replayed
    for a replay; an atomic batch that failed is the same 422 every time.
    The answer is serializers.batch_result_json, rendered to bytes once."""
    headers = {REPLAYED_HEADER: "true"} if result.replayed else {}
    data = batch_result_json(result)
    if result.batch.atomic and result.batch.error_code:
        raise BatchFailed(result.batch.error_message, data=data, headers=headers)
    return ok_rendered(
        request, data, status=status.HTTP_200_OK if result.replayed else status.HTTP_201_CREATED, headers=headers
    )
