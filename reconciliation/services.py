"""Reconciliation: finish what a crash left PENDING, and prove the books balance.

Both are safe to run at any time, any number of times at once, beside live
traffic: re-driving goes through the very settle step a client retry uses
(transfers.services.transaction_settle), taking each log with SKIP LOCKED;
verification reads one consistent snapshot and writes nothing.
"""

import logging
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from itertools import chain

from django.conf import settings
from django.db import Error, connection, transaction
from django.db.models import Count, Min, Q
from django.utils import timezone

from reconciliation import records
from transfers.models import (
    MONEY_MOVED_STATUSES,
    REFERENCE_FORMAT,
    BatchStatus,
    TransactionLog,
    TransactionStatus,
    TransferBatch,
)
from transfers.services import batch_settle, transaction_settle
from wallet_project.api import uuid_from_text
from wallet_project.db.faults import is_transient
from wallets.models import WalletKind

logger = logging.getLogger(__name__)

# --- re-driving PENDING logs ----------------------------------------------------


@dataclass(frozen=True)
class ReconcileOutcome:
    log_id: uuid.UUID
    reference: str
    # COMPLETED or FAILED (settled by this run), SKIPPED (another worker or a
    # client retry held it, or had already settled it), PENDING (dry run),
    # ERROR (settling it raised: still PENDING, needs a person).
    outcome: str
    detail: str = ""


def stale_pending_logs(*, older_than: timedelta | None = None):
    """PENDING logs created more than `older_than` ago, oldest first; a
    batch's payouts are settled with their batch (stale_pending_batches)."""
    age = settings.RECONCILE_PENDING_AFTER if older_than is None else older_than
    return TransactionLog.objects.filter(
        status=TransactionStatus.PENDING, created_at__lt=timezone.now() - age, batch__isnull=True
    ).order_by("created_at")


def stale_pending_batches(*, older_than: timedelta | None = None):
    """PENDING batches created more than `older_than` ago, oldest first."""
    age = settings.RECONCILE_PENDING_AFTER if older_than is None else older_than
    return TransferBatch.objects.filter(status=BatchStatus.PENDING, created_at__lt=timezone.now() - age).order_by(
        "created_at"
    )


def pending_log_lookup(*, identifier: str) -> TransactionLog | None:
    """A single log (for `reconcile --transaction`) by its id, read as the
    API reads one (uuid_from_text: 8-4-4-4-12 hex digits, not uuid.UUID's
    braces, `urn:uuid:` or bare 32 digits), or by its reference (TXN-...);
    None when no log has it. Raises ValueError, saying what is accepted,
    for text that is neither."""
    try:
        log_id = uuid_from_text(identifier)
    except ValueError:
        log_id = None
    if log_id is not None:
        return TransactionLog.objects.filter(pk=log_id).first()
    if not REFERENCE_FORMAT.fullmatch(identifier):
        raise ValueError(
            "neither a transaction id (8-4-4-4-12 hex digits, such as 4f1c2a9e-0b7d-4c3e-9a51-2d6f8e0b1a7c) nor a "
            "reference (TXN- and at least 10 upper-case letters or digits)."
        )
    return TransactionLog.objects.filter(reference=identifier).first()


def logs_reconcile(
    *,
    logs,
    batches=None,
    dry_run: bool = False,
    on_progress: Callable[[ReconcileOutcome], None] | None = None,
) -> list[ReconcileOutcome]:
    """Re-drive each PENDING log through the settle step, then each PENDING
    batch of payouts (`batches`, a TransferBatch queryset) through its own.

    Never moves money twice: each log (or batch) is taken with SKIP LOCKED
    and settled only if still PENDING under its row lock. One a client retry
    is busy with is SKIPPED; that retry will settle it. One whose settling
    fails is reported as ERROR and the run goes on, so one bad log cannot
    block the ones behind it; losing the database itself ends the run.
    """
    outcomes: list[ReconcileOutcome] = []
    # Lazily: the logs come in keyset pages (_in_batches), never all at once.
    work = ((log, _reconcile_one) for log in _in_batches(logs))
    if batches is not None:
        work = chain(work, ((batch, _reconcile_batch) for batch in batches.only("id", "created_at").iterator()))
    try:
        for item, reconcile in work:
            if dry_run:
                outcome = ReconcileOutcome(item.pk, _label(item), "PENDING", "dry run: would be re-driven")
            else:
                outcome = reconcile(item)
            outcomes.append(outcome)
            if on_progress:
                on_progress(outcome)
    except Exception:
        if not dry_run:
            records.reconciliation_run(counts=outcome_counts(outcomes), failed=True)
        raise
    if not dry_run:
        counts = outcome_counts(outcomes)
        records.reconciliation_run(counts=counts, failed=counts["ERROR"] > 0)
    return outcomes


def outcome_counts(outcomes: list[ReconcileOutcome]) -> Counter[str]:
    """How many logs a run left in each outcome (0 for an outcome none had)."""
    return Counter(outcome.outcome for outcome in outcomes)


def _reconcile_one(log: TransactionLog) -> ReconcileOutcome:
    try:
        settled, settled_now = transaction_settle(log_id=log.pk, skip_locked=True)
    except Exception as exc:
        if isinstance(exc, Error) and is_transient(exc):
            raise  # the database is gone: no other log can be settled either
        logger.exception("reconciliation could not settle %s", log.reference)
        return ReconcileOutcome(log.pk, log.reference, "ERROR", f"{type(exc).__name__}: {exc}")
    if settled is None or not settled_now:
        detail = "busy elsewhere" if settled is None else f"already {settled.status}"
        return ReconcileOutcome(log.pk, log.reference, "SKIPPED", detail)
    logger.info(
        "reconciliation settled %s: %s",
        settled.reference,
        settled.status,
        extra={
            "event": "reconciliation",
            "transaction_id": str(settled.pk),
            "reference": settled.reference,
            "type": settled.type,
            "outcome": settled.status.lower(),
            "error_code": settled.error_code or None,
            "amount": str(settled.amount),
            "currency": settled.currency,
        },
    )
    return ReconcileOutcome(settled.pk, settled.reference, str(settled.status), settled.error_message)


def _label(item) -> str:
    """How the table names a log (its reference) or a batch (batch:<id>)."""
    return f"batch:{item.pk}" if isinstance(item, TransferBatch) else item.reference


def _reconcile_batch(batch: TransferBatch) -> ReconcileOutcome:
    label = _label(batch)
    try:
        settled, settled_now = batch_settle(batch_id=batch.pk, skip_locked=True)
    except Exception as exc:
        if isinstance(exc, Error) and is_transient(exc):
            raise
        logger.exception("reconciliation could not settle %s", label)
        return ReconcileOutcome(batch.pk, label, "ERROR", f"{type(exc).__name__}: {exc}")
    if settled is None or not settled_now:
        detail = "busy elsewhere" if settled is None else f"already {settled.status}"
        return ReconcileOutcome(batch.pk, label, "SKIPPED", detail)
    logger.info(
        "reconciliation settled %s: %s",
        label,
        settled.status,
        extra={
            "event": "reconciliation",
            "batch_id": str(settled.pk),
            "outcome": settled.status.lower(),
            "error_code": settled.error_code or None,
            "completed": settled.completed_count,
            "failed": settled.failed_count,
        },
    )
    detail = f"{settled.completed_count} of {settled.payout_count} payouts completed"
    return ReconcileOutcome(settled.pk, label, str(settled.status), detail)


def _in_batches(logs) -> Iterator[TransactionLog]:
    # Only what re-driving needs, in bounded keyset pages: a backlog of a
    # million PENDING logs is never loaded at once, and a skipped log (still
    # PENDING) cannot be met twice.
    logs = logs.only("id", "reference", "created_at").order_by("created_at", "id")
    page = list(logs[: settings.RECONCILE_BATCH_SIZE])
    while page:
        yield from page
        last = page[-1]
        after = Q(created_at__gt=last.created_at) | Q(created_at=last.created_at, id__gt=last.pk)
        page = list(logs.filter(after)[: settings.RECONCILE_BATCH_SIZE])


def stale_pending_reconcile(*, older_than: timedelta | None = None) -> list[ReconcileOutcome]:
    """What the beat task runs every minute."""
    return logs_reconcile(
        logs=stale_pending_logs(older_than=older_than), batches=stale_pending_batches(older_than=older_than)
    )


# --- proving the books balance ---------------------------------------------------------


@dataclass(frozen=True)
class Discrepancy:
    # conservation | ledger_agreement | held_agreement | negative_balance, or
    # the ledger chain's: chain | chain_checkpoint (reconciliation/chain.py)
    invariant: str
    subject: str  # a currency, a wallet id, a chain position or a transaction id
    detail: str


def ledger_verify(*, chain: list[Discrepancy] | None = None) -> list[Discrepancy]:
    """ledger_discrepancies, and `chain` (what a check of the ledger chain
    found, chain.chain_discrepancies, when one was made), the result recorded
    for the metrics endpoint (what `manage.py verify_ledger`, the beat task
    and the admin's page run)."""
    found = ledger_discrepancies()
    records.ledger_verified(discrepancies=len(found), chain_discrepancies=None if chain is None else len(chain))
    discrepancies = [*found, *(chain or [])]
    if discrepancies:
        logger.error(
            "verify_ledger found %d discrepancies",
            len(discrepancies),
            extra={"event": "ledger_verification", "discrepancies": len(discrepancies)},
        )
    return discrepancies


def ledger_discrepancies() -> list[Discrepancy]:
    """Invariants 1-3 of docs/design.md ("The promise") over the whole database, set-based.

    Runs in one REPEATABLE READ, READ ONLY transaction: one snapshot, so a
    transfer committing meanwhile cannot make a correct ledger look wrong.
    Four aggregate queries, whatever the number of logs; the fourth is
    held_agreement: wallet.held equals the sum of its OPEN holds.
    """
    moved = ", ".join(f"'{status}'" for status in MONEY_MOVED_STATUSES)
    found: list[Discrepancy] = []
    # Inside a caller's transaction (a test's, say) that one sets the snapshot.
    own_transaction = not connection.in_atomic_block
    with transaction.atomic(), connection.cursor() as cursor:
        if own_transaction:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")

        cursor.execute("SELECT currency, SUM(balance) FROM wallets GROUP BY currency HAVING SUM(balance) <> 0")
        for currency, total in cursor.fetchall():
            found.append(Discrepancy("conservation", currency, f"balances sum to {total}, not 0"))

        cursor.execute(
            f"""
            WITH legs AS (
                SELECT source_wallet_id AS wallet_id, -amount AS delta
                  FROM transaction_logs WHERE status IN ({moved})
                UNION ALL
                SELECT destination_wallet_id, amount
                  FROM transaction_logs WHERE status IN ({moved})
            ), ledger AS (
                SELECT wallet_id, SUM(delta) AS total FROM legs GROUP BY wallet_id
            )
            SELECT w.id, w.balance, COALESCE(l.total, 0)
              FROM wallets w LEFT JOIN ledger l ON l.wallet_id = w.id
             WHERE w.balance <> COALESCE(l.total, 0)
             ORDER BY w.id
            """  # noqa: S608 (only our own constants are interpolated)
        )
        for wallet_id, balance, ledger in cursor.fetchall():
            found.append(
                Discrepancy(
                    "ledger_agreement",
                    str(wallet_id),
                    f"balance {balance} but the ledger says {ledger} (off by {Decimal(balance) - Decimal(ledger)})",
                )
            )

        # Holds (docs/api.md, "Holds"): what a wallet shows as held is what its OPEN holds reserve.
        cursor.execute(
            """
            SELECT w.id, w.held, COALESCE(h.total, 0)
              FROM wallets w
              LEFT JOIN (SELECT source_wallet_id, SUM(amount) AS total FROM holds WHERE status = 'OPEN'
                          GROUP BY source_wallet_id) h ON h.source_wallet_id = w.id
             WHERE w.held <> COALESCE(h.total, 0)
             ORDER BY w.id
            """
        )
        for wallet_id, held, total in cursor.fetchall():
            found.append(
                Discrepancy("held_agreement", str(wallet_id), f"held {held} but its open holds reserve {total}")
            )

        cursor.execute(
            "SELECT id, balance FROM wallets WHERE kind = %s AND balance < 0 ORDER BY id", [WalletKind.CUSTOMER]
        )
        for wallet_id, balance in cursor.fetchall():
            found.append(Discrepancy("negative_balance", str(wallet_id), f"customer wallet balance {balance}"))
    return found


def pending_summary() -> dict:
    """How many logs are PENDING and how old the oldest is (for on-call), in
    one query on the (status, created_at) index."""
    found = TransactionLog.objects.filter(status=TransactionStatus.PENDING).aggregate(
        count=Count("id"), oldest=Min("created_at")
    )
    age = (timezone.now() - found["oldest"]) if found["oldest"] else None
    return {"count": found["count"], "oldest_age": age}
