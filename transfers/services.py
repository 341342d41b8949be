"""Where money moves. Nothing else in the code base changes a balance.

The protocol (DESIGN.md, "The transfer protocol"):

1. Look up the log of (client, idempotency key). A finished one is replayed;
   one for a different request is refused (IdempotencyKeyReused).
2. Take the Redis lock on (client, key): concurrent duplicates get
   IdempotencyKeyInUse. Skipped if Redis is down; never relied on.
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
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, OperationalError, transaction
from django.db.models import Case, F, When
from django.utils import timezone

from transfers import locks
from transfers.exceptions import (
    BalanceLimitExceeded,
    BusinessRuleViolation,
    CurrencyMismatch,
    IdempotencyKeyReused,
    InsufficientBalance,
    ReversalNotAllowed,
    WalletInactive,
)
from transfers.models import TransactionLog, TransactionStatus, TransactionType
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


def transfer_create(
    *,
    client: AbstractBaseUser,
    source_wallet_id: uuid.UUID,
    destination_wallet_id: uuid.UUID,
    amount: Decimal,
    idempotency_key: str,
    metadata: dict,
) -> TransferResult:
    """Move `amount` from one customer wallet to another, exactly once per key."""
    fingerprint = request_fingerprint(
        type=TransactionType.TRANSFER,
        source=str(source_wallet_id),
        destination=str(destination_wallet_id),
        amount=amount,
        metadata=metadata,
    )

    def resolve_wallets() -> tuple[Wallet, Wallet]:
        wallets = {w.pk: w for w in Wallet.objects.filter(pk__in=[source_wallet_id, destination_wallet_id])}
        source, destination = wallets.get(source_wallet_id), wallets.get(destination_wallet_id)
        for wallet, role in ((source, "Source"), (destination, "Destination")):
            if wallet is None or wallet.kind != WalletKind.CUSTOMER:
                raise WalletNotFound(f"{role} wallet not found.")
        return source, destination

    return _execute(
        client=client,
        idempotency_key=idempotency_key,
        fingerprint=fingerprint,
        type=TransactionType.TRANSFER,
        amount=amount,
        metadata=metadata,
        resolve_wallets=resolve_wallets,
    )


def deposit_create(
    *, client: AbstractBaseUser, wallet_id: uuid.UUID, amount: Decimal, idempotency_key: str, metadata: dict
) -> TransferResult:
    """Move money in: from the currency's settlement wallet to a customer wallet."""

    def resolve_wallets() -> tuple[Wallet, Wallet]:
        wallet = _customer_wallet(wallet_id)
        return settlement_wallet_get_or_create(currency=wallet.currency), wallet

    return _execute(
        client=client,
        idempotency_key=idempotency_key,
        fingerprint=request_fingerprint(
            type=TransactionType.DEPOSIT, wallet=str(wallet_id), amount=amount, metadata=metadata
        ),
        type=TransactionType.DEPOSIT,
        amount=amount,
        metadata=metadata,
        resolve_wallets=resolve_wallets,
    )


def withdrawal_create(
    *, client: AbstractBaseUser, wallet_id: uuid.UUID, amount: Decimal, idempotency_key: str, metadata: dict
) -> TransferResult:
    """Move money out: from a customer wallet to the currency's settlement wallet."""

    def resolve_wallets() -> tuple[Wallet, Wallet]:
        wallet = _customer_wallet(wallet_id)
        return wallet, settlement_wallet_get_or_create(currency=wallet.currency)

    return _execute(
        client=client,
        idempotency_key=idempotency_key,
        fingerprint=request_fingerprint(
            type=TransactionType.WITHDRAWAL, wallet=str(wallet_id), amount=amount, metadata=metadata
        ),
        type=TransactionType.WITHDRAWAL,
        amount=amount,
        metadata=metadata,
        resolve_wallets=resolve_wallets,
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
        _move_money(source=payer, destination=payee, amount=original.amount, now=now)
        original.status = TransactionStatus.REVERSED
        original.save(update_fields=["status", "updated_at"])
        return compensation


# --- the protocol ------------------------------------------------------------------


def _customer_wallet(wallet_id: uuid.UUID) -> Wallet:
    wallet = Wallet.objects.filter(pk=wallet_id, kind=WalletKind.CUSTOMER).first()
    if wallet is None:
        raise WalletNotFound()
    return wallet


def _find_log(client: AbstractBaseUser, idempotency_key: str) -> TransactionLog | None:
    return TransactionLog.objects.filter(client=client, idempotency_key=idempotency_key).first()


def _ensure_same_request(log: TransactionLog, fingerprint: str) -> None:
    if log.request_fingerprint != fingerprint:
        raise IdempotencyKeyReused()


def _execute(
    *,
    client: AbstractBaseUser,
    idempotency_key: str,
    fingerprint: str,
    type: TransactionType,
    amount: Decimal,
    metadata: dict,
    resolve_wallets,
) -> TransferResult:
    # 1. A finished log is replayed without touching the lock or the wallets.
    log = _find_log(client, idempotency_key)
    if log is not None:
        _ensure_same_request(log, fingerprint)
        if log.status != TransactionStatus.PENDING:
            return TransferResult(log=log, replayed=True)

    # 2. The Redis lock.
    with locks.idempotency_lock(client.pk, idempotency_key):
        if log is None:
            # Unknown wallets are a 404 before anything is stored: the key stays free.
            source, destination = resolve_wallets()
            # 3. The PENDING log, committed on its own.
            log, created = _record_pending(
                client=client,
                idempotency_key=idempotency_key,
                fingerprint=fingerprint,
                type=type,
                source=source,
                destination=destination,
                amount=amount,
                metadata=metadata,
            )
            if not created:
                _ensure_same_request(log, fingerprint)
                if log.status != TransactionStatus.PENDING:
                    return TransferResult(log=log, replayed=True)
        # 4. Settle. Someone else may have settled it since we looked: then
        # this is a replay of their result.
        log, settled_now = transaction_settle(log_id=log.pk)
    return TransferResult(log=log, replayed=not settled_now)


def _record_pending(
    *,
    client: AbstractBaseUser,
    idempotency_key: str,
    fingerprint: str,
    type: TransactionType,
    source: Wallet,
    destination: Wallet,
    amount: Decimal,
    metadata: dict,
) -> tuple[TransactionLog, bool]:
    """Insert and commit the PENDING log, or return the one that won the race
    for this (client, key). Returns (log, created)."""
    try:
        with transaction.atomic(durable=True):
            log = TransactionLog.objects.create(
                client=client,
                idempotency_key=idempotency_key,
                request_fingerprint=fingerprint,
                type=type,
                source_wallet=source,
                destination_wallet=destination,
                amount=amount,
                currency=source.currency,
                metadata=metadata,
            )
        return log, True
    except IntegrityError:
        winner = _find_log(client, idempotency_key)
        if winner is None:
            raise  # not the key's constraint: a bug, surfaced as such
        return winner, False


def _settle_once(log_id: uuid.UUID, *, skip_locked: bool) -> tuple[TransactionLog | None, bool]:
    with transaction.atomic(durable=True):
        log = locks.lock_log(log_id, skip_locked=skip_locked)
        if log is None:
            return None, False
        if log.status != TransactionStatus.PENDING:
            return log, False
        wallets = locks.lock_wallets(log.source_wallet_id, log.destination_wallet_id)
        source, destination = wallets[log.source_wallet_id], wallets[log.destination_wallet_id]
        now = timezone.now()
        try:
            _check_business_rules(log, source, destination)
        except BusinessRuleViolation as violation:
            log.status = TransactionStatus.FAILED
            log.error_code = violation.default_code
            log.error_message = str(violation.detail)
            log.save(update_fields=["status", "error_code", "error_message", "updated_at"])
            return log, True
        _move_money(source=source, destination=destination, amount=log.amount, now=now)
        log.status = TransactionStatus.COMPLETED
        log.completed_at = now
        log.save(update_fields=["status", "completed_at", "updated_at"])
        return log, True


def _move_money(*, source: Wallet, destination: Wallet, amount: Decimal, now) -> None:
    """Both legs in one statement, on rows the caller has locked. The CHECK on
    customer balances is the backstop should a rule check ever be wrong."""
    Wallet.objects.filter(pk__in=[source.pk, destination.pk]).update(
        balance=Case(When(pk=source.pk, then=F("balance") - amount), default=F("balance") + amount),
        updated_at=now,
    )


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
