"""Where money moves: the typed services every caller uses (the API, the
admin, reconciliation, the tests), and the protocol around the engine
(transfers/engine.py), which settles. Nothing else changes a balance.

The protocol's layers (docs/design.md, "The protocol: five layers"; the
comments below number these layers, not that guide's "The steps"):

1. Look up the transaction of (client, idempotency key). A finished one is
   replayed (without even reading the request, when it is byte for byte the
   one that made it); one for a different movement is refused
   (IdempotencyKeyReused).
2. Take the Redis lock on (client, key): concurrent duplicates get
   IdempotencyKeyInUse. Skipped if Redis is down; never relied on. Once the
   log is finished, layer 1 answers the key, so the lock is left to expire.
3. Commit a PENDING transaction. The unique constraint on (client, key) is
   the real guard against a duplicate: losing that race means using the
   winner's.
4. Settle it through the engine (transfers/engine.py): in one database
   transaction, lock its row, then the wallets in primary-key order, then
   the exposure and daily-debits rows it changes (transfers/locks.py); if it
   is still PENDING, decide it by the rules and apply the decision: the
   money moved and COMPLETED, or FAILED. Deadlocks and serialization
   failures are retried a bounded number of times.
5. Reconciliation settles what a crash left PENDING, through the same step.

Guarantee: however requests, retries, crashes and reconciliation interleave,
a transaction moves money at most once, and a PENDING one has moved none (its
status and both balance changes commit together).

Words (transfers/models.py): a movement request asks for a movement under
an idempotency key; the service records it as a transaction, a row of
transaction_logs (`log` in code).
"""

import json
import logging
import time
import uuid
from decimal import Decimal
from enum import StrEnum

from django.contrib.auth.models import AbstractBaseUser
from django.db import DEFAULT_DB_ALIAS, connection, transaction
from django.utils import timezone
from psycopg.types.json import Jsonb

from transfers import engine, locks, telemetry
from transfers.exceptions import (
    IdempotencyKeyInUse,
    IdempotencyKeyReused,
    ReversalNotAllowed,
)
from transfers.models import (
    BatchRequest,
    BatchResult,
    BatchStatus,
    Found,
    Movement,
    MovementResult,
    Payout,
    PayoutOutcome,
    TransactionLog,
    TransactionStatus,
    TransactionType,
    TransferBatch,
    canonical_fingerprint,
    new_reference,
    new_references,
)
from wallet_project.db.base import fetch, from_row, in_model_order
from wallets.exceptions import WalletNotFound
from wallets.models import Wallet, WalletKind
from wallets.selectors import owned_wallets
from wallets.services import settlement_wallet_get_or_create, suspense_wallet_get_or_create

logger = logging.getLogger(__name__)


# --- public services -------------------------------------------------------------


def movement_find(*, client: AbstractBaseUser, idempotency_key: str) -> Found:
    """Layer 1 of the protocol (docs/design.md, "The protocol: five
    layers"): the client's transaction under this key, if any, with what
    answering a replay needs (one SELECT, no lock). A caller that charges a rate
    limit charges a request whose transaction is finished (found.finished)
    as a replay, anything else as new work; a byte-identical retry
    (found.answers_unread) it may answer with movement_replay unread. Give
    it to the service it calls (transfer_create, ...) to spare a query."""
    return Found(_find_log(client, idempotency_key))


def movement_replay(*, client: AbstractBaseUser, idempotency_key: str, found: Found) -> MovementResult:
    """The answer to a retry of the finished transaction `found` names, from
    it: for a request that is answered unread (found.answers_unread). No
    query. ValueError if `found` is not finished (the caller's mistake)."""
    if not found.finished:
        raise ValueError("only a finished transaction is replayed")
    result = MovementResult(log=found.row, replayed=True)
    telemetry.movement_answered(
        client=client, idempotency_key=idempotency_key, log=found.row, replayed=True, seconds=None
    )
    return result


def transfer_create(
    *,
    client: AbstractBaseUser,
    source_wallet_id: uuid.UUID,
    destination_wallet_id: uuid.UUID,
    amount: Decimal,
    idempotency_key: str,
    metadata: dict,
    body_digest: str = "",
    found: Found | None = None,
) -> MovementResult:
    """Move `amount` (Decimal, 2 places) from one customer wallet to another,
    exactly once per key: movement_answer."""
    movement = Movement.transfer(
        source_wallet_id=source_wallet_id, destination_wallet_id=destination_wallet_id, amount=amount, metadata=metadata
    )
    return movement_answer(
        client=client, idempotency_key=idempotency_key, movement=movement, body_digest=body_digest, found=found
    )


def deposit_create(
    *,
    client: AbstractBaseUser,
    wallet_id: uuid.UUID,
    amount: Decimal,
    idempotency_key: str,
    metadata: dict,
    body_digest: str = "",
    found: Found | None = None,
) -> MovementResult:
    """Move money in: from the currency's settlement wallet to a customer
    wallet, exactly once per key: movement_answer."""
    movement = Movement.deposit(wallet_id=wallet_id, amount=amount, metadata=metadata)
    return movement_answer(
        client=client, idempotency_key=idempotency_key, movement=movement, body_digest=body_digest, found=found
    )


def withdrawal_create(
    *,
    client: AbstractBaseUser,
    wallet_id: uuid.UUID,
    amount: Decimal,
    idempotency_key: str,
    metadata: dict,
    body_digest: str = "",
    found: Found | None = None,
) -> MovementResult:
    """Move money out: from a customer wallet to the currency's settlement
    wallet, exactly once per key: movement_answer."""
    movement = Movement.withdrawal(wallet_id=wallet_id, amount=amount, metadata=metadata)
    return movement_answer(
        client=client, idempotency_key=idempotency_key, movement=movement, body_digest=body_digest, found=found
    )


def movement_answer(
    *,
    client: AbstractBaseUser,
    idempotency_key: str,
    movement: Movement,
    body_digest: str = "",
    found: Found | None = None,
) -> MovementResult:
    """Answer a request for `movement` exactly once per (client, idempotency
    key): the protocol above. `found` is layer 1's answer if the caller has
    it (movement_find), else it is looked up here. `body_digest`: sha256 of
    the request's bytes when it came through the API (stored with a new
    transaction, for Found.answers_unread), else "".

    Returns the transaction, replayed=True when an earlier request had
    finished it. Raises IdempotencyKeyInUse (409) or IdempotencyKeyReused
    (422), and WalletNotFound (404) before anything is stored. A business
    rule broken is not raised: it is a FAILED transaction in the result.
    """
    started = time.perf_counter()
    if found is None:
        found = movement_find(client=client, idempotency_key=idempotency_key)
    try:
        result = _answer(client, idempotency_key, movement, body_digest, found.row)
    except (IdempotencyKeyInUse, IdempotencyKeyReused) as refusal:
        telemetry.key_refused(
            client=client, movement=movement, idempotency_key=idempotency_key, code=refusal.default_code
        )
        raise
    telemetry.movement_answered(
        client=client,
        idempotency_key=idempotency_key,
        log=result.log,
        replayed=result.replayed,
        seconds=time.perf_counter() - started,
    )
    return result


def transaction_settle(*, log_id: uuid.UUID, skip_locked: bool = False) -> tuple[TransactionLog | None, bool]:
    """Settle a PENDING log: move the money and mark it COMPLETED, or mark it
    FAILED with the business rule it broke (the engine, transfers/engine.py).
    Returns (log, settled_now).

    Safe to call any number of times, concurrently, from a client retry, the
    reconciliation task or an admin action: the log row lock serialises the
    callers and only the one that finds it PENDING acts (settled_now=True).
    With skip_locked (reconciliation), a log another caller is settling right
    now is left to it: the result is (None, False). A batch's payout settles
    with its batch (batch_settle), so that an atomic batch never completes
    one of them alone.
    """
    log, settled_now = engine.settle_log(log_id=log_id, skip_locked=skip_locked)
    if log is None or log.batch_id is None or log.status != TransactionStatus.PENDING:
        return log, settled_now
    batch, settled_now = batch_settle(batch_id=log.batch_id, skip_locked=skip_locked)
    if batch is None:
        return None, False
    return TransactionLog.objects.get(pk=log_id), settled_now


REVERSAL_TYPE = {
    TransactionType.TRANSFER: TransactionType.TRANSFER,
    TransactionType.DEPOSIT: TransactionType.WITHDRAWAL,
    TransactionType.WITHDRAWAL: TransactionType.DEPOSIT,
}


def transaction_reverse(*, log_id: uuid.UUID, reason: str, reversed_by: AbstractBaseUser) -> TransactionLog:
    """Undo a COMPLETED movement: a compensating log moves the amount back and
    the original becomes REVERSED, in one transaction. Returns the compensating log.

    Its own transaction, or the caller's when called inside one: the
    corrections app applies an approved reversal this way, holding its
    request's row lock until the reversal commits with the request's new
    status (corrections/services.py; nothing else calls it outside tests).

    At most once: the original's row lock and status check serialise
    concurrent attempts, and reversal_of is unique in the database. A
    compensating log is not itself reversible. The engine posts it as a
    correction (engine.settle_correction): frozen wallets do not block it,
    the other rules do: InsufficientBalance when the wallet that received
    the original no longer holds the money, LimitExceeded,
    BalanceLimitExceeded. ReversalNotAllowed for anything but a COMPLETED
    original movement.
    """
    reason = reason.strip()
    if not reason:
        raise ValueError("A reversal needs a reason.")
    with transaction.atomic():
        original = locks.lock_log(log_id)
        if original.status != TransactionStatus.COMPLETED:
            raise ReversalNotAllowed(f"{original.reference} is {original.status}; only COMPLETED can be reversed.")
        if original.reversal_of_id is not None:
            # Undoing an undo would re-apply the original under a new log:
            # make a new, deliberate movement instead.
            raise ReversalNotAllowed(f"{original.reference} is itself a reversal and cannot be reversed.")
        # Money flows back: the original destination pays.
        compensation = TransactionLog(
            client=reversed_by,
            idempotency_key=f"reversal:{original.pk}",
            movement_fingerprint=canonical_fingerprint(reversal_of=str(original.pk)),
            type=REVERSAL_TYPE[original.type],
            source_wallet_id=original.destination_wallet_id,
            destination_wallet_id=original.source_wallet_id,
            amount=original.amount,
            currency=original.currency,
            metadata={"reversalOf": original.reference, "reason": reason, "reversedBy": reversed_by.get_username()},
            reversal_of=original,
        )
        engine.settle_correction(compensation, reverses=original)
        transaction.on_commit(
            lambda: telemetry.reversal_done(original=original, compensation=compensation, reversed_by=reversed_by)
        )
    return compensation


class AdjustmentDirection(StrEnum):
    """Which way a manual adjustment moves a customer wallet's balance."""

    CREDIT = "CREDIT"  # suspense -> customer: a DEPOSIT log
    DEBIT = "DEBIT"  # customer -> suspense: a WITHDRAWAL log


def adjustment_post(
    *,
    correction_id: uuid.UUID,
    wallet_id: uuid.UUID,
    direction: AdjustmentDirection,
    amount: Decimal,
    reason: str,
    ticket: str,
    requested_by: AbstractBaseUser,
    approved_by: AbstractBaseUser | None,
) -> TransactionLog:
    """A manual adjustment: move `amount` (Decimal, 2 places, > 0) between a
    customer wallet and its currency's suspense wallet (docs/design.md,
    "Corrections"). Returns its COMPLETED log: a DEPOSIT for a CREDIT (from
    suspense), a WITHDRAWAL for a DEBIT (to suspense), with the reason,
    ticket and both people in its metadata, and its event
    (deposit.completed, withdrawal.completed) for the wallet's owner.

    Only corrections.services calls it, inside its transaction, once the
    request is approved (or is below the single-approval threshold). At most
    once per correction: the log's key is `adjustment:<correction id>` under
    the requester, and (client, key) is unique in the database, so a second
    posting of one correction fails with IntegrityError and rolls back.
    Raises WalletNotFound for a wallet that is not a customer wallet, and
    engine.settle_correction's rule errors (InsufficientBalance for a debit the
    wallet cannot cover, LimitExceeded, BalanceLimitExceeded).
    """
    if amount <= 0:
        raise ValueError("An adjustment moves a positive amount.")
    customer = Wallet.objects.filter(pk=wallet_id, kind=WalletKind.CUSTOMER).only("currency").first()
    if customer is None:
        raise WalletNotFound()
    suspense = suspense_wallet_get_or_create(currency=customer.currency)
    credit = direction == AdjustmentDirection.CREDIT
    log = TransactionLog(
        client=requested_by,
        idempotency_key=f"adjustment:{correction_id}",
        movement_fingerprint=canonical_fingerprint(adjustment=str(correction_id)),
        type=TransactionType.DEPOSIT if credit else TransactionType.WITHDRAWAL,
        source_wallet_id=suspense.pk if credit else customer.pk,
        destination_wallet_id=customer.pk if credit else suspense.pk,
        amount=amount,
        currency=customer.currency,
        metadata={
            "adjustment": direction.value,
            "reason": reason,
            "ticket": ticket,
            "correctionId": str(correction_id),
            "requestedBy": requested_by.get_username(),
            "approvedBy": approved_by.get_username() if approved_by else None,
        },
    )
    engine.settle_correction(log)
    return log


# --- the protocol ------------------------------------------------------------------
#
# The statements a transfer runs on every request are written as SQL: building
# them through the ORM cost more CPU than everything else a transfer does
# (bench/README.md). The row locks are in locks.py, the settle step's
# statements in engine.py. All of them run through wallet_project.db.base's
# fetch and run, on its statement_cursor.

# Every field an answer from a found log reads (serializers.movement_result_json,
# telemetry.movement_answered, Found's comparisons): one more read there must
# be added here, or each replay pays a deferred field's query
# (transfers/tests/test_round_trips.py counts them).
_FOUND_LOG_FIELDS = in_model_order(
    TransactionLog,
    [
        "movement_fingerprint", "body_digest", "type", "status", "amount", "reference", "currency", "error_code",
        "error_message",
    ],
)  # fmt: skip
_FIND_LOG = (
    f"SELECT {', '.join(_FOUND_LOG_FIELDS)} FROM transaction_logs "  # noqa: S608 (model field names)
    "WHERE client_id = %s AND idempotency_key = %s"
)

# The PENDING log, its wallets resolved in the same statement (the settlement
# wallet is found by the customer wallet's currency); no row inserted means the
# key is taken or a wallet does not match. ON CONFLICT on the unique (client,
# key) constraint: losing the race is an answer, not an error.
# Tenancy (docs/api.md) in SQL, written once for every money statement (its
# Python twin: wallets.selectors.owned_wallets and _ensure_wallets): money
# leaves, and deposits land in, only customer wallets the client owns
# (_OWNED); a transfer or a payout may credit another client's customer
# wallet only with transfers.pay_other_clients (_PAYABLE). A wallet that fails
# these is not found, as an unknown one (_ensure_wallets says which).
_CUSTOMER, _SETTLEMENT = WalletKind.CUSTOMER.value, WalletKind.SETTLEMENT.value


def _owned(wallet: str) -> str:
    return f"{wallet}.kind = '{_CUSTOMER}' AND {wallet}.owner_id = %(client)s"


def _payable(wallet: str) -> str:
    return f"{wallet}.kind = '{_CUSTOMER}' AND ({wallet}.owner_id = %(client)s OR %(pay_others)s)"


# The settlement wallet of a deposit or withdrawal: the customer wallet's currency's.
_SETTLES = f"{{settlement}}.kind = '{_SETTLEMENT}' AND {{settlement}}.currency = {{customer}}.currency"
# Which wallets (s: source, d: destination) a client may move money between,
# by movement type: the condition every money statement's wallets must meet.
TENANCY_RULES = {
    TransactionType.TRANSFER: f"s.id = %(source)s AND {_owned('s')} AND d.id = %(destination)s AND {_payable('d')}",
    TransactionType.DEPOSIT: f"d.id = %(destination)s AND {_owned('d')} AND "
    + _SETTLES.format(settlement="s", customer="d"),
    TransactionType.WITHDRAWAL: f"s.id = %(source)s AND {_owned('s')} AND "
    + _SETTLES.format(settlement="d", customer="s"),
}
PAY_OTHER_CLIENTS = "transfers.pay_other_clients"
_INSERT_PENDING = """
INSERT INTO transaction_logs (
    id, client_id, idempotency_key, movement_fingerprint, body_digest, source_wallet_id, destination_wallet_id,
    amount, currency, type, status, reference, metadata, error_code, error_message, created_at, updated_at)
SELECT %(id)s, %(client)s, %(key)s, %(fingerprint)s, %(digest)s, s.id, d.id,
       %(amount)s, s.currency, %(type)s, 'PENDING', %(reference)s, %(metadata)s, '', '', %(now)s, %(now)s
  FROM wallets s, wallets d
 WHERE {wallets}
ON CONFLICT (client_id, idempotency_key) DO NOTHING
RETURNING id
"""

# --- the protocol's layers 1 to 4 for one movement --------------------------------


def _find_log(client: AbstractBaseUser, idempotency_key: str) -> TransactionLog | None:
    rows = fetch(connection, _FIND_LOG, [client.pk, idempotency_key])
    return from_row(TransactionLog, DEFAULT_DB_ALIAS, _FOUND_LOG_FIELDS, rows[0]) if rows else None


def _ensure_same_movement(log: TransactionLog, fingerprint: str) -> None:
    if log.movement_fingerprint != fingerprint:
        raise IdempotencyKeyReused()


def _answer(
    client: AbstractBaseUser, idempotency_key: str, movement: Movement, body_digest: str, log: TransactionLog | None
) -> MovementResult:
    """Layers 1 to 4 of the protocol (the module's docstring) for one
    movement; `log` is what layer 1 found (movement_find), None for nothing.

    Returns the settled (or replayed) transaction: replayed=False only when
    this call settled it. Raises IdempotencyKeyReused (422) when the key's
    log is for another movement, IdempotencyKeyInUse (409) while another
    request holds the key's Redis lock, WalletNotFound (404) from
    _record_pending. A broken business rule is a FAILED log, not raised."""
    fingerprint = movement.fingerprint()
    if log is not None and log.status != TransactionStatus.PENDING:
        _ensure_same_movement(log, fingerprint)
        return MovementResult(log=log, replayed=True)
    if log is not None:
        # PENDING: a crash (or a request in flight) left it; this one may finish it.
        _ensure_same_movement(log, fingerprint)

    # Layer 2: the Redis lock (taken over if the charge took it: locks.taken_with_charge).
    with locks.idempotency_lock(client.pk, locks.unit_lock_key(locks.Unit.MOVEMENT, idempotency_key)) as lock:
        if log is None:
            # Layer 3: the PENDING transaction, committed on its own (or the race's winner).
            log, created = _record_pending(
                client=client,
                idempotency_key=idempotency_key,
                fingerprint=fingerprint,
                movement=movement,
                body_digest=body_digest,
            )
            if not created:
                _ensure_same_movement(log, fingerprint)
                if log.status != TransactionStatus.PENDING:
                    return MovementResult(log=log, replayed=True)
        # Layer 4: settle. Someone else may have settled it since we looked:
        # then this is a replay of their result.
        log, settled_now = transaction_settle(log_id=log.pk)
        lock.leave_to_expire()
    return MovementResult(log=log, replayed=not settled_now)


def _record_pending(
    *, client: AbstractBaseUser, idempotency_key: str, fingerprint: str, movement: Movement, body_digest: str = ""
) -> tuple[TransactionLog, bool]:
    """Insert the PENDING transaction in autocommit, so it is committed before
    any money moves, or return the one that won the race for this (client,
    key). Returns (log, created). Unknown wallets are a 404 and store nothing:
    the key stays free."""
    params = {
        "id": uuid.uuid4(),
        "client": client.pk,
        "key": idempotency_key,
        "fingerprint": fingerprint,
        "digest": body_digest,
        "source": movement.source_wallet_id,
        "destination": movement.destination_wallet_id,
        "amount": movement.amount,
        "type": movement.type.value,
        "reference": new_reference(),
        "metadata": Jsonb(movement.metadata),
        "now": timezone.now(),
        # Read from the permissions authentication loaded: no query.
        "pay_others": client.has_perm(PAY_OTHER_CLIENTS),
    }
    insert = _INSERT_PENDING.format(wallets=TENANCY_RULES[movement.type])
    for attempt in (1, 2):
        if fetch(connection, insert, params):
            return from_row(TransactionLog, DEFAULT_DB_ALIAS, ["id", "status"], [params["id"], "PENDING"]), True
        winner = _find_log(client, idempotency_key)
        if winner is not None:
            return winner, False
        if attempt == 1:
            # Rare: say which wallet is unknown, or create the currency's
            # settlement wallet on its first use, then try once more.
            _ensure_wallets(movement, client=client, pay_others=params["pay_others"])
    # Not expected: only if a wallet _ensure_wallets found usable was deleted
    # or changed hands before the second INSERT.
    raise RuntimeError(f"could not record the PENDING log for key {idempotency_key!r}")


def _ensure_wallets(movement: Movement, *, client: AbstractBaseUser, pay_others: bool) -> None:
    """Why the PENDING insert found no wallets, put right where it can be:
    raises WalletNotFound naming the side that is unknown or not the
    client's to use (the insert's rule, TENANCY_RULES, in Python); else,
    for a deposit or a withdrawal, creates the currency's settlement wallet
    on its first use, and returns for the caller to insert again.

    A deposit or a withdrawal names one wallet (the other side is None): its
    customer wallet, whose currency names the settlement wallet."""
    own = owned_wallets(owner=client)
    customer = None
    for role, wallet_id in (("Source", movement.source_wallet_id), ("Destination", movement.destination_wallet_id)):
        if wallet_id is None:
            continue
        payee = role == "Destination" and movement.type == TransactionType.TRANSFER
        usable = Wallet.objects.filter(kind=WalletKind.CUSTOMER) if payee and pay_others else own
        customer = usable.filter(pk=wallet_id).first()
        if customer is None:
            raise WalletNotFound(f"{role} wallet not found." if movement.type == TransactionType.TRANSFER else None)
    if movement.type != TransactionType.TRANSFER:
        settlement_wallet_get_or_create(currency=customer.currency)


# --- batch payouts -----------------------------------------------------------------
#
# docs/api.md, "Batch payouts": the protocol's five layers (above, and
# docs/design.md, "The protocol: five layers"), numbered as there, for a
# batch key and its payouts' own keys at once.
#
# 1. The batch of (client, batch key): a finished one is replayed, one for
#    another batch refused (IdempotencyKeyReused).
# 2. The Redis lock on (client, batch key).
# 3. One database transaction commits the PENDING batch and a PENDING log per
#    payout (one multi-row INSERT). A payout key that any other transaction
#    already holds refuses the whole batch (422) and stores nothing; a payout
#    to an unknown wallet (or one the client may not pay) gets no log, as a
#    single transfer would not, and its outcome is kept on the batch.
# 4. The engine settles the batch in one database transaction
#    (engine.settle_batch): its row, then the source and every destination in
#    primary-key order (locks.lock_wallets, as for a single transfer), the
#    single transfer's decide-and-apply step over every payout in order on
#    the running balances, then the batch row. The source row is locked once
#    for the whole batch: that is what lets a pool wallet pay out faster than
#    one commit per payout.
# 5. Reconciliation settles a batch a crash left PENDING, through layer 4.


_FOUND_BATCH_FIELDS = in_model_order(TransferBatch, ["request_fingerprint", "body_digest", "status", "payout_count"])
_FIND_BATCH = (
    f"SELECT {', '.join(_FOUND_BATCH_FIELDS)} FROM transfer_batches "  # noqa: S608 (model field names)
    "WHERE client_id = %s AND idempotency_key = %s"
)
# The source in the WHERE clause (tenancy): money leaves only a customer
# wallet the client owns. No row: the key is taken, or the source is unknown.
_INSERT_BATCH = f"""
INSERT INTO transfer_batches (
    id, client_id, idempotency_key, request_fingerprint, body_digest, source_wallet_id, atomic, status, payout_count,
    total_amount, completed_count, completed_amount, failed_count, error_code, error_message, rejected_payouts,
    created_at, updated_at)
SELECT %(id)s, %(client)s, %(key)s, %(fingerprint)s, %(digest)s, s.id, %(atomic)s, 'PENDING', %(count)s,
       %(total)s, 0, 0, 0, '', '', %(rejected)s, %(now)s, %(now)s
  FROM wallets s
 WHERE s.id = %(source)s AND {_owned("s")}
ON CONFLICT (client_id, idempotency_key) DO NOTHING
RETURNING id
"""  # noqa: S608 (constants only)
# The destinations a payout may credit: TENANCY_RULES' rule for a transfer.
_USABLE_DESTINATIONS = f"""
SELECT d.id FROM wallets d
 WHERE d.id = ANY(%(destinations)s) AND {_payable("d")}
"""  # noqa: S608 (constants only)
# Every payout's PENDING log in one statement. A key some other transaction
# holds inserts nothing (ON CONFLICT): the caller compares what came back.
# The payouts come as one JSON document, as SETTLE's posting does
# (transfers/engine.py): building and adapting the eight arrays it used to
# take cost about 1.8 times what the document costs (timeit, a batch of
# 1,000: bench/HISTORY.md, 2026-12-07 03:15).
_INSERT_PAYOUTS = """
INSERT INTO transaction_logs (
    id, client_id, idempotency_key, movement_fingerprint, body_digest, source_wallet_id, destination_wallet_id,
    amount, currency, type, status, reference, metadata, error_code, error_message, created_at, updated_at,
    batch_id, batch_index)
SELECT p.id, b.client_id, p.key, p.fingerprint, '', b.source_wallet_id, p.destination,
       p.amount, s.currency, 'TRANSFER', 'PENDING', p.reference, p.metadata, '', '', b.created_at, b.created_at,
       b.id, p.index
  FROM transfer_batches b
  JOIN wallets s ON s.id = b.source_wallet_id
 CROSS JOIN jsonb_to_recordset(%(payouts)s::jsonb)
         AS p(id uuid, key text, fingerprint text, destination uuid, amount numeric, reference text, metadata jsonb,
              index integer)
 WHERE b.id = %(batch)s
ON CONFLICT (client_id, idempotency_key) DO NOTHING
RETURNING idempotency_key
"""


def batch_find(*, client: AbstractBaseUser, idempotency_key: str) -> Found:
    """Layer 1 of the batch protocol: the client's batch under this key, if
    any (its id, request fingerprint, status, body digest and payout count).
    As movement_find: a finished one is a replay to charge (one unit per
    payout), a byte-identical retry is answered unread by batch_replay; give
    it to batch_create to spare a query."""
    return Found(_find_batch(client, idempotency_key))


def batch_replay(*, client: AbstractBaseUser, found: Found) -> BatchResult:
    """The answer to a retry of the finished batch `found` names, from it:
    for a request that is answered unread (found.answers_unread); the batch
    and its payouts are read again. ValueError if `found` is not finished
    (the caller's mistake)."""
    if not found.finished:
        raise ValueError("only a finished batch is replayed")
    result = _replayed_batch(found.row.pk)
    telemetry.batch_answered(client=client, result=result, seconds=None)
    return result


def batch_create(
    *,
    client: AbstractBaseUser,
    idempotency_key: str,
    source_wallet_id: uuid.UUID,
    atomic: bool,
    payouts: tuple[Payout, ...],
    body_digest: str = "",
    found: Found | None = None,
) -> BatchResult:
    """Pay out `payouts` from one customer wallet, exactly once per (client,
    batch key), and move each payout at most once per its own key: the batch
    protocol above. `found` and `body_digest` as for movement_answer.

    Returns the batch and each payout's outcome in the order given (replayed
    when an earlier request had settled it). Raises WalletNotFound (404) for
    an unknown source, storing nothing; IdempotencyKeyReused (422) when the
    batch key was used for another batch or a payout key for any other
    transaction, storing nothing; IdempotencyKeyInUse (409) while another
    request holds the batch key. A broken business rule is not raised: it is
    in the outcomes (and, for an atomic batch, the batch's FAILED status).
    """
    started = time.perf_counter()
    request = BatchRequest(
        client=client,
        idempotency_key=idempotency_key,
        source_wallet_id=source_wallet_id,
        atomic=atomic,
        payouts=payouts,
    )
    if found is None:
        found = batch_find(client=client, idempotency_key=idempotency_key)
    try:
        result = _batch_protocol(request, request.fingerprint(), body_digest, found.row)
    except (IdempotencyKeyInUse, IdempotencyKeyReused) as refusal:
        telemetry.batch_refused(client=client, idempotency_key=idempotency_key, code=refusal.default_code)
        raise
    telemetry.batch_answered(client=client, result=result, seconds=time.perf_counter() - started)
    return result


def batch_settle(*, batch_id: uuid.UUID, skip_locked: bool = False) -> tuple[TransferBatch | None, bool]:
    """Settle a PENDING batch: every payout COMPLETED or FAILED, and the
    batch with them, in one database transaction (the engine,
    transfers/engine.py). Returns (batch, settled_now).

    Safe to call any number of times, concurrently (a client retry of the
    batch, of one of its payout keys, reconciliation): the batch row lock
    serialises the callers and only the one that finds it PENDING acts. With
    skip_locked, a batch another caller holds is left to it: (None, False).
    """
    settled_now = engine.settle_batch(batch_id=batch_id, skip_locked=skip_locked)
    if settled_now is None:
        return None, False
    return TransferBatch.objects.get(pk=batch_id), settled_now


def batch_outcomes(batch: TransferBatch) -> list[PayoutOutcome]:
    """Each payout's outcome, in the order the batch gave them: its log's,
    or the rejection kept on the batch for a payout that has none."""
    logs = batch.payouts.order_by("batch_index").values_list(
        "batch_index", "idempotency_key", "destination_wallet_id", "amount", "status", "id", "reference",
        "error_code", "error_message",
    )  # fmt: skip
    outcomes = [
        PayoutOutcome(index, key, destination, amount, status, log_id, reference, code, message)
        for index, key, destination, amount, status, log_id, reference, code, message in logs
    ]
    for rejected in batch.rejected_payouts:
        outcomes.append(
            PayoutOutcome(
                index=rejected["index"],
                idempotency_key=rejected["idempotencyKey"],
                destination_wallet_id=uuid.UUID(rejected["destinationWalletId"]),
                amount=Decimal(rejected["amount"]),
                status=TransactionStatus.FAILED.value,
                transaction_id=None,
                reference=None,
                error_code=rejected["errorCode"],
                error_message=rejected["errorMessage"],
            )
        )
    outcomes.sort(key=lambda outcome: outcome.index)
    return outcomes


def _batch_protocol(
    request: BatchRequest, fingerprint: str, body_digest: str, batch: TransferBatch | None
) -> BatchResult:
    """Layers 1 to 4 of the batch protocol ("batch payouts" above) for one
    batch request, as _answer is for one movement; `batch` is what layer 1
    found (batch_find), None for nothing.

    Returns the batch and its payouts' outcomes: replayed=False only when
    this call settled it. Raises IdempotencyKeyReused (422) when the batch
    key names another batch or a payout key any other transaction,
    IdempotencyKeyInUse (409) while another request holds the batch key's
    Redis lock, WalletNotFound (404) for the source (_record_pending_batch).
    A broken business rule is in the outcomes, not raised."""
    if batch is not None:
        if batch.request_fingerprint != fingerprint:
            raise IdempotencyKeyReused()
        if batch.status != BatchStatus.PENDING:
            return _replayed_batch(batch.pk)
    with locks.idempotency_lock(
        request.client.pk, locks.unit_lock_key(locks.Unit.BATCH, request.idempotency_key)
    ) as lock:
        if batch is None:
            batch, created = _record_pending_batch(request, fingerprint, body_digest)
            if not created and batch.request_fingerprint != fingerprint:
                raise IdempotencyKeyReused()
        # PENDING, or settled by a racing request since we looked: then this
        # is a replay of its result.
        batch, settled_now = batch_settle(batch_id=batch.pk)
        lock.leave_to_expire()
    return BatchResult(batch=batch, payouts=batch_outcomes(batch), replayed=not settled_now)


def _replayed_batch(batch_id: uuid.UUID) -> BatchResult:
    """The answer to a replay of a finished batch: the batch read whole (a
    found row holds only what batch_find reads) and its payouts' outcomes."""
    batch = TransferBatch.objects.get(pk=batch_id)
    return BatchResult(batch=batch, payouts=batch_outcomes(batch), replayed=True)


def _find_batch(client: AbstractBaseUser, idempotency_key: str) -> TransferBatch | None:
    rows = fetch(connection, _FIND_BATCH, [client.pk, idempotency_key])
    return from_row(TransferBatch, DEFAULT_DB_ALIAS, _FOUND_BATCH_FIELDS, rows[0]) if rows else None


def _record_pending_batch(request: BatchRequest, fingerprint: str, body_digest: str) -> tuple[TransferBatch, bool]:
    """Commit the PENDING batch and its payouts' PENDING logs together (so
    before any money moves), or return the batch that won the race for this
    (client, key). Returns (batch, created); a created batch is a bare row
    (its id and status), a winner as _find_batch reads it, whose request
    fingerprint the caller compares. A payout whose destination the client
    may not pay gets no log: it is kept in the batch's `rejected_payouts`.

    Raises WalletNotFound (404) when the source is unknown or not the
    client's, and IdempotencyKeyReused (422, _record_pending_payouts) when
    another transaction holds a payout's key: either way nothing is stored."""
    client, payouts = request.client, request.payouts
    batch_id, now = uuid.uuid4(), timezone.now()
    pay_others = client.has_perm(PAY_OTHER_CLIENTS)
    with transaction.atomic(durable=True):
        usable = {
            row[0]
            for row in fetch(
                connection,
                _USABLE_DESTINATIONS,
                {
                    "destinations": list({p.destination_wallet_id for p in payouts}),
                    "client": client.pk,
                    "pay_others": pay_others,
                },
            )
        }
        recorded = [(index, p) for index, p in enumerate(payouts) if p.destination_wallet_id in usable]
        rejected = [
            {
                "index": index,
                "idempotencyKey": p.idempotency_key,
                "destinationWalletId": str(p.destination_wallet_id),
                "amount": f"{p.amount:.2f}",
                "errorCode": WalletNotFound.default_code,
                "errorMessage": "Destination wallet not found.",
            }
            for index, p in enumerate(payouts)
            if p.destination_wallet_id not in usable
        ]
        inserted = fetch(
            connection,
            _INSERT_BATCH,
            {
                "id": batch_id,
                "client": client.pk,
                "key": request.idempotency_key,
                "fingerprint": fingerprint,
                "digest": body_digest,
                "source": request.source_wallet_id,
                "atomic": request.atomic,
                "count": len(payouts),
                "total": sum(p.amount for p in payouts),
                "rejected": Jsonb(rejected),
                "now": now,
            },
        )
        if inserted and recorded:
            _record_pending_payouts(batch_id, request, recorded)
    if inserted:
        return from_row(TransferBatch, DEFAULT_DB_ALIAS, ["id", "status"], [batch_id, BatchStatus.PENDING]), True
    winner = _find_batch(client, request.idempotency_key)
    if winner is None:
        raise WalletNotFound("Source wallet not found.")
    return winner, False


def _record_pending_payouts(batch_id: uuid.UUID, request: BatchRequest, recorded: list[tuple[int, Payout]]) -> None:
    """The multi-row INSERT of the payouts' PENDING logs, inside the batch's
    transaction; IdempotencyKeyReused (rolling the batch back) when another
    transaction holds any of their keys."""
    source = request.source_wallet_id
    payouts = [
        {
            "id": str(uuid.uuid4()),
            "key": p.idempotency_key,
            "fingerprint": p.movement(source).fingerprint(),
            "destination": str(p.destination_wallet_id),
            "amount": str(p.amount),
            "reference": reference,
            "metadata": p.metadata,
            "index": index,
        }
        for (index, p), reference in zip(recorded, new_references(len(recorded)), strict=True)
    ]
    returned = fetch(
        connection, _INSERT_PAYOUTS, {"batch": batch_id, "payouts": json.dumps(payouts, separators=(",", ":"))}
    )
    if len(returned) != len(recorded):
        stored = {row[0] for row in returned}
        reused = [
            {"index": index, "idempotencyKey": p.idempotency_key}
            for index, p in recorded
            if p.idempotency_key not in stored
        ]
        raise IdempotencyKeyReused(
            f"{len(reused)} payout idempotency key(s) were already used for other transactions; nothing was stored.",
            data={"payouts": reused},
        )
