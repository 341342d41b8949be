"""The money engine: the one step that decides and applies movements.

Every movement that settles (a transfer, a deposit, a withdrawal, each payout
of a batch) goes through the same step, for one movement or many at once
(docs/design.md, "The engine"):

1. Lock: the unit's own row (the log of a single movement, or its batch's
   row), then every wallet the movements touch in primary-key order
   (transfers/locks.py), then, for money that enters or leaves through a
   settlement wallet, the exposure row of the customer wallet's owner.
2. Decide (`decide`): each movement in order, against the locked rows and
   the balances the movements before it leave (`check_rules`, every rule in
   one function): COMPLETED, or FAILED with the rule it broke. A `Posting`
   holds the decisions and the balance and exposure changes they add up to.
3. Apply (`apply`): one statement changes every balance and exposure, marks
   every log COMPLETED or FAILED and writes each one's events, one per owner
   of its wallets (the transactional outbox), before the commit.

A single movement is the one-movement case (`settle_log`); a batch
(`settle_batch`) adds only what is its own: the PENDING payouts are found
through the batch's row, an atomic batch turns its first failure into every
payout's, and the batch row is finished with its `batch.finished` event.

Deadlocks and serialization failures roll the whole transaction back; it is
run again a bounded number of times (`retrying`).
"""

import json
import logging
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TypeVar

from django.conf import settings
from django.db import OperationalError, connection, transaction
from django.utils import timezone

from transfers import locks, telemetry
from transfers.exceptions import (
    BUSINESS_RULE_ERRORS,
    BalanceLimitExceeded,
    BatchFailed,
    BusinessRuleViolation,
    CurrencyMismatch,
    InsufficientBalance,
    LimitExceeded,
    WalletInactive,
)
from transfers.models import BatchStatus, ClientExposure, TransactionLog, TransactionStatus, TransferBatch
from transfers.rendering import transaction_json_sql
from wallet_project.db import fetch, in_model_order, run
from wallet_project.fields import timestamp_text
from wallets.events import record_events
from wallets.models import SYSTEM_KINDS, EventType, Wallet, WalletKind
from wallets.money import MAX_AMOUNT

logger = logging.getLogger(__name__)

# PostgreSQL's deadlock_detected and serialization_failure: the transaction
# was rolled back whole, so running it again is safe.
RETRYABLE_SQLSTATES = {"40P01", "40001"}

T = TypeVar("T")


def retrying(settle: Callable[[], T], subject) -> T:
    """Run one settle transaction, again on a deadlock or a serialization
    failure (PostgreSQL rolled it back whole), TRANSFER_MAX_ATTEMPTS in all."""
    for attempt in range(1, settings.TRANSFER_MAX_ATTEMPTS + 1):
        try:
            return settle()
        except OperationalError as exc:
            sqlstate = getattr(exc.__cause__, "sqlstate", None)
            if sqlstate not in RETRYABLE_SQLSTATES or attempt == settings.TRANSFER_MAX_ATTEMPTS:
                raise
            logger.info("settle %s: %s on attempt %d, retrying", subject, sqlstate, attempt)
            # Jittered so that two transactions that deadlocked do not meet again.
            time.sleep(random.uniform(0, 0.01 * 2**attempt))
    raise AssertionError("unreachable")


# --- deciding ---------------------------------------------------------------------


@dataclass(frozen=True)
class Failure:
    """Why a movement did not move: a business rule's code and message (a
    BUSINESS_RULE_ERRORS code; the 422 the API answers with)."""

    code: str
    message: str

    @classmethod
    def of(cls, violation: BusinessRuleViolation) -> "Failure":
        return cls(violation.default_code, str(violation.detail))

    def violation(self) -> BusinessRuleViolation:
        """The error again, to raise where a broken rule refuses instead of
        failing a log (a correction)."""
        return BUSINESS_RULE_ERRORS[self.code](self.message)


@dataclass(frozen=True)
class Decision:
    """What the engine decided for one movement (a PENDING log): it moves
    (failure None: COMPLETED) or it does not (FAILED, with why)."""

    log: TransactionLog
    failure: Failure | None = None

    @property
    def status(self) -> str:
        return TransactionStatus.COMPLETED.value if self.failure is None else TransactionStatus.FAILED.value


@dataclass(frozen=True)
class ExposureChange:
    """A movement's change to its client's exposure (transfers.models.ClientExposure):
    the row, locked, and the signed amount to add to it."""

    row: ClientExposure
    change: Decimal


@dataclass
class Posting:
    """The decisions for a set of movements, in order, and what applying them
    changes: each wallet's balance and each exposure row's amount (signed
    sums, by primary key), and who hears of each movement (owner ids).
    `reverses`: for a reversal (one decision, its compensation), the
    COMPLETED log it reverses, which apply marks REVERSED."""

    decisions: list[Decision]
    balance_changes: dict[uuid.UUID, Decimal] = field(default_factory=dict)
    exposure_changes: dict[int, Decimal] = field(default_factory=dict)
    owners: dict[uuid.UUID, list[int]] = field(default_factory=dict)
    reverses: TransactionLog | None = None

    @property
    def completed(self) -> list[TransactionLog]:
        return [decision.log for decision in self.decisions if decision.failure is None]


def check_rules(
    log: TransactionLog,
    source: Wallet,
    destination: Wallet,
    exposure: ExposureChange | None,
    *,
    frozen_blocks: bool = True,
) -> None:
    """Every rule a movement must pass, in the order a client is told of
    them: raises the first BusinessRuleViolation it breaks. `source` and
    `destination` are the locked rows with the balances the movements decided
    before this one leave; `exposure` is the locked exposure row it changes
    (None between customer wallets). A new rule is one more check here.
    `frozen_blocks`: False for a correction, the one rule it does not keep
    (an operator's correction must reach a frozen wallet: docs/design.md,
    "The corrections' money")."""
    if frozen_blocks and not source.is_active:
        raise WalletInactive("The source wallet is inactive.")
    if frozen_blocks and not destination.is_active:
        raise WalletInactive("The destination wallet is inactive.")
    if source.currency != destination.currency or log.currency != source.currency:
        raise CurrencyMismatch(
            f"The source wallet holds {source.currency}, the destination wallet {destination.currency}."
        )
    if source.kind == WalletKind.CUSTOMER and source.balance < log.amount:
        raise InsufficientBalance()
    # One client must not take a settlement wallet to where other clients'
    # deposits no longer fit (docs/design.md, "Client exposure"); checked
    # first, so that a client past its own limit is told so, not that the
    # ledger is full. Only a rise is refused: money going back out is welcome.
    if exposure is not None and exposure.change > 0:
        after = exposure.row.amount + exposure.change
        if after > settings.CLIENT_EXPOSURE_LIMIT:
            raise LimitExceeded(
                f"Client exposure limit: this would take what the client's wallets hold in {exposure.row.currency} "
                f"from deposits (deposits minus withdrawals) to {after}, past the limit of "
                f"{settings.CLIENT_EXPOSURE_LIMIT}. Withdraw first, or ask the operator."
            )
    # Without this a balance past NUMERIC(20,2) is an overflow error at the
    # UPDATE, and the log would stay PENDING through every retry.
    if destination.balance + log.amount > MAX_AMOUNT or source.balance - log.amount < -MAX_AMOUNT:
        raise BalanceLimitExceeded()


def exposure_change(
    payer: Wallet, payee: Wallet, amount: Decimal, locked: dict[tuple[int, str], ClientExposure]
) -> ExposureChange | None:
    """Whose exposure a movement changes, its row locked (after the wallets,
    transfers/locks.py), and by how much: + amount to the owner of a customer
    wallet a system wallet pays (a deposit, a reversed withdrawal, a credit
    adjustment from suspense), - amount to the owner of one that pays a
    system wallet; None between customer wallets. A suspense wallet counts
    as the settlement wallet does: money from it enters the client's wallets
    from outside them (docs/design.md, "Client exposure").
    `locked`: the rows this transaction has locked already, by (client, currency)."""
    if payer.kind in SYSTEM_KINDS:
        customer, change = payee, amount
    elif payee.kind in SYSTEM_KINDS:
        customer, change = payer, -amount
    else:
        return None
    key = (customer.owner_id, customer.currency)
    row = locked.get(key)
    if row is None:
        row = locked[key] = locks.lock_exposure(*key)
    return ExposureChange(row, change)


def owners(*wallets: Wallet) -> list[int]:
    """The clients whose wallets a movement touches: its events' recipients
    (a settlement wallet has no owner)."""
    return sorted({wallet.owner_id for wallet in wallets if wallet.owner_id is not None})


def decide(logs: list[TransactionLog], wallets: dict[uuid.UUID, Wallet], *, frozen_blocks: bool = True) -> Posting:
    """Decide each PENDING log in the order given, on the locked `wallets`
    (by id, every wallet the logs touch), whose balances and exposures run
    as the logs before complete: a log that no longer fits fails, and the
    ones after it may still fit. Locks each exposure row it needs, once.
    `frozen_blocks`: check_rules'."""
    posting = Posting(decisions=[])
    exposures: dict[tuple[int, str], ClientExposure] = {}
    balances, exposure_changes = posting.balance_changes, posting.exposure_changes
    for log in logs:
        source, destination = wallets[log.source_wallet_id], wallets[log.destination_wallet_id]
        posting.owners[log.pk] = owners(source, destination)
        exposure = exposure_change(source, destination, log.amount, exposures)
        try:
            check_rules(log, source, destination, exposure, frozen_blocks=frozen_blocks)
        except BusinessRuleViolation as violation:
            posting.decisions.append(Decision(log, Failure.of(violation)))
            continue
        posting.decisions.append(Decision(log))
        # The locked rows, changed in memory only: the next log's check sees
        # what this one leaves. apply() writes the sums.
        source.balance -= log.amount
        destination.balance += log.amount
        balances[source.pk] = balances.get(source.pk, Decimal(0)) - log.amount
        balances[destination.pk] = balances.get(destination.pk, Decimal(0)) + log.amount
        if exposure is not None:
            exposure.row.amount += exposure.change
            exposure_changes[exposure.row.pk] = exposure_changes.get(exposure.row.pk, Decimal(0)) + exposure.change
    return posting


# --- applying ---------------------------------------------------------------------


# A transaction as an event carries it (docs/api.md, "Events and webhooks"),
# for the recipient `owner`: as a lookup by reference shows it to that owner,
# reversal links included (transfers/rendering.py, the one field list).
# Written in SQL so that settling inserts the events in the statement that
# completes the logs: no round trip, and no Python rendering in the
# service's process (rendering it in Python after the locks would add the
# serializer's cost per event).
EVENT_OBJECT = transaction_json_sql(row="t", viewer="owner")
# transfer.completed, deposit.failed, ...: the one place an event's type is
# made from its transaction's. A reversed movement of any type is
# transfer.reversed (docs/api.md, "Events and webhooks").
EVENT_TYPE = (
    f"CASE WHEN t.status = '{TransactionStatus.REVERSED.value}' THEN '{EventType.TRANSFER_REVERSED.value}' "
    "ELSE lower(t.type) || '.' || lower(t.status) END"
)

# A posting, applied in one statement on rows the caller has locked: every
# balance, every exposure, every log COMPLETED or FAILED (a log moves money at
# most once: its row lock and the PENDING check before deciding make it so;
# the statement's PENDING condition is a backstop), for a reversal its original REVERSED
# (only a COMPLETED one), and each log's event per owner of its wallets, in
# the order decided. One statement: no round trip added while the wallet
# rows are locked. The CHECK on customer balances is the backstop should a
# rule check ever be wrong. The posting comes as one JSON document (apply):
# psycopg adapts one text parameter for much less than eleven arrays
# (bench/instructions.py: about 0.3M instructions per transfer). Sent with
# its whitespace collapsed (no literal in it holds two spaces running):
# psycopg parses a statement longer than 4096 bytes afresh on every execute
# (its cache's limit, MAX_CACHED_STATEMENT_LENGTH), which cost about 0.2M
# instructions per transfer; transfers/tests/test_engine_statements.py
# keeps it under.
SETTLE_READABLE = f"""
WITH legs AS (
  UPDATE wallets w SET balance = w.balance + v.delta, updated_at = %(now)s
    FROM jsonb_to_recordset(%(posting)s::jsonb -> 'legs') AS v(id uuid, delta numeric)
   WHERE w.id = v.id
),
exposure AS (
  UPDATE client_exposures x SET amount = x.amount + v.change, updated_at = %(now)s
    FROM jsonb_to_recordset(%(posting)s::jsonb -> 'exposures') AS v(id bigint, change numeric)
   WHERE x.id = v.id
),
settled AS (
  UPDATE transaction_logs t
     SET status = v.status, error_code = v.code, error_message = v.message, updated_at = %(now)s,
         completed_at = CASE WHEN v.status = 'COMPLETED' THEN %(now)s::timestamptz END
    FROM jsonb_to_recordset(%(posting)s::jsonb -> 'logs') AS v(id uuid, status text, code text, message text)
   WHERE t.id = v.id AND t.status = 'PENDING'
  RETURNING t.*
),
reversed AS (
  UPDATE transaction_logs r SET status = 'REVERSED', updated_at = %(now)s
   WHERE r.id = (%(posting)s::jsonb ->> 'reverses')::uuid AND r.status = 'COMPLETED'
  RETURNING r.*
),
t AS (SELECT * FROM settled UNION ALL SELECT * FROM reversed)
INSERT INTO events (client_id, type, data, created_at)
SELECT owner, {EVENT_TYPE}, {EVENT_OBJECT}, %(now)s
  FROM jsonb_to_recordset(%(posting)s::jsonb -> 'events') AS e(n integer, log uuid, owner integer)
  JOIN t ON t.id = e.log
 ORDER BY e.n
"""  # noqa: S608 (constants only)
SETTLE = " ".join(SETTLE_READABLE.split())


def apply(posting: Posting, now) -> None:
    """Write `posting` (SETTLE), and its outcome onto its logs in memory."""
    decisions = posting.decisions
    events = [(decision.log.pk, owner) for decision in decisions for owner in posting.owners[decision.log.pk]]
    document = {
        "legs": [{"id": str(pk), "delta": str(delta)} for pk, delta in posting.balance_changes.items()],
        "exposures": [{"id": pk, "change": str(change)} for pk, change in posting.exposure_changes.items()],
        "logs": [
            {
                "id": str(decision.log.pk),
                "status": decision.status,
                "code": decision.failure.code if decision.failure else "",
                "message": decision.failure.message if decision.failure else "",
            }
            for decision in decisions
        ],
    }
    reverses = posting.reverses
    if reverses is not None:
        # Its compensation moves money between the same two wallets: the same owners hear of it.
        document["reverses"] = str(reverses.pk)
        events += [(reverses.pk, owner) for owner in posting.owners[decisions[0].log.pk]]
    document["events"] = [{"n": n, "log": str(log_id), "owner": owner} for n, (log_id, owner) in enumerate(events)]
    _run(SETTLE, {"now": now, "posting": json.dumps(document, separators=(",", ":"))})
    for decision in decisions:
        log = decision.log
        log.status, log.updated_at = decision.status, now
        if decision.failure is None:
            log.completed_at = now
        else:
            log.error_code, log.error_message = decision.failure.code, decision.failure.message
    if reverses is not None:
        reverses.status, reverses.updated_at = TransactionStatus.REVERSED, now


def _fetch(statement: str, params) -> list[tuple]:
    return fetch(connection, statement, params)


def _run(statement: str, params) -> None:
    run(connection, statement, params)


# --- one movement -----------------------------------------------------------------


def settle_log(*, log_id: uuid.UUID, skip_locked: bool = False) -> tuple[TransactionLog | None, bool]:
    """Settle one PENDING log (the one-movement case): COMPLETED, or FAILED
    with the rule it broke. Returns (log, settled_now).

    The log row lock serialises every caller; only the one that finds it
    PENDING acts (settled_now=True). With skip_locked, a log another caller
    holds is left to it: (None, False). A batch's payout is settled only by
    its batch (an atomic batch must never complete one of them alone): it is
    returned still PENDING, settled_now False (services.transaction_settle
    then settles its batch).
    """
    return retrying(lambda: _settle_once(log_id, skip_locked=skip_locked), log_id)


def _settle_once(log_id: uuid.UUID, *, skip_locked: bool) -> tuple[TransactionLog | None, bool]:
    with transaction.atomic(durable=True):
        locking_started = time.perf_counter()
        log = locks.lock_log(log_id, skip_locked=skip_locked)
        if log is None:
            return None, False
        if log.status != TransactionStatus.PENDING or log.batch_id is not None:
            return log, False
        wallets = locks.lock_wallets(log.source_wallet_id, log.destination_wallet_id)
        lock_wait = time.perf_counter() - locking_started
        apply(decide([log], wallets), timezone.now())
    # Recorded after the commit: nothing extra while the wallet rows are locked.
    telemetry.LOCK_WAIT.observe(lock_wait)
    return log, True


# --- a correction -----------------------------------------------------------------


def settle_correction(log: TransactionLog, *, reverses: TransactionLog | None = None) -> None:
    """Post a correction (a reversal's compensation, a manual adjustment:
    docs/design.md, "The corrections' money"), in the caller's transaction
    if there is one: the one-movement step with every rule but the frozen
    wallet's, refused rather than recorded FAILED. `log` is new and unsaved
    (its client, key, fingerprint, type, wallets, amount, currency,
    metadata); it is inserted PENDING and applied COMPLETED, with its events.
    `reverses`: the COMPLETED log it compensates, locked by the caller,
    marked REVERSED in the same statement with its transfer.reversed event.

    Raises the rule it breaks (InsufficientBalance, CurrencyMismatch,
    LimitExceeded, BalanceLimitExceeded), having written nothing; and
    IntegrityError for a second log under the same (client, key) or a
    second reversal of one log."""
    with transaction.atomic():
        wallets = locks.lock_wallets(log.source_wallet_id, log.destination_wallet_id)
        posting = decide([log], wallets, frozen_blocks=False)
        (decision,) = posting.decisions
        if decision.failure is not None:
            raise decision.failure.violation()
        log.status = TransactionStatus.PENDING
        log.save(force_insert=True)
        posting.reverses = reverses
        apply(posting, timezone.now())


# --- a batch of payouts -----------------------------------------------------------

PAYOUT_FIELDS = in_model_order(TransactionLog, [*locks.LOCKED_LOG_FIELDS, "batch_index"])
_PENDING_PAYOUTS = (
    f"SELECT {', '.join(PAYOUT_FIELDS)} FROM transaction_logs "  # noqa: S608 (model field names)
    "WHERE batch_id = %s AND status = 'PENDING' ORDER BY batch_index"
)
_FINISH_BATCH = """
UPDATE transfer_batches
   SET status = %(status)s, completed_count = %(completed)s, completed_amount = %(completed_amount)s,
       failed_count = %(failed)s, error_code = %(code)s, error_message = %(message)s, failed_index = %(failed_index)s,
       finished_at = %(now)s, updated_at = %(now)s
 WHERE id = %(batch)s
"""


@dataclass(frozen=True)
class PayoutFailure:
    """The first payout of a batch that failed: its index in the batch and why."""

    index: int
    failure: Failure


def settle_batch(*, batch_id: uuid.UUID, skip_locked: bool = False) -> bool | None:
    """Settle a PENDING batch: every payout COMPLETED or FAILED, and the batch
    with them, in one database transaction. True: settled now; False: already
    settled; None: skip_locked and another caller holds it."""
    return retrying(lambda: _settle_batch_once(batch_id, skip_locked=skip_locked), batch_id)


def _settle_batch_once(batch_id: uuid.UUID, *, skip_locked: bool) -> bool | None:
    with transaction.atomic(durable=True):
        locking_started = time.perf_counter()
        batch = locks.lock_batch(batch_id, skip_locked=skip_locked)
        if batch is None:
            return None
        if batch.status != BatchStatus.PENDING:
            return False
        payouts = [
            TransactionLog.from_db(connection.alias, PAYOUT_FIELDS, row) for row in _fetch(_PENDING_PAYOUTS, [batch_id])
        ]
        wallets = locks.lock_wallets(batch.source_wallet_id, *(log.destination_wallet_id for log in payouts))
        lock_wait = time.perf_counter() - locking_started
        posting = decide(payouts, wallets)
        first_failure = _first_failure(batch, posting)
        if batch.atomic and first_failure is not None:
            posting = _none_moves(posting, first_failure)
        now = timezone.now()
        if posting.decisions:
            apply(posting, now)
        _finish(batch, posting, first_failure if batch.atomic else None, now)
    telemetry.LOCK_WAIT.observe(lock_wait)
    return True


def _first_failure(batch: TransferBatch, posting: Posting) -> PayoutFailure | None:
    """The batch's failed payout of lowest index: one a rule refused, or one
    with no log (its destination was not found, kept on the batch row)."""
    failures = [
        PayoutFailure(decision.log.batch_index, decision.failure)
        for decision in posting.decisions
        if decision.failure is not None
    ]
    failures += [
        PayoutFailure(rejected["index"], Failure(rejected["errorCode"], rejected["errorMessage"]))
        for rejected in batch.rejected_payouts
    ]
    return min(failures, key=lambda failure: failure.index, default=None)


def _none_moves(posting: Posting, first: PayoutFailure) -> Posting:
    """An atomic batch that failed at `first`: every payout FAILED, that one
    with its own reason, the others as not moved because of it; no balance
    or exposure changes."""
    not_moved = Failure(
        BatchFailed.default_code,
        f"Not moved: payout {first.index} of its atomic batch failed ({first.failure.code}: {first.failure.message})",
    )
    decisions = [
        Decision(d.log, d.failure if d.log.batch_index == first.index else not_moved) for d in posting.decisions
    ]
    return Posting(decisions=decisions, owners=posting.owners)


def _finish(batch: TransferBatch, posting: Posting, failure: PayoutFailure | None, now) -> None:
    """The batch row's outcome, and its batch.finished event to the client
    that sent it, in the settle transaction (each payout's own events are
    written by apply). The event's data is the batch as GET
    /api/transfers/batch/{batchId} shows it, without its payouts and message
    (BatchFinished in the schema, docs/api.md)."""
    completed = posting.completed
    payout_count = len(posting.decisions) + len(batch.rejected_payouts)
    completed_amount = sum((log.amount for log in completed), Decimal(0))
    if not completed:
        status = BatchStatus.FAILED
    elif len(completed) == payout_count:
        status = BatchStatus.COMPLETED
    else:
        status = BatchStatus.PARTIALLY_COMPLETED
    code = failure.failure.code if failure else ""
    message = f"Payout {failure.index}: {failure.failure.message}" if failure else ""
    failed_index = failure.index if failure else None
    _run(
        _FINISH_BATCH,
        {
            "batch": batch.pk,
            "status": status.value,
            "completed": len(completed),
            "completed_amount": completed_amount,
            "failed": payout_count - len(completed),
            "code": code,
            "message": message,
            "failed_index": failed_index,
            "now": now,
        },
    )
    record_events(
        type=EventType.BATCH_FINISHED,
        data_by_client={
            batch.client_id: {
                "batchId": str(batch.pk),
                "status": status.value,
                "atomic": batch.atomic,
                "sourceWalletId": str(batch.source_wallet_id),
                "payoutCount": payout_count,
                "totalAmount": f"{batch.total_amount:.2f}",
                "completedCount": len(completed),
                "completedAmount": f"{completed_amount:.2f}",
                "failedCount": payout_count - len(completed),
                "errorCode": code,
                "errorMessage": message,
                "failedPayoutIndex": failed_index,
                "createdAt": timestamp_text(batch.created_at),
                "finishedAt": timestamp_text(now),
            }
        },
    )
