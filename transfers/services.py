"""Where money moves. Nothing else in the code base changes a balance.

The protocol (docs/design.md, "The protocol: five layers"):

1. Look up the transaction of (client, idempotency key). A finished one is
   replayed (without even reading the request, when it is byte for byte the
   one that made it); one for a different movement is refused
   (IdempotencyKeyReused).
2. Take the Redis lock on (client, key): concurrent duplicates get
   IdempotencyKeyInUse. Skipped if Redis is down; never relied on. Once the
   log is finished, step 1 answers the key, so the lock is left to expire.
3. Commit a PENDING transaction. The unique constraint on (client, key) is
   the real guard against a duplicate: losing that race means using the
   winner's.
4. Settle it in one database transaction: lock its row, then both wallets in
   a fixed order; if it is still PENDING, check the business rules and
   either move the money and mark it COMPLETED, or mark it FAILED. Deadlocks
   and serialization failures are retried a bounded number of times.
5. Reconciliation settles what a crash left PENDING, through the same step.

Guarantee: however requests, retries, crashes and reconciliation interleave,
a transaction moves money at most once, and a PENDING one has moved none (its
status and both balance changes commit together).

Words (transfers/movements.py): a movement request asks for a movement under
an idempotency key; the service records it as a transaction, a row of
transaction_logs (`log` in code).
"""

import logging
import random
import time
import uuid
from decimal import Decimal

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import OperationalError, connection, transaction
from django.utils import timezone
from psycopg.types.json import Jsonb

from transfers import locks, telemetry
from transfers.exceptions import (
    BalanceLimitExceeded,
    BusinessRuleViolation,
    CurrencyMismatch,
    IdempotencyKeyInUse,
    IdempotencyKeyReused,
    InsufficientBalance,
    ReversalNotAllowed,
    WalletInactive,
)
from transfers.models import TransactionLog, TransactionStatus, TransactionType, new_reference
from transfers.movements import Movement, MovementRequest, MovementResult, canonical_fingerprint
from wallet_project.db import in_model_order
from wallets.exceptions import WalletNotFound
from wallets.models import EventType, Wallet, WalletKind
from wallets.money import MAX_AMOUNT
from wallets.selectors import owned_wallets
from wallets.services import settlement_wallet_get_or_create

logger = logging.getLogger(__name__)

# PostgreSQL's deadlock_detected and serialization_failure: the transaction
# was rolled back whole, so running it again is safe.
RETRYABLE_SQLSTATES = {"40P01", "40001"}


# --- public services -------------------------------------------------------------


def movement_request_answer(*, movement_request: MovementRequest) -> MovementResult:
    """Answer a movement request exactly once per (client, idempotency key):
    the protocol above. The one entry point of every money request, the API's
    (transfers.http.ApiMovementRequest) and the typed services' below.

    The request's movement is read only when the answer needs it: a retry
    whose body digest matches the finished transaction's is replayed from it
    unread, since it cannot ask for anything else (and retries are what
    replays mostly are: a double tap, a client's timeout).

    Raises IdempotencyKeyInUse (409) or IdempotencyKeyReused (422), whatever
    reading the request raises (400), WalletNotFound (404) before anything is
    stored, and Throttled (429) from the request's charge. A business rule
    broken is not raised: it is a FAILED transaction in the result.
    """
    started = time.perf_counter()
    result = _run_protocol(movement_request)
    telemetry.movement_answered(
        client=movement_request.client,
        idempotency_key=movement_request.idempotency_key,
        log=result.log,
        replayed=result.replayed,
        seconds=time.perf_counter() - started,
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
) -> MovementResult:
    """Move `amount` (Decimal, 2 places) from one customer wallet to another,
    exactly once per key: movement_request_answer for a caller in process."""
    movement = Movement.transfer(
        source_wallet_id=source_wallet_id, destination_wallet_id=destination_wallet_id, amount=amount, metadata=metadata
    )
    return movement_request_answer(
        movement_request=MovementRequest(client=client, idempotency_key=idempotency_key, movement=movement)
    )


def deposit_create(
    *, client: AbstractBaseUser, wallet_id: uuid.UUID, amount: Decimal, idempotency_key: str, metadata: dict
) -> MovementResult:
    """Move money in: from the currency's settlement wallet to a customer wallet."""
    movement = Movement.deposit(wallet_id=wallet_id, amount=amount, metadata=metadata)
    return movement_request_answer(
        movement_request=MovementRequest(client=client, idempotency_key=idempotency_key, movement=movement)
    )


def withdrawal_create(
    *, client: AbstractBaseUser, wallet_id: uuid.UUID, amount: Decimal, idempotency_key: str, metadata: dict
) -> MovementResult:
    """Move money out: from a customer wallet to the currency's settlement wallet."""
    movement = Movement.withdrawal(wallet_id=wallet_id, amount=amount, metadata=metadata)
    return movement_request_answer(
        movement_request=MovementRequest(client=client, idempotency_key=idempotency_key, movement=movement)
    )


def transaction_settle(*, log_id: uuid.UUID, skip_locked: bool = False) -> tuple[TransactionLog | None, bool]:
    """Settle a PENDING log: move the money and mark it COMPLETED, or mark it
    FAILED with the business rule it broke. Returns (log, settled_now).

    Safe to call any number of times, concurrently, from a client retry, the
    reconciliation task or an admin action: the log row lock serialises the
    callers and only the one that finds it PENDING acts (settled_now=True).
    With skip_locked (reconciliation), a log another caller is settling right
    now is left to it: the result is (None, False).
    """
    for attempt in range(1, settings.TRANSFER_MAX_ATTEMPTS + 1):
        try:
            return _settle_once(log_id, skip_locked=skip_locked)
        except OperationalError as exc:
            sqlstate = getattr(exc.__cause__, "sqlstate", None)
            if sqlstate not in RETRYABLE_SQLSTATES or attempt == settings.TRANSFER_MAX_ATTEMPTS:
                raise
            logger.info("settle %s: %s on attempt %d, retrying", log_id, sqlstate, attempt)
            # Jittered so that two transactions that deadlocked do not meet again.
            time.sleep(random.uniform(0, 0.01 * 2**attempt))
    raise AssertionError("unreachable")


REVERSAL_TYPE = {
    TransactionType.TRANSFER: TransactionType.TRANSFER,
    TransactionType.DEPOSIT: TransactionType.WITHDRAWAL,
    TransactionType.WITHDRAWAL: TransactionType.DEPOSIT,
}


def transaction_reverse(*, log_id: uuid.UUID, reason: str, reversed_by: AbstractBaseUser) -> TransactionLog:
    """Undo a COMPLETED movement: a compensating log moves the amount back and
    the original becomes REVERSED, in one transaction. Returns the compensating log.

    At most once: the original's row lock and status check serialise
    concurrent attempts, and reversal_of is unique in the database. A
    compensating log is not itself reversible. Frozen
    wallets do not block it (it is an operator's correction), but a customer
    wallet that no longer holds the money does: InsufficientBalance.
    """
    reason = reason.strip()
    if not reason:
        raise ValueError("A reversal needs a reason.")
    with transaction.atomic(durable=True):
        original = locks.lock_log(log_id)
        if original.status != TransactionStatus.COMPLETED:
            raise ReversalNotAllowed(f"{original.reference} is {original.status}; only COMPLETED can be reversed.")
        if original.reversal_of_id is not None:
            # Undoing an undo would re-apply the original under a new log:
            # make a new, deliberate movement instead.
            raise ReversalNotAllowed(f"{original.reference} is itself a reversal and cannot be reversed.")
        wallets = locks.lock_wallets(original.source_wallet_id, original.destination_wallet_id)
        # Money flows back: the original destination pays.
        payer, payee = wallets[original.destination_wallet_id], wallets[original.source_wallet_id]
        if payer.kind == WalletKind.CUSTOMER and payer.balance < original.amount:
            raise InsufficientBalance(
                f"The wallet that received {original.reference} holds {payer.balance}, less than {original.amount}."
            )
        _check_balance_limits(payer, payee, original.amount)
        now = timezone.now()
        compensation = TransactionLog.objects.create(
            client=reversed_by,
            idempotency_key=f"reversal:{original.pk}",
            movement_fingerprint=canonical_fingerprint(reversal_of=str(original.pk)),
            type=REVERSAL_TYPE[original.type],
            status=TransactionStatus.COMPLETED,
            source_wallet=payer,
            destination_wallet=payee,
            amount=original.amount,
            currency=original.currency,
            metadata={"reversalOf": original.reference, "reason": reason, "reversedBy": reversed_by.get_username()},
            reversal_of=original,
            completed_at=now,
        )
        _run(_MOVE_MONEY, {"source": payer.pk, "destination": payee.pk, "amount": original.amount, "now": now})
        original.status = TransactionStatus.REVERSED
        original.save(update_fields=["status", "updated_at"])
        _run(
            _RECORD_EVENTS_OF,
            {
                "log": original.pk, "event": EventType.TRANSFER_REVERSED.value, "now": now,
                "owners": _owners(payer, payee),
            },
        )  # fmt: skip
    telemetry.reversal_done(original=original, compensation=compensation, reversed_by=reversed_by)
    return compensation


# --- the protocol ------------------------------------------------------------------
#
# The statements a transfer runs on every request are written as SQL: building
# them through the ORM cost more CPU than everything else a transfer does
# (bench/README.md). The row locks stay ORM querysets in locks.py, as the
# design asks, and every statement runs inside the same transactions. All of
# them go through the connection's statement cursor (wallet_project/db/base.py).

_REPLAY_COLUMNS = in_model_order(
    TransactionLog,
    [
        "movement_fingerprint", "body_digest", "type", "status", "amount", "reference", "currency", "error_code",
        "error_message",
    ],
)  # fmt: skip
_FIND_LOG = (
    f"SELECT {', '.join(_REPLAY_COLUMNS)} FROM transaction_logs "  # noqa: S608 (model field names)
    "WHERE client_id = %s AND idempotency_key = %s"
)

# The PENDING log, its wallets resolved in the same statement (the settlement
# wallet is found by the customer wallet's currency); no row inserted means the
# key is taken or a wallet does not match. ON CONFLICT on the unique (client,
# key) constraint: losing the race is an answer, not an error.
# Tenancy (docs/api.md) in the same WHERE clause: money leaves, and deposits
# land in, only wallets the client owns; a transfer may credit another
# client's wallet only with transfers.pay_other_clients. A wallet that fails
# these is not found, as an unknown one (_ensure_wallets says which).
_CUSTOMER, _SETTLEMENT = WalletKind.CUSTOMER.value, WalletKind.SETTLEMENT.value
_WALLETS_OF = {
    TransactionType.TRANSFER: f"s.id = %(source)s AND s.kind = '{_CUSTOMER}' AND s.owner_id = %(client)s "
    f"AND d.id = %(destination)s AND d.kind = '{_CUSTOMER}' AND (d.owner_id = %(client)s OR %(pay_others)s)",
    TransactionType.DEPOSIT: f"d.id = %(destination)s AND d.kind = '{_CUSTOMER}' AND d.owner_id = %(client)s "
    f"AND s.kind = '{_SETTLEMENT}' AND s.currency = d.currency",
    TransactionType.WITHDRAWAL: f"s.id = %(source)s AND s.kind = '{_CUSTOMER}' AND s.owner_id = %(client)s "
    f"AND d.kind = '{_SETTLEMENT}' AND d.currency = s.currency",
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

# Both legs in one statement, on rows the caller has locked. The CHECK on
# customer balances is the backstop should a rule check ever be wrong.
_MOVE_MONEY = """
UPDATE wallets
   SET balance = balance + CASE WHEN id = %(source)s THEN -%(amount)s ELSE %(amount)s END, updated_at = %(now)s
 WHERE id IN (%(source)s, %(destination)s)
"""


def _utc_text(column: str) -> str:
    """SQL for a timestamp as DRF's DateTimeField writes it in UTC
    ("2026-11-30T05:46:47.123456Z", no fraction when it is zero)."""
    whole = f"""to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS')"""
    fraction = f"""CASE WHEN mod(extract(microseconds FROM {column})::bigint, 1000000) = 0 THEN ''
        ELSE to_char({column} AT TIME ZONE 'UTC', '.US') END"""
    return f"({whole} || {fraction} || 'Z')"


# The events of a transaction (DESIGN.md, "Events and webhooks"): one per
# owner of its wallets (%(owners)s, a settlement wallet has none), each
# holding the transaction as TransactionLogSerializer shows it to that owner:
# the idempotency key and metadata only to the client that sent them
# (selectors.shows_request_details). Written in SQL so that settling inserts
# them in the statement that completes the log: no round trip, no Python
# rendering, while the wallet rows are locked. test_events.py checks the two
# renderings agree.
_EVENTS_OF_LOG = f"""
INSERT INTO events (client_id, type, data, created_at)
SELECT owner, %(event)s, jsonb_build_object(
         'id', t.id, 'reference', t.reference, 'type', t.type, 'status', t.status,
         'idempotencyKey', CASE WHEN owner = t.client_id THEN t.idempotency_key END,
         'metadata', CASE WHEN owner = t.client_id THEN t.metadata END,
         'sourceWalletId', t.source_wallet_id, 'destinationWalletId', t.destination_wallet_id,
         'amount', t.amount::text, 'currency', t.currency, 'errorCode', t.error_code, 'errorMessage', t.error_message,
         'createdAt', {_utc_text("t.created_at")}, 'updatedAt', {_utc_text("t.updated_at")},
         'completedAt', CASE WHEN t.completed_at IS NOT NULL THEN {_utc_text("t.completed_at")} END),
       %(now)s
  FROM t, unnest(%(owners)s::integer[]) AS owner
"""  # noqa: S608 (constants only)
# ...and the log marked COMPLETED, and its events written, by the same
# statement: no round trip added while the wallet rows are locked.
_MOVE_MONEY_AND_COMPLETE = f"""
WITH legs AS ({_MOVE_MONEY}),
t AS (UPDATE transaction_logs SET status = 'COMPLETED', completed_at = %(now)s, updated_at = %(now)s
       WHERE id = %(log)s RETURNING *)
{_EVENTS_OF_LOG}"""  # noqa: S608 (constants only)
_FAIL = f"""
WITH t AS (UPDATE transaction_logs
              SET status = 'FAILED', error_code = %(code)s, error_message = %(message)s, updated_at = %(now)s
            WHERE id = %(log)s RETURNING *)
{_EVENTS_OF_LOG}"""  # noqa: S608 (constants only)
# The events of a log already updated in this transaction (a reversal).
_RECORD_EVENTS_OF = f"""
WITH t AS (SELECT * FROM transaction_logs WHERE id = %(log)s)
{_EVENTS_OF_LOG}"""  # noqa: S608 (constants only)


def _owners(*wallets: Wallet) -> list[int]:
    """The clients whose wallets a transaction touches: its events' recipients."""
    return sorted({wallet.owner_id for wallet in wallets if wallet.owner_id is not None})


def _event_type(log: TransactionLog) -> str:
    """transfer.completed, deposit.failed, ...: the log's type and outcome."""
    return f"{log.type.lower()}.{log.status.lower()}"


def _fetch(statement: str, params) -> list[tuple]:
    """The rows of a statement that returns some (SELECT, RETURNING)."""
    cursor = connection.statement_cursor()
    cursor.execute(statement, params)
    return cursor.fetchall()


def _run(statement: str, params) -> None:
    """A statement that returns no rows. Kept apart from _fetch because asking
    the cursor whether there are rows (its description) builds a column object
    per column: measurable on a path that runs on every request."""
    connection.statement_cursor().execute(statement, params)


def _find_log(client: AbstractBaseUser, idempotency_key: str) -> TransactionLog | None:
    rows = _fetch(_FIND_LOG, [client.pk, idempotency_key])
    return TransactionLog.from_db(connection.alias, _REPLAY_COLUMNS, rows[0]) if rows else None


def _ensure_same_movement(log: TransactionLog, fingerprint: str) -> None:
    if log.movement_fingerprint != fingerprint:
        raise IdempotencyKeyReused()


def _run_protocol(request: MovementRequest) -> MovementResult:
    # 1. A finished transaction is replayed without touching the lock or the
    # wallets; a byte-identical retry of the request that made it, unread.
    log = _find_log(request.client, request.idempotency_key)
    finished = log is not None and log.status != TransactionStatus.PENDING
    if finished and request.body_digest and log.body_digest == request.body_digest:
        request.charge_as_replay()
        return MovementResult(log=log, replayed=True)
    movement = request.read_movement()
    try:
        return _answer(request, movement, log)
    except (IdempotencyKeyInUse, IdempotencyKeyReused) as refusal:
        telemetry.key_refused(
            client=request.client,
            movement=movement,
            idempotency_key=request.idempotency_key,
            code=refusal.default_code,
        )
        raise


def _answer(request: MovementRequest, movement: Movement, log: TransactionLog | None) -> MovementResult:
    """Steps 1 to 4 for a request that has been read; `log` is what step 1 found."""
    fingerprint = movement.fingerprint()
    # Charged before anything else is answered (a reused key's 422 included).
    if log is not None and log.status != TransactionStatus.PENDING:
        request.charge_as_replay()
        _ensure_same_movement(log, fingerprint)
        return MovementResult(log=log, replayed=True)
    request.charge_as_new()
    if log is not None:
        # PENDING: a crash (or a request in flight) left it; this one may finish it.
        _ensure_same_movement(log, fingerprint)

    # 2. The Redis lock.
    with locks.idempotency_lock(request.client.pk, request.idempotency_key) as lock:
        if log is None:
            # 3. The PENDING transaction, committed on its own (or the race's winner).
            log, created = _record_pending(
                client=request.client,
                idempotency_key=request.idempotency_key,
                fingerprint=fingerprint,
                movement=movement,
                body_digest=request.body_digest,
            )
            if not created:
                _ensure_same_movement(log, fingerprint)
                if log.status != TransactionStatus.PENDING:
                    return MovementResult(log=log, replayed=True)
        # 4. Settle. Someone else may have settled it since we looked: then
        # this is a replay of their result.
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
    insert = _INSERT_PENDING.format(wallets=_WALLETS_OF[movement.type])
    for attempt in (1, 2):
        if _fetch(insert, params):
            return TransactionLog.from_db(connection.alias, ["id", "status"], [params["id"], "PENDING"]), True
        winner = _find_log(client, idempotency_key)
        if winner is not None:
            return winner, False
        if attempt == 1:
            # Rare: say which wallet is unknown, or create the currency's
            # settlement wallet on its first use, then try once more.
            _ensure_wallets(movement, client=client, pay_others=params["pay_others"])
    raise RuntimeError(f"could not record the PENDING log for key {idempotency_key!r}")


def _ensure_wallets(movement: Movement, *, client: AbstractBaseUser, pay_others: bool) -> None:
    """Why the PENDING insert found no wallets: raise WalletNotFound naming
    the side that is unknown or not the client's to use (the insert's rule,
    _WALLETS_OF), or create the currency's settlement wallet on its first use."""
    own = owned_wallets(owner=client)
    for role, wallet_id in (("Source", movement.source_wallet_id), ("Destination", movement.destination_wallet_id)):
        if wallet_id is None:
            continue
        payee = role == "Destination" and movement.type == TransactionType.TRANSFER
        usable = Wallet.objects.filter(kind=WalletKind.CUSTOMER) if payee and pay_others else own
        wallet = usable.filter(pk=wallet_id).first()
        if wallet is None:
            raise WalletNotFound(f"{role} wallet not found." if movement.type == TransactionType.TRANSFER else None)
    if movement.type != TransactionType.TRANSFER:
        settlement_wallet_get_or_create(currency=wallet.currency)


def _settle_once(log_id: uuid.UUID, *, skip_locked: bool) -> tuple[TransactionLog | None, bool]:
    with transaction.atomic(durable=True):
        locking_started = time.perf_counter()
        log = locks.lock_log(log_id, skip_locked=skip_locked)
        if log is None:
            return None, False
        if log.status != TransactionStatus.PENDING:
            return log, False
        wallets = locks.lock_wallets(log.source_wallet_id, log.destination_wallet_id)
        lock_wait = time.perf_counter() - locking_started
        source, destination = wallets[log.source_wallet_id], wallets[log.destination_wallet_id]
        now = timezone.now()
        try:
            _check_business_rules(log, source, destination)
        except BusinessRuleViolation as violation:
            log.status = TransactionStatus.FAILED
            log.error_code, log.error_message = violation.default_code, str(violation.detail)
            _run(
                _FAIL,
                {
                    "code": log.error_code, "message": log.error_message, "now": now, "log": log.pk,
                    "event": _event_type(log), "owners": _owners(source, destination),
                },
            )  # fmt: skip
        else:
            log.status, log.completed_at = TransactionStatus.COMPLETED, now
            _run(
                _MOVE_MONEY_AND_COMPLETE,
                {
                    "source": source.pk, "destination": destination.pk, "amount": log.amount, "now": now,
                    "log": log.pk, "event": _event_type(log), "owners": _owners(source, destination),
                },
            )  # fmt: skip
        log.updated_at = now
    # Recorded after the commit: nothing extra while the wallet rows are locked.
    telemetry.LOCK_WAIT.observe(lock_wait)
    return log, True


def _check_business_rules(log: TransactionLog, source: Wallet, destination: Wallet) -> None:
    """Checked under the row locks, so the balance read is the one debited."""
    if not source.is_active:
        raise WalletInactive("The source wallet is inactive.")
    if not destination.is_active:
        raise WalletInactive("The destination wallet is inactive.")
    if source.currency != destination.currency or log.currency != source.currency:
        raise CurrencyMismatch(
            f"The source wallet holds {source.currency}, the destination wallet {destination.currency}."
        )
    if source.kind == WalletKind.CUSTOMER and source.balance < log.amount:
        raise InsufficientBalance()
    _check_balance_limits(source, destination, log.amount)


def _check_balance_limits(source: Wallet, destination: Wallet, amount: Decimal) -> None:
    # Without this a balance past NUMERIC(20,2) is an overflow error at the
    # UPDATE, and the log would stay PENDING through every retry.
    if destination.balance + amount > MAX_AMOUNT or source.balance - amount < -MAX_AMOUNT:
        raise BalanceLimitExceeded()
