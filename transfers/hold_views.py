"""The hold endpoints (docs/api.md, "Holds"): each money request is let in
through the door of every money request (transfers.views.admit: its key
read once, its body validated, charged by one rule, its lock taken with the
charge), handed to one service of transfers.holds, and its holds rendered
(transfers.serializers.hold_json)."""

from functools import partial

from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import status

from transfers import holds, locks
from transfers.exceptions import BUSINESS_RULE_ERRORS
from transfers.models import HoldStatus
from transfers.serializers import (
    HoldCaptureSerializer,
    HoldCaptureSetSerializer,
    HoldExtendSerializer,
    HoldRequestSerializer,
    HoldSerializer,
    HoldVoidSerializer,
    HoldVoidSetSerializer,
    hold_json,
)
from transfers.views import IDEMPOTENCY_KEY_PARAMETER, MONEY_SCOPES, REPLAYED_HEADER, admit, nothing_found
from wallet_project.api import ApiViewSet, ok
from wallet_project.schema import envelope, error
from wallet_project.throttling import READS

HOLD = envelope(HoldSerializer(), "Hold")
REPLAYED = "Same key and payload again: the first answer, with header Idempotent-Replayed: true."
NOT_FOUND = error("Unknown hold, or another client's (code hold_not_found, the same answer for both).")
NOT_OPEN = error(
    "The hold has ended (captured, voided, expired) or was FAILED (code hold_not_open; data: the hold, saying "
    "how), or the key is being processed by another request (code idempotency_key_in_use, no data).",
    data="Hold",
)
PLACE_RESPONSES = {
    201: OpenApiResponse(HOLD, description="The hold is OPEN: its amount is reserved on the source wallet."),
    200: OpenApiResponse(HOLD, description=REPLAYED),
    400: error("Malformed request; nothing stored."),
    404: error("Unknown wallet, or another client's (code wallet_not_found); nothing stored, the key stays free."),
    409: error("The key is being processed by another request (code idempotency_key_in_use)."),
    422: error(
        "A rule refused the hold and a FAILED hold was stored, reserving nothing (codes insufficient_balance, "
        "wallet_inactive, currency_mismatch, balance_limit_exceeded, limit_exceeded, wallet_restricted; data: the "
        "FAILED hold; replays return the same), or the key was used for a different request (code "
        "idempotency_key_reused, no data).",
        data="Hold",
    ),
}


def end_responses(done: str, refused: OpenApiResponse) -> dict:
    return {
        200: OpenApiResponse(HOLD, description=f"{done} A retry with the same key: the same, Idempotent-Replayed."),
        400: error("Malformed request (no idempotency key, an unknown field); nothing changed."),
        404: NOT_FOUND,
        409: NOT_OPEN,
        422: refused,
    }


CAPTURE_REFUSED = error(
    "A rule refused the capture and the hold is unchanged (capture_exceeds_hold, wallet_inactive, "
    "balance_limit_exceeded), or this key ended the hold with another request (idempotency_key_reused); no data."
)
VOID_REFUSED = error("This key ended the hold with another request (idempotency_key_reused); no data.")
EXTEND_REFUSED = error(
    "The new expiry is not later than the hold's (hold_expiry_not_later; data: the hold, with its expiresAt), or "
    "this key extended the hold with another request (idempotency_key_reused, no data).",
    data="Hold",
)


def hold_response(result: holds.HoldResult, client_id: int, *, created: int = status.HTTP_200_OK):
    """`created` for the request that did it, 200 + Idempotent-Replayed for a
    replay; a FAILED hold is its rule's 422 every time."""
    headers = {REPLAYED_HEADER: "true"} if result.replayed else {}
    data = hold_json(result.hold, viewer_id=client_id)
    if result.hold.status == HoldStatus.FAILED:
        raise BUSINESS_RULE_ERRORS[result.hold.error_code](result.hold.error_message, data=data, headers=headers)
    return ok(data, status=status.HTTP_200_OK if result.replayed else created, headers=headers)


HOLD_SET = envelope(inline_serializer("HoldSet", {"holds": HoldSerializer(many=True)}), "HoldSet")


def set_responses(done: str) -> dict:
    return {
        200: OpenApiResponse(HOLD_SET, description=f"{done} A retry with the same key: the same, Idempotent-Replayed."),
        400: error("Malformed request (no key, an empty set, a hold twice, too many); nothing changed."),
        404: error(
            "A hold unknown or another client's (code hold_not_found; data.holdIds names them); none ended.",
            data="UnknownHolds",
        ),
        409: error("A hold is not open (code hold_not_open; data.holds: those); none ended.", data="HoldSet"),
        422: error(
            "A rule refused a capture (capture_exceeds_hold, wallet_inactive, ...) and none ended, or the key "
            "ended holds with another request (idempotency_key_reused)."
        ),
    }


def hold_set_response(result: holds.HoldSetResult, client_id: int):
    headers = {REPLAYED_HEADER: "true"} if result.replayed else {}
    return ok({"holds": [hold_json(hold, viewer_id=client_id) for hold in result.holds]}, headers=headers)


class HoldViewSet(ApiViewSet):
    """POST /api/holds, GET /api/holds/{id}, POST /api/holds/{id}/capture, /void, /extend."""

    required_permissions = {
        "create": ["transfers.create_transfer"],
        "retrieve": [],
        "capture": ["transfers.create_transfer"],
        "void": ["transfers.create_transfer"],
        "extend": ["transfers.create_transfer"],
        "capture_set": ["transfers.create_transfer"],
        "void_set": ["transfers.create_transfer"],
    }
    throttle_scopes = {
        "create": MONEY_SCOPES,
        "retrieve": READS,
        # Ending a hold, or a set of them, or extending one: charged by
        # transfers.views.admit one unit of transfers whatever the request
        # turns out to be (nothing_found: never a replay's charge, as when
        # DRF charged them before the view).
        "capture": MONEY_SCOPES,
        "void": MONEY_SCOPES,
        "extend": MONEY_SCOPES,
        "capture_set": MONEY_SCOPES,
        "void_set": MONEY_SCOPES,
    }

    @extend_schema(request=HoldRequestSerializer, parameters=[IDEMPOTENCY_KEY_PARAMETER], responses=PLACE_RESPONSES)
    def create(self, request):
        with admit(
            request,
            self,
            HoldRequestSerializer,
            holds.hold_find,
            lock_key=partial(locks.unit_lock_key, locks.Unit.HOLD),
        ) as entry:
            client = request.user  # as the charge confirmed it
            if entry.unread:
                return hold_response(holds.HoldResult(entry.found.row, replayed=True), client.pk)
            result = holds.hold_place(
                client=client,
                idempotency_key=entry.key,
                body_digest=entry.body_digest,
                found=entry.found,
                **entry.fields,
            )
            return hold_response(result, client.pk, created=status.HTTP_201_CREATED)

    def _admit_end(self, request, serializer, hold_id):
        """The door (transfers.views.admit) for a capture or a void of one hold:
        its key takes the lock of that hold's end (locks.Unit.HOLD_END)."""
        return admit(
            request,
            self,
            serializer,
            nothing_found,
            lock_key=partial(locks.unit_lock_key, locks.Unit.HOLD_END, hold_id=hold_id),
        )

    @extend_schema(responses={200: HOLD, 404: NOT_FOUND})
    def retrieve(self, request, hold_id):
        return ok(hold_json(holds.hold_get(viewer=request.user, hold_id=hold_id), viewer_id=request.user.pk))

    @extend_schema(
        operation_id="holds_capture",
        request=HoldCaptureSerializer,
        parameters=[IDEMPOTENCY_KEY_PARAMETER],
        responses=end_responses(
            "CAPTURED: the amount moved as a TRANSFER (transactionId), the rest released.", CAPTURE_REFUSED
        ),
    )
    def capture(self, request, hold_id):
        with self._admit_end(request, HoldCaptureSerializer, hold_id) as entry:
            result = holds.hold_capture(
                client=request.user, hold_id=hold_id, amount=entry.fields["amount"], idempotency_key=entry.key
            )
            return hold_response(result, request.user.pk)

    @extend_schema(
        operation_id="holds_void",
        request=HoldVoidSerializer,
        parameters=[IDEMPOTENCY_KEY_PARAMETER],
        responses=end_responses("VOIDED: all of it released.", VOID_REFUSED),
    )
    def void(self, request, hold_id):
        with self._admit_end(request, HoldVoidSerializer, hold_id) as entry:
            result = holds.hold_void(client=request.user, hold_id=hold_id, idempotency_key=entry.key)
            return hold_response(result, request.user.pk)

    @extend_schema(
        operation_id="holds_extend",
        request=HoldExtendSerializer,
        parameters=[IDEMPOTENCY_KEY_PARAMETER],
        responses=end_responses("OPEN, expiring at the new expiresAt.", EXTEND_REFUSED),
    )
    def extend(self, request, hold_id):
        # No Redis lock: the extension's statement binds the key (holds.hold_extend).
        with admit(request, self, HoldExtendSerializer, nothing_found) as entry:
            result = holds.hold_extend(
                client=request.user, hold_id=hold_id, expiry=entry.fields["expiry"], idempotency_key=entry.key
            )
            return hold_response(result, request.user.pk)

    @extend_schema(
        operation_id="holds_capture_set",
        request=HoldCaptureSetSerializer,
        parameters=[IDEMPOTENCY_KEY_PARAMETER],
        responses=set_responses("Every hold CAPTURED, each amount moved as its own TRANSFER."),
    )
    def capture_set(self, request):
        return self._end_set(request, HoldCaptureSetSerializer, HoldStatus.CAPTURED)

    @extend_schema(
        operation_id="holds_void_set",
        request=HoldVoidSetSerializer,
        parameters=[IDEMPOTENCY_KEY_PARAMETER],
        responses=set_responses("Every hold VOIDED."),
    )
    def void_set(self, request):
        return self._end_set(request, HoldVoidSetSerializer, HoldStatus.VOIDED)

    def _end_set(self, request, serializer_class, end: HoldStatus):
        # Charged as ending one hold (nothing_found: one unit of transfers,
        # whatever the key names). The service answers a replay, or refuses
        # an unknown hold, from the holds before it locks the key: the
        # charge's lock is then released as admit's block exits. Redis round
        # trips (transfers/tests/test_round_trips.py pins them): a first-time
        # set 2 (the charge with the lock, its release) where DRF's charge
        # before the view made it 3; a replay 2 where it was 1.
        lock_key = partial(locks.unit_lock_key, locks.Unit.HOLD_END)
        with admit(request, self, serializer_class, nothing_found, lock_key=lock_key) as entry:
            # A void's holds carry no amount: None, all of it (holds.holds_end_set).
            amounts = {item["hold_id"]: item.get("amount") for item in entry.fields["holds"]}
            result = holds.holds_end_set(client=request.user, status=end, amounts=amounts, idempotency_key=entry.key)
            return hold_set_response(result, request.user.pk)
