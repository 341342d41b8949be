"""The hold services (docs/api.md, "Holds"): place, capture, void, extend,
read and expire holds. Typed, and nothing of HTTP: the views read the
request and call these. The money is the engine's (transfers/engine.py, its
holds section); the idempotency key is read, locked and fingerprinted as a
transfer's (transfers.views.admit, locks.idempotency_lock,
models.canonical_fingerprint).

Placing follows the transfer protocol with one step fewer: the hold row is
inserted with its outcome in the transaction that reserves the money, so
there is no PENDING hold for a crash to leave; a crash before the commit
leaves nothing, and the retry places it.

1. The client's hold under the key: a replay (the same request: answered
   with it, status and all) or IdempotencyKeyReused (another request).
2. The Redis lock on (client, "hold" + key): IdempotencyKeyInUse for a
   concurrent duplicate.
3. The engine places it (engine.place_hold): OPEN, or FAILED with the rule it
   broke; the unique (client, key) constraint decides a race, whose loser
   answers with the winner's hold.

An end (capture, void) or an extension, of one hold or of a set, carries
its own key: the client's, bound to the holds and the request in the
transaction that does it (models.HoldRequestKey). Its retry is answered
with what it did; the key used for another request (another hold, another
set, another amount or action) is IdempotencyKeyReused and changes nothing;
any other end of an ended hold is HoldNotOpen. What the capture path pays
for it: a unique index entry in the statement that ends the hold, no extra
query; the key is looked up only when the hold is not OPEN.
"""

import json
import uuid
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection
from django.utils import timezone

from transfers import engine, locks
from transfers.exceptions import (
    HoldExpiryNotLater,
    HoldNotFound,
    HoldNotOpen,
    IdempotencyKeyInUse,
    IdempotencyKeyReused,
)
from transfers.models import (
    Expiry,
    Found,
    Hold,
    HoldRequestKey,
    HoldStatus,
    Movement,
    TransactionType,
    canonical_fingerprint,
)
from transfers.selectors import VIEW_ALL_TRANSFERS
from transfers.serializers import hold_json
from transfers.services import PAY_OTHER_CLIENTS, TENANCY_RULES, _ensure_wallets
from wallet_project.db.base import fetch, in_model_order


@dataclass(frozen=True)
class HoldResult:
    """The answer to a hold request: the hold, and whether an earlier
    request with the same key had already done what this one asks (a
    replay: 200 with Idempotent-Replayed)."""

    hold: Hold
    replayed: bool


# Every column a hold's answer shows, and what a replay compares; written as
# SQL, as a transfer's lookup is: the ORM's query building cost more than the
# query (bench/instructions.py).
_HOLD_FIELDS = in_model_order(Hold, [*locks.LOCKED_HOLD_FIELDS, "body_digest"])
_SELECT_HOLD = f"SELECT {', '.join(_HOLD_FIELDS)} FROM holds WHERE "  # noqa: S608 (model field names)
_FIND_HOLD = _SELECT_HOLD + "client_id = %s AND idempotency_key = %s"
_OWN_HOLD = _SELECT_HOLD + "id = %s AND client_id = %s"


def _hold_row(statement: str, params) -> Hold | None:
    rows = fetch(connection, statement, params)
    if not rows:
        return None
    hold = Hold.from_db(connection.alias, _HOLD_FIELDS, rows[0])
    if isinstance(hold.metadata, str):
        hold.metadata = json.loads(hold.metadata)
    return hold


def hold_find(*, client: AbstractBaseUser, idempotency_key: str) -> Found:
    """Layer 1 of the protocol: the client's hold under this key, if any (a
    placed hold is never PENDING: found.finished whenever there is one). Give
    it to hold_place to spare a query."""
    return Found(_hold_row(_FIND_HOLD, [client.pk, idempotency_key]))


def hold_place(
    *,
    client: AbstractBaseUser,
    source_wallet_id: uuid.UUID,
    destination_wallet_id: uuid.UUID,
    amount: Decimal,
    expiry: Expiry,
    metadata: dict,
    idempotency_key: str,
    body_digest: str = "",
    found: Found | None = None,
) -> HoldResult:
    """Reserve `amount` (Decimal, 2 places) on the client's customer wallet
    toward `destination_wallet_id` (a customer wallet; another client's only
    with transfers.pay_other_clients), until the expiry, exactly once per
    (client, key): the protocol above. A broken rule is not raised: the hold
    is FAILED (insufficient_balance, wallet_inactive, currency_mismatch,
    balance_limit_exceeded). Raises WalletNotFound (404) naming the side,
    storing nothing; IdempotencyKeyReused (422); IdempotencyKeyInUse (409)."""
    fingerprint = canonical_fingerprint(
        hold=True,
        source=str(source_wallet_id),
        destination=str(destination_wallet_id),
        amount=amount,
        metadata=metadata,
        **expiry.asked(),
    )
    if found is None:
        found = hold_find(client=client, idempotency_key=idempotency_key)
    if found.row is not None:
        return _replay(found.row, fingerprint)
    with locks.idempotency_lock(client.pk, locks.unit_lock_key(locks.Unit.HOLD, idempotency_key)) as lock:
        hold = Hold(
            id=uuid.uuid4(),
            client_id=client.pk,
            idempotency_key=idempotency_key,
            request_fingerprint=fingerprint,
            body_digest=body_digest,
            source_wallet_id=source_wallet_id,
            destination_wallet_id=destination_wallet_id,
            amount=amount,
            expires_at=expiry.instant(timezone.now()),
            metadata=metadata,
        )
        pay_others = client.has_perm(PAY_OTHER_CLIENTS)
        placed = engine.place_hold(
            hold,
            wallets_rule=TENANCY_RULES[TransactionType.TRANSFER],
            rule_params={"client": client.pk, "pay_others": pay_others},
        )
        if placed == "taken":
            return _replay(_hold_row(_FIND_HOLD, [client.pk, idempotency_key]), fingerprint)
        if placed == "not_found":
            movement = Movement.transfer(
                source_wallet_id=source_wallet_id,
                destination_wallet_id=destination_wallet_id,
                amount=amount,
                metadata=metadata,
            )
            _ensure_wallets(movement, client=client, pay_others=pay_others)
            raise RuntimeError("a hold's wallets were refused but found")  # _ensure_wallets raises
        lock.leave_to_expire()
    return HoldResult(hold, replayed=False)


def hold_get(*, viewer: AbstractBaseUser, hold_id: uuid.UUID) -> Hold:
    """A hold its placing client (or an auditor, transfers.view_all_transfers)
    may read; HoldNotFound for an unknown one and another client's alike."""
    hold = Hold.objects.filter(pk=hold_id).first()
    if hold is None or (hold.client_id != viewer.pk and not viewer.has_perm(VIEW_ALL_TRANSFERS)):
        raise HoldNotFound()
    return hold


def hold_capture(
    *, client: AbstractBaseUser, hold_id: uuid.UUID, amount: Decimal | None, idempotency_key: str
) -> HoldResult:
    """Capture the client's OPEN hold: `amount` (default: all of it) moves to
    its destination as a TRANSFER (hold.transaction_id; key `hold:<id>`), the
    rest is released, once. Raises HoldNotFound (404), CaptureExceedsHold
    (422), HoldNotOpen (409: ended, or its expiry came first), a broken
    rule's BusinessRuleViolation (422; the hold stays OPEN),
    IdempotencyKeyReused (422: the client's key did another hold request;
    nothing changed), IdempotencyKeyInUse (409: the key is ending it right
    now)."""
    fingerprint = canonical_fingerprint(end=HoldStatus.CAPTURED, amount=amount)
    end = engine.HoldEnd(
        HoldStatus.CAPTURED, amount=amount, key=idempotency_key, fingerprint=fingerprint, client_id=client.pk
    )
    return _end(client, hold_id, end)


def hold_void(*, client: AbstractBaseUser, hold_id: uuid.UUID, idempotency_key: str) -> HoldResult:
    """Release the client's OPEN hold whole, once. Raises HoldNotFound,
    HoldNotOpen, IdempotencyKeyReused, IdempotencyKeyInUse as hold_capture."""
    fingerprint = canonical_fingerprint(end=HoldStatus.VOIDED)
    end = engine.HoldEnd(HoldStatus.VOIDED, key=idempotency_key, fingerprint=fingerprint, client_id=client.pk)
    return _end(client, hold_id, end)


def hold_void_by_operator(*, hold_id: uuid.UUID, reason: str, voided_by: AbstractBaseUser) -> Hold:
    """Finance voids an OPEN hold from the admin (transfers.void_hold), with
    a reason kept on the hold. Raises ValueError without a reason,
    HoldNotOpen for a hold that is not OPEN (or whose expiry came first)."""
    reason = reason.strip()
    if not reason:
        raise ValueError("Voiding a hold needs a reason.")
    note = f"{voided_by.get_username()}: {reason}"
    hold, ended_now = engine.end_hold(hold_id, engine.HoldEnd(HoldStatus.VOIDED, note=note))
    if not ended_now:
        raise HoldNotOpen(f"The hold is {hold.status}.")
    return hold


def hold_extend(*, client: AbstractBaseUser, hold_id: uuid.UUID, expiry: Expiry, idempotency_key: str) -> HoldResult:
    """Move the client's OPEN hold's expiry later (never earlier; at most
    HOLD_MAX_SECONDS from now, the serializer's bound). A retry of any of its
    extensions' keys is answered again, with the hold as it is now. Raises
    HoldNotFound (404), HoldNotOpen (409: ended, or its expiry came first),
    HoldExpiryNotLater (422), IdempotencyKeyReused (422: the client's key did
    another hold request; nothing changed)."""
    fingerprint = canonical_fingerprint(extend=True, **expiry.asked())
    _own_hold(client, hold_id)
    hold, outcome = engine.extend_hold(
        hold_id, expiry.instant(timezone.now()), key=idempotency_key, fingerprint=fingerprint
    )
    if outcome in ("not_open", "not_later", "key_taken") and _did_this_before(
        client, idempotency_key, fingerprint, [hold_id]
    ):
        return HoldResult(hold, replayed=True)
    if outcome == "key_taken":
        raise IdempotencyKeyReused()
    if outcome == "not_open":
        raise HoldNotOpen(f"The hold is {hold.status}.", data=hold_json(hold, viewer_id=client.pk))
    if outcome == "not_later":
        raise HoldExpiryNotLater(
            f"The hold expires at {hold.expires_at.isoformat()}; an extension must move it later.",
            data=hold_json(hold, viewer_id=client.pk),
        )
    return HoldResult(hold, replayed=outcome == "replayed")


@dataclass(frozen=True)
class HoldSetResult:
    """The answer to ending a set of holds: the holds in the order asked,
    and whether an earlier request with the same key had ended them."""

    holds: list[Hold]
    replayed: bool


def holds_end_set(
    *,
    client: AbstractBaseUser,
    status: HoldStatus,
    amounts: dict[uuid.UUID, Decimal | None],
    idempotency_key: str,
) -> HoldSetResult:
    """Capture (status CAPTURED; `amounts` by hold id, None: all of it) or
    void (VOIDED; amounts all None) a set of the client's holds at once: all
    of them end, or none does (engine.end_holds). The key is the set's: each
    hold keeps it as its end_key, and a retry of the same request is answered
    again. Raises HoldNotFound (404, data: the ids not found, another
    client's among them), CaptureExceedsHold (422), IdempotencyKeyReused
    (422: the key did another hold request, another set among them; nothing
    ended), HoldNotOpen (409, data: the holds that are not OPEN; nothing
    ended), a capture's broken rule (422)."""
    fingerprint = canonical_fingerprint(
        end=status, holds=sorted([str(hold_id), amount and f"{amount:.2f}"] for hold_id, amount in amounts.items())
    )
    found = {hold.pk: hold for hold in Hold.objects.filter(pk__in=list(amounts), client=client)}
    missing = [str(hold_id) for hold_id in amounts if hold_id not in found]
    if missing:
        raise HoldNotFound(f"{len(missing)} of the holds were not found.", data={"holdIds": missing})
    if _ended_by(list(found.values()), idempotency_key, fingerprint):
        return HoldSetResult([found[hold_id] for hold_id in amounts], replayed=True)
    ends = {
        hold_id: engine.HoldEnd(status, amount=amount, key=idempotency_key, fingerprint=fingerprint)
        for hold_id, amount in amounts.items()
    }
    with locks.idempotency_lock(client.pk, locks.unit_lock_key(locks.Unit.HOLD_END, idempotency_key)):
        holds, not_open = engine.end_holds(ends)
    by_id = {hold.pk: hold for hold in holds}
    if not_open:
        if _ended_by(holds, idempotency_key, fingerprint) or _did_this_before(
            client, idempotency_key, fingerprint, list(amounts)
        ):
            # A concurrent duplicate of this request ended them first.
            return HoldSetResult([by_id[hold_id] for hold_id in amounts], replayed=True)
        raise HoldNotOpen(
            f"{len(not_open)} of the holds are not open; none ended.",
            data={"holds": [hold_json(hold, viewer_id=client.pk) for hold in not_open]},
        )
    return HoldSetResult([by_id[hold_id] for hold_id in amounts], replayed=False)


def holds_expire(*, limit: int | None = None) -> int:
    """Expire every OPEN hold whose time has come, in transactions of at
    most HOLD_EXPIRE_BATCH (what the beat task runs). Returns how many."""
    limit = limit or settings.HOLD_EXPIRE_BATCH
    expired = 0
    while True:
        count = engine.expire_due_holds(limit=limit)
        expired += count
        if count < limit:
            return expired


# --- the steps ----------------------------------------------------------------------


def _replay(hold: Hold, fingerprint: str) -> HoldResult:
    if hold.request_fingerprint != fingerprint:
        raise IdempotencyKeyReused()
    return HoldResult(hold, replayed=True)


def _own_hold(client: AbstractBaseUser, hold_id: uuid.UUID) -> Hold:
    """The client's own hold (only its placing client ends or extends it)."""
    hold = _hold_row(_OWN_HOLD, [hold_id, client.pk])
    if hold is None:
        raise HoldNotFound()
    return hold


def _end(client: AbstractBaseUser, hold_id: uuid.UUID, end: "engine.HoldEnd") -> HoldResult:
    """End the client's hold with one request's key. The request takes the
    key's Redis lock first and goes straight to the engine, which reads the
    hold once, under its row lock (whose it is, whether it is OPEN, its
    amount): a first end costs no read before the lock. The lock is left to
    expire once the engine has answered, so a retry within
    TRANSFER_LOCK_TIMEOUT finds it taken and is answered from the hold
    (_answer_taken); a later one reaches the engine, which returns the
    ended hold as it is, and is answered the same (_ended)."""
    try:
        with locks.idempotency_lock(
            client.pk, locks.unit_lock_key(locks.Unit.HOLD_END, end.key, hold_id=hold_id)
        ) as lock:
            hold, ended_now = engine.end_hold(hold_id, end)
            lock.leave_to_expire()
    except IdempotencyKeyInUse as in_use:  # only taking the lock raises it
        return _answer_taken(client, hold_id, end, in_use)
    if ended_now:
        return HoldResult(hold, replayed=False)
    return _ended(client, hold, end)


def _answer_taken(
    client: AbstractBaseUser, hold_id: uuid.UUID, end: "engine.HoldEnd", in_use: IdempotencyKeyInUse
) -> HoldResult:
    """The answer when the key's lock is taken: a retry of the request that
    ended the hold gets what it got (_ended); while the hold is OPEN, a
    request with the key is in flight (or died holding it): `in_use`, 409."""
    hold = _own_hold(client, hold_id)
    if hold.status == HoldStatus.OPEN:
        raise in_use
    return _ended(client, hold, end)


def _ended(client: AbstractBaseUser, hold: Hold, end: "engine.HoldEnd") -> HoldResult:
    """The answer to ending a hold that is not OPEN: a retry of the request
    that ended it gets what it got; the key of another hold request
    IdempotencyKeyReused; anything else HoldNotOpen, with the hold."""
    if _ended_by([hold], end.key, end.fingerprint) or _did_this_before(client, end.key, end.fingerprint, [hold.pk]):
        return HoldResult(hold, replayed=True)
    raise HoldNotOpen(f"The hold is {hold.status}.", data=hold_json(hold, viewer_id=client.pk))


def _ended_by(holds: list[Hold], key: str, fingerprint: str) -> bool:
    """Whether `key` ended these holds with this very request (a replay), read
    on the holds in hand: True when it ended all of them so; False when it
    ended none; IdempotencyKeyReused when it ended some, or with another
    request (another set, amount or action)."""
    ended = [hold for hold in holds if key and hold.end_key == key]
    if not ended:
        return False
    if len(ended) != len(holds) or any(hold.end_fingerprint != fingerprint for hold in ended):
        raise IdempotencyKeyReused()
    return True


def _did_this_before(client: AbstractBaseUser, key: str, fingerprint: str, hold_ids: list[uuid.UUID]) -> bool:
    """Whether the client's hold request `key` did this very request (the same
    fingerprint on the same holds) before: True; False when the key is
    unused; IdempotencyKeyReused when it did another. One query, asked only
    off the happy path (a hold not OPEN, an extension refused)."""
    bound = (
        HoldRequestKey.objects.filter(client=client, idempotency_key=key).values_list("fingerprint", "hold_ids").first()
    )
    if bound is None:
        return False
    if bound[0] != fingerprint or sorted(bound[1]) != sorted(hold_ids):
        raise IdempotencyKeyReused()
    return True
