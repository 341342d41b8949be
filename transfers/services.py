"""Where money moves. Nothing else in the code base changes a balance.

The protocol (DESIGN.md, "The transfer protocol"):

1. Look up the log of (client, idempotency key). A finished one is replayed
   (without even reading the request, when it is byte for byte the one that
   made the log); one for a different request is refused (IdempotencyKeyReused).
2. Take the Redis lock on (client, key): concurrent duplicates get
   IdempotencyKeyInUse. Skipped if Redis is down; never relied on. Once the
   log is finished, step 1 answers the key, so the lock is left to expire.
3. Commit a PENDING log. The unique constraint on (client, key) is the real
   guard against a duplicate: losing that race means using the winner's log.
4. Settle it in one transaction: lock the log row, then both wallets in a
   fixed order; if the log is still PENDING, check the business rules and
   either move the money and mark it COMPLETED, or mark it FAILED. Deadlocks
   and serialization failures are retried a bounded number of times.
5. Reconciliation settles what a crash left PENDING, through the same step.

Guarantee: however requests, retries, crashes and reconciliation interleave,
a log moves money at most once, and a PENDING log has moved none (its status
and both balance changes commit together).
"""

import hashlib
import json
import logging
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
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
from wallet_project.db import in_model_order
from wallet_project.metrics import LOCK_WAIT
from wallets.exceptions import WalletNotFound
from wallets.models import Wallet, WalletKind
from wallets.money import MAX_AMOUNT
from wallets.services import settlement_wallet_get_or_create

logger = logging.getLogger(__name__)

# PostgreSQL's deadlock_detected and serialization_failure: the transaction
# was rolled back whole, so running it again is safe.
RETRYABLE_SQLSTATES = {"40P01", "40001"}


@dataclass(frozen=True)
class TransferResult:
    log: TransactionLog
    # True when an earlier request had already finished this log.
    replayed: bool


def request_fingerprint(**request: object) -> str:
    """A stable digest of what the client asked for, to tell a genuine retry
    from a reused key. Amounts are normalised ("100" == "100.00")."""
    canonical = {k: (f"{v:.2f}" if isinstance(v, Decimal) else v) for k, v in request.items()}
    payload = json.dumps(canonical, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


# --- public services -------------------------------------------------------------

# Called with replay=True or False once the request is known to replay a
# finished key or to be new, before any lock or write; may raise to refuse
# the request (the API's rate limits, wallet_project/throttling.py), which
# then changes nothing.
Admission = Callable[[bool], None]


def admit_all(replay: bool) -> None:
    pass


@dataclass(frozen=True)
class Movement:
    """What a money-moving request asks for. A wallet id of None stands for
    the settlement wallet of the other side's currency (deposit, withdrawal)."""

    type: TransactionType
    amount: Decimal
    metadata: dict
    source_wallet_id: uuid.UUID | None
    destination_wallet_id: uuid.UUID | None

    @classmethod
    def transfer(
        cls, *, source_wallet_id: uuid.UUID, destination_wallet_id: uuid.UUID, amount: Decimal, metadata: dict
    ) -> "Movement":
        """From one customer wallet to another."""
        return cls(TransactionType.TRANSFER, amount, metadata, source_wallet_id, destination_wallet_id)

    @classmethod
    def deposit(cls, *, wallet_id: uuid.UUID, amount: Decimal, metadata: dict) -> "Movement":
        """Money in: from the currency's settlement wallet to a customer wallet."""
        return cls(TransactionType.DEPOSIT, amount, metadata, None, wallet_id)

    @classmethod
    def withdrawal(cls, *, wallet_id: uuid.UUID, amount: Decimal, metadata: dict) -> "Movement":
        """Money out: from a customer wallet to the currency's settlement wallet."""
        return cls(TransactionType.WITHDRAWAL, amount, metadata, wallet_id, None)

    def fingerprint(self) -> str:
        return request_fingerprint(
            type=self.type,
            source=self.source_wallet_id and str(self.source_wallet_id),
            destination=self.destination_wallet_id and str(self.destination_wallet_id),
            amount=self.amount,
            metadata=self.metadata,
        )


def transfer_create(
    *,
    client: AbstractBaseUser,
    source_wallet_id: uuid.UUID,
    destination_wallet_id: uuid.UUID,
    amount: Decimal,
    idempotency_key: str,
    metadata: dict,
    admit: Admission = admit_all,
) -> TransferResult:
    """Move `amount` from one customer wallet to another, exactly once per key."""
    movement = Movement.transfer(
        source_wallet_id=source_wallet_id, destination_wallet_id=destination_wallet_id, amount=amount, metadata=metadata
    )
    return money_request_answer(
        client=client, idempotency_key=idempotency_key, read_movement=lambda: movement, admit=admit
    )


def deposit_create(
    *,
    client: AbstractBaseUser,
    wallet_id: uuid.UUID,
    amount: Decimal,
    idempotency_key: str,
    metadata: dict,
    admit: Admission = admit_all,
) -> TransferResult:
    """Move money in: from the currency's settlement wallet to a customer wallet."""
    movement = Movement.deposit(wallet_id=wallet_id, amount=amount, metadata=metadata)
    return money_request_answer(
        client=client, idempotency_key=idempotency_key, read_movement=lambda: movement, admit=admit
    )


def withdrawal_create(
    *,
    client: AbstractBaseUser,
    wallet_id: uuid.UUID,
    amount: Decimal,
    idempotency_key: str,
    metadata: dict,
    admit: Admission = admit_all,
) -> TransferResult:
    """Move money out: from a customer wallet to the currency's settlement wallet."""
    movement = Movement.withdrawal(wallet_id=wallet_id, amount=amount, metadata=metadata)
    return money_request_answer(
        client=client, idempotency_key=idempotency_key, read_movement=lambda: movement, admit=admit
    )


def money_request_answer(
    *,
    client: AbstractBaseUser,
    idempotency_key: str,
    read_movement: Callable[[], Movement],
    request_digest: str = "",
    admit: Admission = admit_all,
) -> TransferResult:
    """Answer a money-moving request, exactly once per (client, key): the
    protocol above. What the API calls, with the request not yet read.

    `read_movement` reads the request (for the API: parses and validates the
    body, which may raise) and is called only when the answer needs it.
    `request_digest`, a digest of the request exactly as sent, is stored with
    a new log. A later request with the same digest is a byte-identical
    retry: once the log is finished it is replayed from the log without
    `read_movement` being called, since it cannot ask for anything else, and
    retries are what replays mostly are (a double tap, a client's timeout).
    "" stores none and matches none.
    """
    started = time.perf_counter()
    result = _run_protocol(
        client=client,
        idempotency_key=idempotency_key,
        read_movement=read_movement,
        request_digest=request_digest,
        admit=admit,
    )
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
            request_fingerprint=request_fingerprint(reversal_of=str(original.pk)),
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
        "request_fingerprint", "request_digest", "type", "status", "amount", "reference", "currency", "error_code",
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
_CUSTOMER, _SETTLEMENT = WalletKind.CUSTOMER.value, WalletKind.SETTLEMENT.value
_WALLETS_OF = {
    TransactionType.TRANSFER: f"s.id = %(source)s AND s.kind = '{_CUSTOMER}' AND d.id = %(destination)s "
    f"AND d.kind = '{_CUSTOMER}'",
    TransactionType.DEPOSIT: f"d.id = %(destination)s AND d.kind = '{_CUSTOMER}' AND s.kind = '{_SETTLEMENT}' "
    "AND s.currency = d.currency",
    TransactionType.WITHDRAWAL: f"s.id = %(source)s AND s.kind = '{_CUSTOMER}' AND d.kind = '{_SETTLEMENT}' "
    "AND d.currency = s.currency",
}
_INSERT_PENDING = """
INSERT INTO transaction_logs (
    id, client_id, idempotency_key, request_fingerprint, request_digest, source_wallet_id, destination_wallet_id,
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
# ...and the log marked COMPLETED by the same statement: one round trip fewer
# while the wallet rows are locked.
_MOVE_MONEY_AND_COMPLETE = f"""
WITH legs AS ({_MOVE_MONEY})
UPDATE transaction_logs SET status = 'COMPLETED', completed_at = %(now)s, updated_at = %(now)s WHERE id = %(log)s
"""  # noqa: S608 (constants only)
_FAIL = """
UPDATE transaction_logs SET status = 'FAILED', error_code = %(code)s, error_message = %(message)s, updated_at = %(now)s
 WHERE id = %(log)s
"""


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


def _ensure_same_request(log: TransactionLog, fingerprint: str) -> None:
    if log.request_fingerprint != fingerprint:
        raise IdempotencyKeyReused()


def _run_protocol(
    *,
    client: AbstractBaseUser,
    idempotency_key: str,
    read_movement: Callable[[], Movement],
    request_digest: str,
    admit: Admission,
) -> TransferResult:
    # 1. A finished log is replayed without touching the lock or the wallets;
    # a byte-identical retry of the request that made it, without being read.
    log = _find_log(client, idempotency_key)
    finished = log is not None and log.status != TransactionStatus.PENDING
    if finished and request_digest and log.request_digest == request_digest:
        admit(True)
        return TransferResult(log=log, replayed=True)
    movement = read_movement()
    try:
        return _answer(
            client=client,
            idempotency_key=idempotency_key,
            movement=movement,
            request_digest=request_digest,
            admit=admit,
            log=log,
        )
    except (IdempotencyKeyInUse, IdempotencyKeyReused) as refusal:
        telemetry.key_refused(
            client=client, movement=movement, idempotency_key=idempotency_key, code=refusal.default_code
        )
        raise


def _answer(
    *,
    client: AbstractBaseUser,
    idempotency_key: str,
    movement: Movement,
    request_digest: str,
    admit: Admission,
    log: TransactionLog | None,
) -> TransferResult:
    """Steps 1 to 4 for a request that has been read; `log` is what step 1 found."""
    fingerprint = movement.fingerprint()
    # Charged before anything else is answered (a reused key's 422 included):
    # as a replay when the key's log is finished, else as new work.
    admit(log is not None and log.status != TransactionStatus.PENDING)
    if log is not None:
        _ensure_same_request(log, fingerprint)
        if log.status != TransactionStatus.PENDING:
            return TransferResult(log=log, replayed=True)

    # 2. The Redis lock.
    with locks.idempotency_lock(client.pk, idempotency_key) as lock:
        if log is None:
            # 3. The PENDING log, committed on its own (or the race's winner).
            log, created = _record_pending(
                client=client,
                idempotency_key=idempotency_key,
                fingerprint=fingerprint,
                request_digest=request_digest,
                movement=movement,
            )
            if not created:
                _ensure_same_request(log, fingerprint)
                if log.status != TransactionStatus.PENDING:
                    return TransferResult(log=log, replayed=True)
        # 4. Settle. Someone else may have settled it since we looked: then
        # this is a replay of their result.
        log, settled_now = transaction_settle(log_id=log.pk)
        lock.leave_to_expire()
    return TransferResult(log=log, replayed=not settled_now)


def _record_pending(
    *, client: AbstractBaseUser, idempotency_key: str, fingerprint: str, movement: Movement, request_digest: str = ""
) -> tuple[TransactionLog, bool]:
    """Insert the PENDING log in autocommit, so it is committed before any money
    moves, or return the log that won the race for this (client, key).
    Returns (log, created). Unknown wallets are a 404 and store nothing: the
    key stays free."""
    params = {
        "id": uuid.uuid4(),
        "client": client.pk,
        "key": idempotency_key,
        "fingerprint": fingerprint,
        "digest": request_digest,
        "source": movement.source_wallet_id,
        "destination": movement.destination_wallet_id,
        "amount": movement.amount,
        "type": movement.type.value,
        "reference": new_reference(),
        "metadata": Jsonb(movement.metadata),
        "now": timezone.now(),
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
            _ensure_wallets(movement)
    raise RuntimeError(f"could not record the PENDING log for key {idempotency_key!r}")


def _ensure_wallets(movement: Movement) -> None:
    roles = (("Source", movement.source_wallet_id), ("Destination", movement.destination_wallet_id))
    customer_wallets = {
        w.pk: w
        for w in Wallet.objects.filter(
            pk__in=[wallet_id for _, wallet_id in roles if wallet_id], kind=WalletKind.CUSTOMER
        )
    }
    for role, wallet_id in roles:
        if wallet_id is not None and wallet_id not in customer_wallets:
            raise WalletNotFound(f"{role} wallet not found." if movement.type == TransactionType.TRANSFER else None)
    if movement.type != TransactionType.TRANSFER:
        (wallet,) = customer_wallets.values()
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
            _run(_FAIL, {"code": log.error_code, "message": log.error_message, "now": now, "log": log.pk})
        else:
            _run(
                _MOVE_MONEY_AND_COMPLETE,
                {"source": source.pk, "destination": destination.pk, "amount": log.amount, "now": now, "log": log.pk},
            )
            log.status, log.completed_at = TransactionStatus.COMPLETED, now
        log.updated_at = now
    # Recorded after the commit: nothing extra while the wallet rows are locked.
    LOCK_WAIT.observe(lock_wait)
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
