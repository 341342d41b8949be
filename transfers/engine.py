"""The money engine: the one step that decides and applies movements.

Every movement that settles (a transfer, a deposit, a withdrawal, each payout
of a batch) goes through the same step, for one movement or many at once
(docs/design.md, "The engine"):

1. Lock: the unit's own row (the log of a single movement, or its batch's
   row), then every wallet the movements touch in primary-key order
   (transfers/locks.py); then every exposure row the movements change (money
   that enters or leaves through a settlement wallet) and every paying
   client's daily-debits row (while its currency has a cap), in that order
   (locks.lock_limit_rows).
2. Decide (`decide`, given the locked rows: it takes no lock): each
   movement in order, against the locked rows and
   the balances the movements before it leave (`check_rules`, every rule in
   one function): COMPLETED, or FAILED with the rule it broke. A `Posting`
   holds the decisions and the balance and exposure changes they add up to.
3. Apply (`apply_statement`): one statement changes every balance and
   exposure, marks every log COMPLETED or FAILED and writes each one's
   events, one per owner of its wallets (the transactional outbox), before
   the commit. A caller that answers from the log instances in memory copies
   the outcome onto them with `applied`, after its commit when it commits
   right away (a single movement); `apply` does both, for a caller whose
   transaction goes on (a correction, a hold's end).

A single movement is the one-movement case (`settle_log`); a batch
(`settle_batch`) adds only what is its own: the PENDING payouts are found
through the batch's row, an atomic batch turns its first failure into every
payout's, and the batch row is finished with its `batch.finished` event.

Deadlocks and serialization failures roll the whole transaction back; it is
run again a bounded number of times (`retrying`).
"""

import datetime
import json
import logging
import random
import re
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TypeVar

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, IntegrityError, OperationalError, connection, transaction
from django.utils import timezone

from events.models import EventType
from events.outbox import INSERT_EVENT_ROWS, event_rows_json, insert_events_sql, record_event_rows
from transfers import locks, telemetry
from transfers.exceptions import (
    BUSINESS_RULE_ERRORS,
    BalanceLimitExceeded,
    BatchFailed,
    BusinessRuleViolation,
    CaptureExceedsHold,
    CurrencyMismatch,
    HoldNotFound,
    IdempotencyKeyReused,
    InsufficientBalance,
    LimitExceeded,
    WalletInactive,
    WalletRestricted,
)
from transfers.models import (
    HOLD_REQUEST_KEY_CONSTRAINT,
    ZERO,
    BatchStatus,
    ClientDailyDebit,
    ClientExposure,
    Hold,
    HoldStatus,
    TransactionLog,
    TransactionStatus,
    TransactionType,
    TransferBatch,
    business_day,
    canonical_fingerprint,
    client_debits_key,
    exposure_change,
    new_reference,
)
from transfers.serializers import (
    BATCH_FIELDS,
    batch_json,
    hold_json,
    request_details_overlay_sql,
    transaction_json_sql,
)
from wallet_project.db.base import fetch, from_row, in_model_order, run
from wallets.models import MAX_AMOUNT, Wallet, WalletKind

logger = logging.getLogger(__name__)

# PostgreSQL's deadlock_detected and serialization_failure: the transaction
# was rolled back whole, so running it again is safe.
RETRYABLE_SQLSTATES = {"40P01", "40001"}

T = TypeVar("T")


def retrying(settle: Callable[[], T], subject) -> T:
    """Run one settle transaction, again on a deadlock or a serialization
    failure (PostgreSQL rolled it back whole), TRANSFER_MAX_ATTEMPTS in all.
    Returns what `settle` returns; raises any other error at once, and a
    retryable one when the last attempt meets it too. `subject`: what is
    settled (a log's or batch's id, a hold's), for the log line of a retry."""
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
    # The limit a limit_exceeded names (check_caps), for the refusals metric.
    limit: str = ""

    @classmethod
    def of(cls, violation: BusinessRuleViolation) -> "Failure":
        return cls(violation.default_code, str(violation.detail), getattr(violation, "limit", ""))

    def violation(self) -> BusinessRuleViolation:
        """The error again, to raise where a broken rule refuses instead of
        failing a log (a correction)."""
        return BUSINESS_RULE_ERRORS[self.code](self.message)


@dataclass(frozen=True)
class Decision:
    """What the engine decided for one movement (a PENDING log): it moves
    (failure None: COMPLETED) or it does not (FAILED, with why). A movement
    that moves carries each wallet's balance once it has moved (the locked
    balance and the changes of the movements decided before it), which
    apply writes onto its log: a statement's running balance and a balance as
    of any instant read them (transfers/statements.py)."""

    log: TransactionLog
    failure: Failure | None = None
    source_balance_after: Decimal | None = None
    destination_balance_after: Decimal | None = None

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
class DayTotals:
    """What a posting adds to one customer wallet's totals of the business
    day (wallet_daily_totals): what it paid out and what it received."""

    debits: Decimal = Decimal(0)
    credits: Decimal = Decimal(0)


@dataclass
class Posting:
    """The decisions for a set of movements, in order, and what applying them
    changes: each wallet's balance and each exposure row's amount (signed
    sums, by primary key).
    `day`: the business day its movements count in; `totals`: each
    customer wallet's DayTotals to add to its totals of the day,
    `client_debits`: each client daily-debits row's addition (none for a
    correction: outside tiers, docs/limits.md).
    `held_changes`: each wallet's change to what open holds reserve (signed
    sums, by primary key: placing, capturing, voiding, expiring a hold).
    `reverses`: for a reversal (one decision, its compensation), the
    COMPLETED log it reverses, which apply marks REVERSED.
    `wallets`: the locked wallets its logs move money between, by primary
    key, as decide was given them: each log's event goes to the owners of
    its two wallets and shows their kinds (apply_statement)."""

    decisions: list[Decision]
    day: datetime.date | None = None
    balance_changes: dict[uuid.UUID, Decimal] = field(default_factory=dict)
    exposure_changes: dict[int, Decimal] = field(default_factory=dict)
    totals: dict[uuid.UUID, DayTotals] = field(default_factory=dict)
    client_debits: dict[int, Decimal] = field(default_factory=dict)
    held_changes: dict[uuid.UUID, Decimal] = field(default_factory=dict)
    wallets: dict[uuid.UUID, Wallet] = field(default_factory=dict)
    reverses: TransactionLog | None = None

    @property
    def completed(self) -> list[TransactionLog]:
        return [decision.log for decision in self.decisions if decision.failure is None]


def check_rules(
    log: TransactionLog,
    source: Wallet,
    destination: Wallet,
    exposure: ExposureChange | None,
    client_debits: ClientDailyDebit | None = None,
    *,
    frozen_blocks: bool = True,
    tiers: bool = True,
    counted_at_hold: bool = False,
) -> None:
    """Every rule a movement must pass, in the order a client is told of
    them: raises the first BusinessRuleViolation it breaks. `source` and
    `destination` are the locked rows with the balances the movements decided
    before this one leave; `exposure` is the locked exposure row it changes
    (None between customer wallets); `client_debits` the paying client's
    locked daily-debits row while its currency has a cap. A new rule is one
    more check here. `frozen_blocks` and `tiers`: False for a correction,
    the rules it does not keep (an operator's correction must reach a
    frozen wallet: docs/design.md, "The corrections' money"; tiers and
    restrictions are the client's and the customer's, docs/limits.md).
    `counted_at_hold`: check_caps'."""
    if frozen_blocks and not source.is_active:
        raise WalletInactive("The source wallet is inactive.")
    if frozen_blocks and not destination.is_active:
        raise WalletInactive("The destination wallet is inactive.")
    if source.currency != destination.currency or log.currency != source.currency:
        raise CurrencyMismatch(
            f"The source wallet holds {source.currency}, the destination wallet {destination.currency}."
        )
    if tiers:
        check_restrictions(log, source, destination)
    # What it may spend is what its open holds do not reserve (docs/api.md, "Holds").
    if source.kind == WalletKind.CUSTOMER and source.balance - source.held < log.amount:
        raise InsufficientBalance()
    if tiers:
        check_caps(log, source, destination, client_debits, counted_at_hold=counted_at_hold)
    # One client must not take a settlement wallet to where other clients'
    # deposits no longer fit (docs/design.md, "Client exposure"); checked
    # before the ledger's range below, so that a client past its own limit is
    # told so, not that the ledger is full. Only a rise is refused: money
    # going back out is welcome.
    if exposure is not None and exposure.change > 0:
        after = exposure.row.amount + exposure.change
        if after > settings.CLIENT_EXPOSURE_LIMIT:
            raise LimitExceeded(
                f"Client exposure limit: this would take what the client's wallets hold in {exposure.row.currency} "
                f"from deposits (deposits minus withdrawals) to {after}, past the limit of "
                f"{settings.CLIENT_EXPOSURE_LIMIT}. Withdraw first, or ask the operator.",
                limit="clientExposure",
            )
    # Without this a balance past NUMERIC(20,2) is an overflow error at the
    # UPDATE, and the log would stay PENDING through every retry.
    if destination.balance + log.amount > MAX_AMOUNT or source.balance - log.amount < -MAX_AMOUNT:
        raise BalanceLimitExceeded()


def _locked_exposure_change(
    payer: Wallet, payee: Wallet, amount: Decimal, rows: locks.LimitRows
) -> ExposureChange | None:
    """models.exposure_change (which names the row by its key) with the row
    itself, as the caller locked it (locks.lock_limit_rows), and by how much;
    None between customer wallets."""
    change = exposure_change(payer, payee, amount)
    if change is None:
        return None
    key, signed = change
    return ExposureChange(rows.exposures[key], signed)


def owners(*wallets: Wallet) -> list[int]:
    """The clients whose wallets a movement touches: its events' recipients
    (a settlement wallet has no owner)."""
    return sorted({wallet.owner_id for wallet in wallets if wallet.owner_id is not None})


def client_debits_row(payer: Wallet, rows: locks.LimitRows) -> ClientDailyDebit | None:
    """The paying client's daily-debits row, as the caller locked it
    (locks.lock_limit_rows), when a customer wallet pays in a currency
    CLIENT_DAILY_DEBIT_LIMIT names (models.client_debits_key); else None."""
    key = client_debits_key(payer)
    return None if key is None else rows.client_debits[key]


def decide(
    logs: list[TransactionLog],
    wallets: dict[uuid.UUID, Wallet],
    rows: locks.LimitRows,
    *,
    day: datetime.date,
    frozen_blocks: bool = True,
    tiers: bool = True,
    counted_at_hold: bool = False,
) -> Posting:
    """Decide each PENDING log in the order given, on the locked `wallets`
    (by id, every wallet the logs touch, locked for business day `day`),
    whose balances, exposures and daily totals run as the logs before
    complete: a log that no longer fits fails, and the ones after it may
    still fit. `rows`: the exposure and client daily-debits rows the logs
    change, locked by the caller (locks.lock_limit_rows, with the same
    `tiers`): decide takes no lock. `frozen_blocks`, `tiers`: check_rules'; without tiers nothing
    counts in the daily totals. `counted_at_hold`: the logs are holds'
    captures, whose payers' debits were checked and counted in their
    wallets' daily totals when the holds were placed (docs/limits.md,
    "Holds"): neither is done again."""
    posting = Posting(decisions=[], day=day, wallets=wallets)
    balances, exposure_changes = posting.balance_changes, posting.exposure_changes
    for log in logs:
        source, destination = wallets[log.source_wallet_id], wallets[log.destination_wallet_id]
        exposure = _locked_exposure_change(source, destination, log.amount, rows)
        client_debits = client_debits_row(source, rows) if tiers else None
        try:
            check_rules(
                log, source, destination, exposure, client_debits,
                frozen_blocks=frozen_blocks, tiers=tiers, counted_at_hold=counted_at_hold,
            )  # fmt: skip
        except BusinessRuleViolation as violation:
            posting.decisions.append(Decision(log, Failure.of(violation)))
            continue
        # The locked rows, changed in memory only: the next log's check sees
        # what this one leaves. apply() writes the sums.
        source.balance -= log.amount
        destination.balance += log.amount
        posting.decisions.append(Decision(log, None, source.balance, destination.balance))
        balances[source.pk] = balances.get(source.pk, Decimal(0)) - log.amount
        balances[destination.pk] = balances.get(destination.pk, Decimal(0)) + log.amount
        if exposure is not None:
            exposure.row.amount += exposure.change
            exposure_changes[exposure.row.pk] = exposure_changes.get(exposure.row.pk, Decimal(0)) + exposure.change
        if tiers:
            _count(posting, log, source, destination, client_debits, counted_at_hold=counted_at_hold)
    return posting


def _count(
    posting: Posting,
    log: TransactionLog,
    source: Wallet,
    destination: Wallet,
    client_debits: ClientDailyDebit | None,
    *,
    counted_at_hold: bool,
) -> None:
    """Add a completed log to the day's running totals: its customer
    wallets' (in memory for the next log's check, and in the posting for
    SETTLE; a hold's capture adds no debit, counted when it was placed),
    and its paying client's."""
    if source.kind == WalletKind.CUSTOMER and not counted_at_hold:
        source.limits_today.debits += log.amount
        posting.totals.setdefault(source.pk, DayTotals()).debits += log.amount
    if destination.kind == WalletKind.CUSTOMER:
        destination.limits_today.credits += log.amount
        posting.totals.setdefault(destination.pk, DayTotals()).credits += log.amount
    if client_debits is not None:
        client_debits.amount += log.amount
        posting.client_debits[client_debits.pk] = posting.client_debits.get(client_debits.pk, Decimal(0)) + log.amount


# --- the limits: tiers, restrictions and caps (docs/limits.md) ---------------------
#
# Tier limits and restrictions: the rules of docs/limits.md, checked by
# check_rules (above) under the row locks of the movement, against running
# totals the settle statement keeps.
#
# Order, the one a client is told of them in (docs/limits.md, "The order of
# the checks, and what a refusal says"):
# restrictions (post-no-debit on the payer, post-no-credit on the payee,
# 422 wallet_restricted); the client's per-movement maximum
# (CLIENT_MAX_REQUEST_AMOUNT); the client's daily debits
# (CLIENT_DAILY_DEBIT_LIMIT); the payer's tier (single debit, daily debits);
# the payee's tier (single credit, daily credits, balance). A cap broken is
# 422 limit_exceeded naming the cap and the room left, except on a payee
# another client owns: its tier is that client's business, so the refusal
# names nothing.
#
# Outside tiers: settlement and suspense wallets, and corrections (a
# reversal's compensation, a manual adjustment): they are neither checked nor
# counted.


def _refuse(limit: str, cap: Decimal, room: Decimal, currency: str, whose: str) -> LimitExceeded:
    room = max(room, ZERO)
    return LimitExceeded(
        f"Limit exceeded: {limit} of {whose} is {cap:.2f} {currency}; room left: {room:.2f}.", limit=limit
    )


def _private_payee(log: TransactionLog, destination: Wallet) -> bool:
    """Whether the payee is another client's wallet: told nothing of its state."""
    return destination.owner_id != log.client_id


def check_restrictions(log: TransactionLog, source: Wallet, destination: Wallet) -> None:
    """Post-no-debit on a paying customer wallet, post-no-credit on a
    receiving one: raises WalletRestricted."""
    if source.kind == WalletKind.CUSTOMER and source.post_no_debit:
        raise WalletRestricted("The source wallet is restricted: post-no-debit (no money may leave it).")
    if destination.kind == WalletKind.CUSTOMER and destination.post_no_credit:
        if _private_payee(log, destination):
            raise WalletRestricted("The destination wallet cannot receive money.")
        raise WalletRestricted("The destination wallet is restricted: post-no-credit (no money may enter it).")


def check_caps(
    log: TransactionLog,
    source: Wallet,
    destination: Wallet,
    client_debits: ClientDailyDebit | None,
    *,
    counted_at_hold: bool = False,
) -> None:
    """The caps on `log` between the locked `source` and `destination` (each
    customer wallet carries its LimitsToday as `.limits_today`), in the order above;
    raises the first broken as LimitExceeded. `client_debits`: the paying
    client's locked row of the day, when its currency has a
    CLIENT_DAILY_DEBIT_LIMIT. `counted_at_hold`: `log` is a hold's capture,
    whose payer's tier caps were checked when the hold was placed
    (engine.place_hold; docs/limits.md, "Holds"): only the client's caps and
    the payee's are checked now."""
    amount, currency = log.amount, log.currency
    payer = source.kind == WalletKind.CUSTOMER
    payee = destination.kind == WalletKind.CUSTOMER
    per_request = settings.CLIENT_MAX_REQUEST_AMOUNT.get(currency)
    if per_request is not None and amount > per_request:
        raise _refuse("clientMaxRequestAmount", per_request, per_request, currency, "the client, per movement")
    if client_debits is not None:
        daily = settings.CLIENT_DAILY_DEBIT_LIMIT[currency]
        if client_debits.amount + amount > daily:
            raise _refuse("clientDailyDebits", daily, daily - client_debits.amount, currency, "the client, today")
    if payer and not counted_at_hold:
        today, tier = source.limits_today, source.limits_today.tier
        whose = f"the source wallet's tier {tier.name}"
        if tier.max_single_debit is not None and amount > tier.max_single_debit:
            raise _refuse("maxSingleDebit", tier.max_single_debit, tier.max_single_debit, currency, whose)
        if tier.max_daily_debits is not None and today.debits + amount > tier.max_daily_debits:
            raise _refuse(
                "maxDailyDebits", tier.max_daily_debits, tier.max_daily_debits - today.debits, currency, whose
            )
    if payee:
        today, tier = destination.limits_today, destination.limits_today.tier
        whose = f"the destination wallet's tier {tier.name}"
        refusal = None
        if tier.max_single_credit is not None and amount > tier.max_single_credit:
            refusal = _refuse("maxSingleCredit", tier.max_single_credit, tier.max_single_credit, currency, whose)
        elif tier.max_daily_credits is not None and today.credits + amount > tier.max_daily_credits:
            room = tier.max_daily_credits - today.credits
            refusal = _refuse("maxDailyCredits", tier.max_daily_credits, room, currency, whose)
        elif tier.max_balance is not None and destination.balance + amount > tier.max_balance:
            room = tier.max_balance - destination.balance
            refusal = _refuse("maxBalance", tier.max_balance, room, currency, whose)
        if refusal is not None:
            if _private_payee(log, destination):
                raise LimitExceeded("The destination wallet cannot receive this amount.", limit="payee")
            raise refusal


# --- applying ---------------------------------------------------------------------


# A transaction as an event carries it (docs/api.md, "Events and webhooks"),
# for the recipient `owner`: as a lookup by reference shows it to that owner,
# reversal links included (transfers/serializers.py, the one field list).
# Written in SQL so that settling inserts the events in the statement that
# completes the logs: no round trip, and no Python rendering in the
# service's process. Measured (callgrind, 200 renders in one process): the
# API's TransactionDetailSerializer costs about 3.0M instructions per event,
# and a transfer writes two (one per owner), more than a whole transfer
# cost when this was measured (bench/instructions.py: 5.2M then, 4.4M on
# 2026-12-07). The INSERT itself is the
# outbox's one statement (SETTLE_EVENTS below).
# Each log's object is built once (SETTLE's `o`), whatever its number of
# owners, and each owner's copy is it with that owner's overlay (the
# payer-only fields: serializers.request_details_overlay_sql). The wallets'
# kinds and the log that reverses it (`k`: apply_statement's `objects`) come
# from the posting, which knows them: no subquery per event (bench/HISTORY.md,
# 2026-12-07 12:10).
EVENT_OBJECT = transaction_json_sql(
    row="t",
    viewer=None,
    related={"source_wallet.kind": "k.sk", "destination_wallet.kind": "k.dk", "reversed_by.id": "k.rb"},
)
# transfer.completed, deposit.failed, ...: the one place an event's type is
# made from its transaction's. A reversed movement of any type is
# transfer.reversed (docs/api.md, "Events and webhooks").
EVENT_TYPE = (
    f"CASE WHEN t.status = '{TransactionStatus.REVERSED.value}' THEN '{EventType.TRANSFER_REVERSED.value}' "
    "ELSE lower(t.type) || '.' || lower(t.status) END"
)

# A posting, applied in one statement on rows the caller has locked: every
# balance, every exposure, every log COMPLETED or FAILED, for a reversal its
# original REVERSED, and each log's event per owner of its wallets, in the
# order decided, each completed log with its wallets' balances after it (sa,
# da: decide's). A log moves money at most once: its row lock and the
# PENDING check before deciding make it so. The statement defends the ledger
# as well: it refuses the whole posting, with an error, unless it finds
# every log it names as decided (`settled`: PENDING; `reversed`: the
# original COMPLETED), so a caller that skipped its check writes nothing,
# money included (settle_as_decided, in SETTLE_EVENTS; docs/design.md, "The
# settle statement's refusal"). One statement: no round trip added while the wallet rows
# are locked. The CHECK on customer balances is the backstop should a rule
# check ever be wrong. The posting comes as one JSON document `p`
# (apply_statement): psycopg adapts one text parameter for much less than
# eleven arrays (bench/instructions.py: about 0.3M instructions per transfer).
# Logs are found by primary key (`id = ANY` of the document's `log_ids`),
# wallets likewise (below: WALLETS_OF_A_PAIR, WALLETS_OF_MANY), each row's
# values then taken from the document: joined to jsonb_to_recordset, whose
# 100 rows the planner assumes, it scanned them worse. Every id is read from
# the document once, by a scalar subquery (an InitPlan; for an array, the
# outer `::uuid[]` makes it an expression rather than ANY's set of rows): as
# a plain condition it is read again for every row a plan scans, and a batch
# of 1,000 payouts spent 360 of its settle's 450 ms parsing `wallet_ids` so
# when the planner chose to scan wallets (bench/HISTORY.md, 2026-12-07
# 17:40). Not parameters of their own: PostgreSQL then planned SETTLE afresh
# at every execute (0.7 ms) rather than keep its generic plan;
# and the PENDING condition is `status || ''`, so that the planner
# never picks the status index for it (which reads every dead PENDING entry
# since the last VACUUM). Together with `o`, PostgreSQL's CPU per transfer
# 2.35 -> 2.1 ms (bench/pg_cpu.py; bench/HISTORY.md, 2026-12-07 12:10).
# Sent compacted (_compact: whitespace collapsed, none left beside a comma, a
# parenthesis or =, ||, ->, ->>; no literal changed): psycopg parses a statement longer than
# 4096 bytes afresh on every execute (its cache's limit,
# MAX_CACHED_STATEMENT_LENGTH), which cost about 0.2M instructions per
# transfer; transfers/tests/test_engine_statements.py keeps it under.
# Its events are written by the outbox's one INSERT (events.outbox.insert_events_sql),
# the rows selected from the logs SETTLE has just written, in the order decided.
SETTLE_EVENTS = insert_events_sql(
    rows="jsonb_to_recordset(%(p)s::jsonb -> 'events') AS e(n integer, log uuid, owner integer) JOIN o ON o.id = e.log",
    order="e.n",
    client="e.owner",
    type="o.type",
    data=f"o.data || {request_details_overlay_sql(row='o', viewer='e.owner')}",
    created_at="%(now)s",
    # The posting's refusal (settle_as_decided, transfers/migrations/0024:
    # raises unless every log the document's `objects` names is in `t`). A
    # condition on none of the query's rows: PostgreSQL evaluates it once,
    # before the first event (a one-time filter), even when there is none;
    # reading `t` runs `settled` and `reversed` to the end first. Its error
    # fails the whole statement, the money CTEs' writes with it.
    where="(SELECT settle_as_decided(count(*), jsonb_array_length(%(p)s::jsonb -> 'objects')) FROM t)",
)
# The posting's wallet rows. A posting of at most two wallets (any one
# movement: a transfer, a deposit, a withdrawal, a capture, a reversal, a
# hold's `held`; a batch of one payout) names them as two ids: the planner
# counts them, and its generic plan reads wallets_pkey whatever the
# table's size. As an array its length is unknown to a generic plan
# (PostgreSQL assumes 10), and with 1,000 wallets it scanned them all for
# every transfer, copying the array once per row: 0.11 ms of the
# statement's 0.63 (bench/statement_times.py; bench/HISTORY.md, 2026-12-07
# 20:05). A posting of more (a batch's, a set of holds) names them as the
# array, which a scan of the table suits when it wants most of it.
WALLETS_OF_A_PAIR = (
    "w.id IN ((SELECT (%(p)s::jsonb -> 'legs' -> 0 ->> 'id')::uuid),"
    " (SELECT (%(p)s::jsonb -> 'legs' -> 1 ->> 'id')::uuid))"
)
WALLETS_OF_MANY = "w.id = ANY((SELECT (%(p)s::jsonb ->> 'wallet_ids')::uuid[])::uuid[])"


def settle_readable(wallets: str) -> str:
    """SETTLE as written, its wallet rows found by `wallets` (a condition on
    `w`: WALLETS_OF_A_PAIR or WALLETS_OF_MANY). Its last part, SETTLE_EVENTS,
    is also the posting's refusal: the events INSERT's condition is
    settle_as_decided (docs/design.md, "The settle statement's refusal")."""
    return f"""
WITH legs AS (
  UPDATE wallets w SET balance = w.balance + v.delta, held = w.held + COALESCE(v.held, 0), updated_at = %(now)s
    FROM jsonb_to_recordset(%(p)s::jsonb -> 'legs') AS v(id uuid, delta numeric, held numeric)
   WHERE {wallets} AND w.id = v.id
),
exposure AS (
  UPDATE client_exposures x SET amount = x.amount + v.change, updated_at = %(now)s
    FROM jsonb_to_recordset(%(p)s::jsonb -> 'exposures') AS v(id bigint, change numeric)
   WHERE x.id = v.id
),
totals AS (
  INSERT INTO wallet_daily_totals AS d (wallet_id, day, debits, credits)
  SELECT v.id, (%(p)s::jsonb ->> 'day')::date, v.d, v.c
    FROM jsonb_to_recordset(%(p)s::jsonb -> 'totals') AS v(id uuid, d numeric, c numeric)
  ON CONFLICT (wallet_id, day) DO UPDATE SET debits = d.debits + excluded.debits, credits = d.credits + excluded.credits
),
client_debits AS (
  UPDATE client_daily_debits c SET amount = c.amount + v.change
    FROM jsonb_to_recordset(%(p)s::jsonb -> 'client_debits') AS v(id bigint, change numeric)
   WHERE c.id = v.id
),
settled AS (
  UPDATE transaction_logs t
     SET status = v.status, error_code = v.code, error_message = v.message, updated_at = %(now)s,
         completed_at = CASE WHEN v.status = 'COMPLETED' THEN %(now)s::timestamptz END,
         source_balance_after = v.sa, destination_balance_after = v.da
    FROM jsonb_to_recordset(%(p)s::jsonb -> 'logs')
      AS v(id uuid, status text, code text, message text, sa numeric, da numeric)
   WHERE t.id = ANY((SELECT (%(p)s::jsonb ->> 'log_ids')::uuid[])::uuid[]) AND t.id = v.id
     AND t.status || '' = 'PENDING'
  RETURNING t.*
),
reversed AS (
  UPDATE transaction_logs r SET status = 'REVERSED', updated_at = %(now)s
   WHERE r.id = (%(p)s::jsonb ->> 'reverses')::uuid AND r.status = 'COMPLETED'
  RETURNING r.*
),
t AS (SELECT * FROM settled UNION ALL SELECT * FROM reversed),
o AS MATERIALIZED (
  SELECT t.id, t.client_id, {EVENT_TYPE} AS type, {EVENT_OBJECT} AS data
    FROM t JOIN jsonb_to_recordset(%(p)s::jsonb -> 'objects') AS k(id uuid, sk text, dk text, rb uuid) ON k.id = t.id
)
{SETTLE_EVENTS}
"""  # noqa: S608 (constants only)


def _compact(statement: str) -> str:
    """`statement` as it is sent: each run of whitespace one space, and none
    beside a comma, a parenthesis or the operators =, ||, -> and ->>,
    outside its literals (the text between single quotes is left as it is).
    It assumes plain SQL: no comment, no quote but a literal's, no operator
    that a removed space kept apart from another;
    transfers/tests/test_engine_statements.py checks that the statement
    sent reads as the same tokens."""
    parts = statement.split("'")
    for i in range(0, len(parts), 2):
        text = re.sub(r"\s+", " ", parts[i])
        parts[i] = re.sub(r" ?(->>|->|\|\||=|[,()]) ?", r"\1", text)
    return "'".join(parts).strip()


# The statements sent: for a posting of at most two wallets, and of more.
SETTLE = _compact(settle_readable(WALLETS_OF_A_PAIR))
SETTLE_MANY = _compact(settle_readable(WALLETS_OF_MANY))


def apply(posting: Posting, now) -> None:
    """apply_statement, then applied: the posting written and its outcome on
    the log instances in memory, for a caller that answers from them and
    whose transaction goes on after (settle_correction, end_hold). A single
    movement calls the two itself, applied after its commit (_settle_once);
    a batch never calls applied (its answer reads its payouts back)."""
    apply_statement(posting, now)
    applied(posting, now)


def apply_statement(posting: Posting, now) -> None:
    """Write `posting` in one statement (SETTLE, or SETTLE_MANY for more
    than two wallets): every balance, held, exposure and daily total it
    changes, each decided log COMPLETED (with its balances after) or
    FAILED, `posting.reverses` REVERSED, and every log's events; the log
    instances in memory are left as they are (applied). Returns nothing.

    The caller holds the rows decide was given (the unit's row, its
    wallets, the limit rows), inside its transaction: it takes no lock
    and reads nothing back. IntegrityError ("settle refused"), having
    written nothing, when a log is no longer PENDING or the reversed
    original no longer COMPLETED: a bug in the caller, which checked them
    under its locks (docs/design.md, "The settle statement's refusal"); its
    transaction must roll back."""
    decisions, wallets = posting.decisions, posting.wallets
    logs = [decision.log for decision in decisions]
    events = [
        (log.pk, owner)
        for log in logs
        for owner in owners(wallets[log.source_wallet_id], wallets[log.destination_wallet_id])
    ]
    legs = _legs(posting)
    log_ids = [str(log.pk) for log in logs]
    document = {
        "legs": legs,
        "exposures": [{"id": pk, "change": str(change)} for pk, change in posting.exposure_changes.items()],
        "day": posting.day.isoformat() if posting.day else None,
        "totals": [
            {"id": str(pk), "d": str(added.debits), "c": str(added.credits)} for pk, added in posting.totals.items()
        ],
        "client_debits": [{"id": pk, "change": str(change)} for pk, change in posting.client_debits.items()],
        "log_ids": uuid_array_text(log_ids),
        "logs": [
            {
                "id": log_id,
                "status": decision.status,
                "code": decision.failure.code if decision.failure else "",
                "message": decision.failure.message if decision.failure else "",
                "sa": _text(decision.source_balance_after),
                "da": _text(decision.destination_balance_after),
            }
            for log_id, decision in zip(log_ids, decisions, strict=True)
        ],
        # What each log's event shows of its related rows (EVENT_OBJECT's
        # `k`): its wallets' kinds, as decide locked them, and the log that
        # reverses it ("rb", absent: none; a log still PENDING was never
        # reversed).
        "objects": [
            {"id": log_id, "sk": wallets[log.source_wallet_id].kind, "dk": wallets[log.destination_wallet_id].kind}
            for log_id, log in zip(log_ids, logs, strict=True)
        ],
    }
    reverses = posting.reverses
    if reverses is not None:
        # Its compensation moves money between the same two wallets, both locked.
        source, destination = wallets[reverses.source_wallet_id], wallets[reverses.destination_wallet_id]
        document["reverses"] = str(reverses.pk)
        events += [(reverses.pk, owner) for owner in owners(source, destination)]
        document["objects"].append(
            {"id": document["reverses"], "sk": source.kind, "dk": destination.kind, "rb": log_ids[0]}
        )
    document["events"] = [{"n": n, "log": str(log_id), "owner": owner} for n, (log_id, owner) in enumerate(events)]
    if len(legs) <= 2:
        statement = SETTLE
    else:
        statement = SETTLE_MANY
        document["wallet_ids"] = uuid_array_text([leg["id"] for leg in legs])
    _run(statement, {"now": now, "p": json.dumps(document, separators=(",", ":"))})


def applied(posting: Posting, now) -> None:
    """What apply_statement wrote, onto the log instances in memory (each
    decided log's status, times, balances after or failure; a reversal's
    original REVERSED), for the caller's answer. No query: a caller that
    commits right after apply_statement runs this after its commit, so that
    the wallet rows are not held for it (docs/design.md, "The steps")."""
    decisions, reverses = posting.decisions, posting.reverses
    for decision in decisions:
        log = decision.log
        log.status, log.updated_at = decision.status, now
        if decision.failure is None:
            log.completed_at = now
            log.source_balance_after = decision.source_balance_after
            log.destination_balance_after = decision.destination_balance_after
        else:
            log.error_code, log.error_message = decision.failure.code, decision.failure.message
    if reverses is not None:
        reverses.status, reverses.updated_at = TransactionStatus.REVERSED, now


def _legs(posting: Posting) -> list[dict]:
    """Each wallet's balance change and, only where a hold changes it, its
    held change (absent: none): one row per wallet, as one UPDATE changes a
    row once."""
    legs = {pk: {"id": str(pk), "delta": str(delta)} for pk, delta in posting.balance_changes.items()}
    for pk, held in posting.held_changes.items():
        legs.setdefault(pk, {"id": str(pk), "delta": "0"})["held"] = str(held)
    return list(legs.values())


def uuid_array_text(ids: list[str]) -> str:
    """`ids` (uuids as text) as a PostgreSQL array's text, which SETTLE
    casts to uuid[]: `{a,b}`."""
    return "{" + ",".join(ids) + "}"


def _text(amount: Decimal | None) -> str | None:
    """An amount as the posting document carries it (exact, as text)."""
    return None if amount is None else str(amount)


# The engine's statements go through these two, not fetch and run directly:
# the one place a fault test stops the service right after a statement
# (reconciliation/tests/test_fault_events.py patches _run).
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
    """One attempt of settle_log, in a transaction of its own: lock the log
    and, while it is PENDING and no batch's, its two wallets (one
    statement), then its limit rows; decide; apply. Returns settle_log's
    (log, settled_now)."""
    with transaction.atomic(durable=True):
        locking_started = time.perf_counter()
        day = business_day(timezone.now())
        # Its wallets only while it is PENDING and no batch's.
        log, wallets = locks.lock_log_and_wallets(log_id, day=day, skip_locked=skip_locked)
        if log is None:
            return None, False
        if log.status != TransactionStatus.PENDING or log.batch_id is not None:
            return log, False
        rows = locks.lock_limit_rows([log], wallets, day=day)
        lock_wait = time.perf_counter() - locking_started
        posting = decide([log], wallets, rows, day=day)
        now = timezone.now()
        apply_statement(posting, now)
    # After the commit: nothing but deciding and SETTLE while the wallet rows
    # are locked (docs/design.md, "The steps": the hot wallet's row is held
    # from its lock to the commit).
    applied(posting, now)
    telemetry.LOCK_WAIT.observe(lock_wait)
    telemetry.limits_refused(posting.decisions)
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
        day = business_day(timezone.now())
        wallets = locks.lock_wallets(log.source_wallet_id, log.destination_wallet_id, day=day)
        rows = locks.lock_limit_rows([log], wallets, day=day, tiers=False)
        posting = decide([log], wallets, rows, day=day, frozen_blocks=False, tiers=False)
        (decision,) = posting.decisions
        if decision.failure is not None:
            raise decision.failure.violation()
        log.status = TransactionStatus.PENDING
        log.save(force_insert=True)
        posting.reverses = reverses
        apply(posting, timezone.now())


# --- a batch of payouts -----------------------------------------------------------

PAYOUT_FIELDS = in_model_order(TransactionLog, [*locks.LOCKED_LOG_FIELDS, "batch_index"])
# The finished batch as its batch.finished event renders it (serializers.batch_json).
FINISHED_BATCH_FIELDS = in_model_order(TransferBatch, BATCH_FIELDS)
_PENDING_PAYOUTS = (
    f"SELECT {', '.join(PAYOUT_FIELDS)} FROM transaction_logs "  # noqa: S608 (model field names)
    "WHERE batch_id = %s AND status = 'PENDING' ORDER BY batch_index"
)
_FINISH_BATCH = f"""
UPDATE transfer_batches
   SET status = %(status)s, completed_count = %(completed)s, completed_amount = %(completed_amount)s,
       failed_count = %(failed)s, error_code = %(code)s, error_message = %(message)s, failed_index = %(failed_index)s,
       finished_at = %(now)s, updated_at = %(now)s
 WHERE id = %(batch)s
RETURNING {", ".join(TransferBatch._meta.get_field(name).column for name in FINISHED_BATCH_FIELDS)}
"""  # noqa: S608 (model field names)


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
    """One attempt of settle_batch, in a transaction of its own: lock the
    batch row, read its PENDING payouts (not locked: the batch row stands
    for them), lock the source and every destination, then the limit rows;
    decide every payout in order; an atomic batch's first failure fails them
    all (_none_moves); apply; finish the batch row (_finish). Returns
    settle_batch's True, False or None."""
    with transaction.atomic(durable=True):
        locking_started = time.perf_counter()
        batch = locks.lock_batch(batch_id, skip_locked=skip_locked)
        if batch is None:
            return None
        if batch.status != BatchStatus.PENDING:
            return False
        payouts = [
            from_row(TransactionLog, DEFAULT_DB_ALIAS, PAYOUT_FIELDS, row)
            for row in _fetch(_PENDING_PAYOUTS, [batch_id])
        ]
        day = business_day(timezone.now())
        wallets = locks.lock_wallets(batch.source_wallet_id, *(log.destination_wallet_id for log in payouts), day=day)
        rows = locks.lock_limit_rows(payouts, wallets, day=day)
        lock_wait = time.perf_counter() - locking_started
        posting = decide(payouts, wallets, rows, day=day)
        first_failure = _first_failure(batch, posting)
        if batch.atomic and first_failure is not None:
            posting = _none_moves(posting, first_failure)
        now = timezone.now()
        if posting.decisions:
            # Not apply: nothing reads the payouts in memory after this (the
            # answer reads them back: services.batch_settle), and applied
            # would walk every one of them while the source wallet is locked.
            apply_statement(posting, now)
        _finish(batch, posting, first_failure if batch.atomic else None, now)
    telemetry.LOCK_WAIT.observe(lock_wait)
    telemetry.limits_refused(posting.decisions)
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
    return Posting(decisions=decisions, day=posting.day, wallets=posting.wallets)


def _finish(batch: TransferBatch, posting: Posting, failure: PayoutFailure | None, now) -> None:
    """The batch row's outcome, and its batch.finished event to the client
    that sent it, in the settle transaction (each payout's own events are
    written by apply). The event's data is the batch as its answer shows it
    (serializers.batch_json, read back by the UPDATE that finishes it), without
    its payouts and message (BatchFinished in the schema, docs/api.md)."""
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
    (row,) = _fetch(
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
    finished = from_row(TransferBatch, DEFAULT_DB_ALIAS, FINISHED_BATCH_FIELDS, row)
    record_event_rows([(EventType.BATCH_FINISHED.value, batch.client_id, batch_json(finished))])


# --- holds ------------------------------------------------------------------------
#
# docs/api.md, "Holds": placing, capturing, voiding and expiring a hold are
# postings of this engine. A hold's reservation is a change to its source
# wallet's `held` (Posting.held_changes), written by SETTLE with the balances;
# check_rules measures a debit against the available balance (balance -
# held). A capture releases the hold and moves what it captures as a TRANSFER
# log, decided by check_rules like any transfer. Locks: the hold rows first
# (as a log's), then the wallets in primary-key order.

# The hold, OPEN, on the wallets the caller's tenancy rule allows ({wallets}:
# services.TENANCY_RULES', the one rule for money); no row: the key is taken,
# or a wallet is unknown or not the client's to use.
_INSERT_HOLD = """
INSERT INTO holds (
    id, client_id, idempotency_key, request_fingerprint, body_digest, source_wallet_id, destination_wallet_id,
    amount, currency, status, expires_at, metadata, error_code, error_message, end_key, end_fingerprint,
    extend_key, extend_fingerprint, end_note, created_at, updated_at)
SELECT %(id)s, %(client)s, %(key)s, %(fingerprint)s, %(digest)s, s.id, d.id,
       %(amount)s, s.currency, 'OPEN', %(expires_at)s, %(metadata)s::jsonb, '', '', '', '',
       '', '', '', %(now)s, %(now)s
  FROM wallets s, wallets d
 WHERE {wallets}
ON CONFLICT (client_id, idempotency_key) DO NOTHING
RETURNING id
"""
_KEY_TAKEN = "SELECT 1 FROM holds WHERE client_id = %s AND idempotency_key = %s"
_FAIL_HOLD = "UPDATE holds SET status = 'FAILED', error_code = %s, error_message = %s WHERE id = %s"
# Every hold a posting ends, in one statement: the captures' TRANSFER logs,
# PENDING, for SETTLE to complete next (_capture_log; the hold's
# transaction_id names its log, checked at the statement's end), the holds'
# rows, only an OPEN one (the row lock and the OPEN check before deciding
# make it so; this is the backstop), the request's key bound to its holds
# (HoldRequestKey: a key the client used for another hold request breaks its
# unique constraint, and the whole posting is refused), and their events.
# One round trip, as a transfer's PENDING insert is one.
_END_HOLDS = """
WITH logs AS (
  INSERT INTO transaction_logs (
      id, client_id, idempotency_key, movement_fingerprint, body_digest, source_wallet_id, destination_wallet_id,
      amount, currency, type, status, reference, metadata, error_code, error_message, created_at, updated_at)
  SELECT v.id, v.client, v.key, v.fingerprint, '', v.source, v.destination,
         v.amount, v.currency, 'TRANSFER', 'PENDING', v.reference, v.metadata, '', '', %(now)s, %(now)s
    FROM jsonb_to_recordset(%(logs)s::jsonb) AS v(id uuid, client integer, key text, fingerprint text, source uuid,
                                                   destination uuid, amount numeric, currency text, reference text,
                                                   metadata jsonb)
),
ended AS (
  UPDATE holds h
     SET status = v.status, captured_amount = v.captured, transaction_id = v.log, end_key = v.key,
         end_fingerprint = v.fingerprint, end_note = v.note, ended_at = %(now)s, updated_at = %(now)s
    FROM jsonb_to_recordset(%(ends)s::jsonb) AS v(id uuid, status text, captured numeric, log uuid, key text,
                                                   fingerprint text, note text)
   WHERE h.id = v.id AND h.status = 'OPEN'
),
keyed AS (
  INSERT INTO hold_request_keys (client_id, idempotency_key, fingerprint, hold_ids, created_at)
  SELECT v.client, v.key, v.fingerprint, array_agg(v.id ORDER BY v.id), %(now)s
    FROM jsonb_to_recordset(%(ends)s::jsonb) AS v(id uuid, client integer, key text, fingerprint text)
   WHERE v.key <> ''
   GROUP BY v.client, v.key, v.fingerprint
)
""" + INSERT_EVENT_ROWS.replace("%s", "%(events)s")  # noqa: S608 (constants only)
_HOLD_EVENT_TYPES = {
    HoldStatus.OPEN: EventType.HOLD_CREATED,
    HoldStatus.CAPTURED: EventType.HOLD_CAPTURED,
    HoldStatus.VOIDED: EventType.HOLD_VOIDED,
    HoldStatus.EXPIRED: EventType.HOLD_EXPIRED,
}


@dataclass(frozen=True)
class HoldEnd:
    """How a hold is to end: CAPTURED (`amount` moves, at most the hold's;
    the rest is released), VOIDED or EXPIRED (all released). `key` and
    `fingerprint`: the request that ends it, kept so that its retry is
    answered again ("" for an expiry or an operator). `note`: an operator's
    reason."""

    status: HoldStatus
    amount: Decimal | None = None
    key: str = ""
    fingerprint: str = ""
    note: str = ""
    # The client whose hold it must be (a client's own request: another
    # client's hold is not found, as an unknown one); None for an operator
    # or the expiry.
    client_id: int | None = None

    def captured(self, hold: Hold) -> Decimal:
        """What a capture of `hold` moves: `amount`, or all the hold reserves
        (None). Raises CaptureExceedsHold above the hold's amount: the one
        place that rule is checked, for a capture and a set's alike."""
        if self.amount is None:
            return hold.amount
        if self.amount > hold.amount:
            raise CaptureExceedsHold(
                f"Hold {hold.pk} reserves {hold.amount:.2f} {hold.currency}; a capture moves at most that."
            )
        return self.amount


def place_hold(hold: Hold, *, wallets_rule: str, rule_params: dict) -> str:
    """Place `hold` (new, unsaved: client, key, fingerprint, body digest,
    wallets, amount, expires_at, metadata) in one database transaction:
    insert it OPEN where the caller's tenancy rule (`wallets_rule`, a WHERE
    clause on wallets s and d, with `rule_params`) allows, lock its wallets,
    check the rules (check_rules: a hold is a debit of the source's
    available balance), then raise the source's held by SETTLE with its
    hold.created event to both owners, or mark it FAILED with the rule it
    broke, reserving nothing. Returns "placed"; "taken" (the (client, key)
    has a hold: the caller answers with it) or "not_found" (a wallet is
    unknown or not the client's to use), having written nothing."""
    return retrying(lambda: _place_hold_once(hold, wallets_rule, rule_params), hold.idempotency_key)


def _place_hold_once(hold: Hold, wallets_rule: str, rule_params: dict) -> str:
    with transaction.atomic(durable=True):
        now = timezone.now()
        params = {
            **rule_params,
            "id": hold.pk, "client": hold.client_id, "key": hold.idempotency_key,
            "fingerprint": hold.request_fingerprint, "digest": hold.body_digest, "source": hold.source_wallet_id,
            "destination": hold.destination_wallet_id, "amount": hold.amount, "expires_at": hold.expires_at,
            "metadata": json.dumps(hold.metadata, separators=(",", ":")), "now": now,
        }  # fmt: skip
        if not _fetch(_INSERT_HOLD.format(wallets=wallets_rule), params):
            return "taken" if _fetch(_KEY_TAKEN, [hold.client_id, hold.idempotency_key]) else "not_found"
        day = business_day(now)
        wallets = locks.lock_wallets(hold.source_wallet_id, hold.destination_wallet_id, day=day)
        source, destination = wallets[hold.source_wallet_id], wallets[hold.destination_wallet_id]
        hold.currency, hold.created_at, hold.updated_at = source.currency, now, now
        # Between customer wallets: no exposure row.
        rows = locks.lock_limit_rows([hold], wallets, day=day, exposures=False)
        try:
            # Tier caps are checked as for a transfer of the amount today
            # (docs/limits.md); the day's totals move only when it is captured.
            check_rules(hold, source, destination, None, client_debits_row(source, rows))
        except BusinessRuleViolation as violation:
            failure = Failure.of(violation)
            hold.status, hold.error_code, hold.error_message = HoldStatus.FAILED, failure.code, failure.message
            _run(_FAIL_HOLD, [failure.code, failure.message, hold.pk])
            return "placed"
        hold.status = HoldStatus.OPEN
        posting = Posting(decisions=[], day=day, held_changes={source.pk: hold.amount})
        if source.kind == WalletKind.CUSTOMER:
            # A hold counts against its payer's daily debits when it is placed
            # (docs/limits.md, "Holds"); a void, an expiry or the rest of a
            # partial capture gives the room back the same day.
            posting.totals[source.pk] = DayTotals(debits=hold.amount)
        apply_statement(posting, now)  # no log to copy its outcome onto
        record_event_rows(_hold_events(hold, owners(source, destination)))
    return "placed"


def end_hold(hold_id: uuid.UUID, end: HoldEnd) -> tuple[Hold, bool]:
    """End an OPEN hold as `end` says, in one database transaction. Returns
    (hold, ended_now): ended_now False when it was not OPEN (it is returned
    as it is, ended by whoever came first), or when its expiry had come: then
    it is EXPIRED here and now instead (an expiry is never overtaken by the
    task's delay), and returned so.

    A capture is refused whole by a rule it breaks (the destination frozen,
    say; CaptureExceedsHold above the hold's amount): the rule's
    BusinessRuleViolation is raised and the hold stays OPEN. HoldNotFound
    for an unknown id, or one not end.client_id's."""
    return retrying(lambda: _end_hold_once(hold_id, end), hold_id)


def _end_hold_once(hold_id: uuid.UUID, end: HoldEnd) -> tuple[Hold, bool]:
    with transaction.atomic(durable=True):
        try:
            hold = locks.lock_hold(hold_id)
        except Hold.DoesNotExist:
            raise HoldNotFound() from None
        if end.client_id is not None and hold.client_id != end.client_id:
            raise HoldNotFound()
        if hold.status != HoldStatus.OPEN:
            return hold, False
        now = timezone.now()
        due = end.status != HoldStatus.EXPIRED and hold.expires_at <= now
        post_hold_ends([(hold, HoldEnd(HoldStatus.EXPIRED) if due else end)], now)
    return hold, not due


def end_holds(ends: dict[uuid.UUID, HoldEnd]) -> tuple[list[Hold], list[Hold]]:
    """End a set of holds at once, all or none (docs/api.md, "Holds": a set
    captured or voided in one request), in one database transaction: every
    hold locked in primary-key order, then one posting for all of them.
    Returns (holds, not_open): when any is not OPEN (or its expiry has come:
    it is EXPIRED here, the others untouched), not_open lists them and none
    ends. A broken rule of any capture is raised (nothing ends). Holds
    missing from the result were not found."""
    return retrying(lambda: _end_holds_once(ends), "hold set")


def _end_holds_once(ends: dict[uuid.UUID, HoldEnd]) -> tuple[list[Hold], list[Hold]]:
    with transaction.atomic(durable=True):
        holds = locks.lock_holds(list(ends))
        now = timezone.now()
        not_open = [hold for hold in holds if hold.status != HoldStatus.OPEN or hold.expires_at <= now]
        if not_open:
            due = [hold for hold in not_open if hold.status == HoldStatus.OPEN]
            if due:
                post_hold_ends([(hold, HoldEnd(HoldStatus.EXPIRED)) for hold in due], now)
            return holds, not_open
        post_hold_ends([(hold, ends[hold.pk]) for hold in holds], now)
    return holds, []


def expire_due_holds(*, limit: int) -> int:
    """Expire up to `limit` OPEN holds whose expiry has come, soonest first,
    in one database transaction (their sources' held released, a
    hold.expired event each); holds another transaction has locked are
    passed over (SKIP LOCKED): it ends them, or the next call does. Returns
    how many it expired. Safe to run from any number of workers at once."""

    def once() -> int:
        with transaction.atomic(durable=True):
            now = timezone.now()
            holds = locks.lock_due_holds(now, limit)
            if holds:
                post_hold_ends([(hold, HoldEnd(HoldStatus.EXPIRED)) for hold in holds], now)
        return len(holds)

    return retrying(once, "expiry")


def post_hold_ends(ends: list[tuple[Hold, HoldEnd]], now) -> None:
    """Post the ends of OPEN holds the caller has locked, in its transaction:
    lock their wallets, release every hold, decide the captures' TRANSFER
    logs on what that leaves (check_rules; the first broken rule is raised,
    nothing written), then the captures' PENDING logs with the holds' rows
    and events (_END_HOLDS), and one SETTLE for every held change, balance
    and log. The holds are updated in memory."""
    wallet_ids = {hold.source_wallet_id for hold, _ in ends}
    wallet_ids |= {hold.destination_wallet_id for hold, end in ends if end.status == HoldStatus.CAPTURED}
    day = business_day(now)
    wallets = locks.lock_wallets(*wallet_ids, day=day)
    held: dict[uuid.UUID, Decimal] = {}
    captures = []
    for hold, end in ends:
        source = wallets[hold.source_wallet_id]
        source.held -= hold.amount
        held[source.pk] = held.get(source.pk, Decimal(0)) - hold.amount
        if end.status == HoldStatus.CAPTURED:
            captures.append(_capture_log(hold, end.captured(hold)))
    # Its payer's debit counted when the hold was placed (docs/limits.md, "Holds").
    rows = locks.lock_limit_rows(captures, wallets, day=day)
    posting = decide(captures, wallets, rows, day=day, counted_at_hold=True)
    for decision in posting.decisions:
        if decision.failure is not None:
            raise decision.failure.violation()
    posting.held_changes = held
    _release_room(ends, wallets, day)
    rows, events = [], []
    logs = iter(captures)
    payees = _owners_of({hold.destination_wallet_id for hold, _ in ends} - wallets.keys())
    for hold, end in ends:
        log = next(logs) if end.status == HoldStatus.CAPTURED else None
        hold.status, hold.ended_at, hold.updated_at = end.status, now, now
        hold.end_key, hold.end_fingerprint, hold.end_note = end.key, end.fingerprint, end.note
        hold.captured_amount, hold.transaction_id = (log.amount, log.pk) if log else (None, None)
        rows.append(
            {
                "id": str(hold.pk), "client": hold.client_id, "status": hold.status,
                "captured": log and str(log.amount), "log": log and str(log.pk), "key": end.key,
                "fingerprint": end.fingerprint, "note": end.note,
            }
        )  # fmt: skip
        destination = wallets.get(hold.destination_wallet_id)
        payee = destination.owner_id if destination else payees[hold.destination_wallet_id]
        recipients = sorted({wallets[hold.source_wallet_id].owner_id, payee} - {None})
        events += _hold_events(hold, recipients)
    ends_document = {"logs": _captures_json(captures), "ends": json.dumps(rows), "events": event_rows_json(events)}
    with _refused_if_key_taken():
        _run(_END_HOLDS, {**ends_document, "now": now})
    apply(posting, now)


@contextmanager
def _refused_if_key_taken() -> Iterator[None]:
    """IdempotencyKeyReused for the client's hold request key bound to
    another request (HoldRequestKey's unique constraint), raised inside the
    caller's transaction: it rolls back whole, and nothing has changed."""
    try:
        yield
    except IntegrityError as exc:
        if getattr(getattr(exc.__cause__, "diag", None), "constraint_name", None) == HOLD_REQUEST_KEY_CONSTRAINT:
            raise IdempotencyKeyReused() from exc
        raise


_RELEASE_ROOM = """
UPDATE wallet_daily_totals d SET debits = d.debits - v.released
  FROM unnest(%s::uuid[], %s::numeric[]) AS v(id, released)
 WHERE d.wallet_id = v.id AND d.day = %s
"""


def _release_room(ends: list[tuple[Hold, HoldEnd]], wallets: dict, day: datetime.date) -> None:
    """Give back to each payer's daily debits what its holds placed today
    counted and did not move (a void, an expiry, the rest of a partial
    capture); a hold placed on an earlier day counted in that day, which is
    over. Never below zero: a hold placed before holds counted moved nothing
    into the totals."""
    releases: dict[uuid.UUID, Decimal] = {}
    for hold, end in ends:
        source = wallets[hold.source_wallet_id]
        if source.kind != WalletKind.CUSTOMER or business_day(hold.created_at) != day:
            continue
        moved = end.captured(hold) if end.status == HoldStatus.CAPTURED else Decimal(0)
        released = min(hold.amount - moved, source.limits_today.debits)
        if released > 0:
            source.limits_today.debits -= released
            releases[source.pk] = releases.get(source.pk, Decimal(0)) + released
    if releases:
        # Not through SETTLE's upsert: PostgreSQL checks an INSERT's row (a
        # negative addition) against the CHECK before ON CONFLICT turns it
        # into an update. The row exists: the placement wrote it.
        _run(_RELEASE_ROOM, [[str(pk) for pk in releases], [str(n) for n in releases.values()], day])


def _captures_json(logs: list[TransactionLog]) -> str:
    return json.dumps(
        [
            {
                "id": str(log.pk), "client": log.client_id, "key": log.idempotency_key,
                "fingerprint": log.movement_fingerprint, "source": str(log.source_wallet_id),
                "destination": str(log.destination_wallet_id), "amount": str(log.amount), "currency": log.currency,
                "reference": log.reference, "metadata": log.metadata,
            }
            for log in logs
        ],
        separators=(",", ":"),
    )  # fmt: skip


def _owners_of(wallet_ids: set[uuid.UUID]) -> dict[uuid.UUID, int | None]:
    """The owners of wallets a posting does not lock (a voided or expired
    hold's destination: no money reaches it, so its row is not locked, but
    its owner hears of the hold), read without a lock: an owner never changes
    but by an operator giving an unclaimed wallet away."""
    if not wallet_ids:
        return {}
    return dict(Wallet.objects.filter(pk__in=wallet_ids).values_list("pk", "owner_id"))


# What a capture's log holds before SETTLE, in the model's field order.
_CAPTURE_LOG_FIELDS = in_model_order(
    TransactionLog,
    [
        "client_id", "idempotency_key", "movement_fingerprint", "type", "status", "source_wallet_id",
        "destination_wallet_id", "amount", "currency", "metadata", "reference",
    ],
)  # fmt: skip


def _capture_log(hold: Hold, amount: Decimal) -> TransactionLog:
    """The PENDING TRANSFER a capture of `amount` makes: the hold's client,
    wallets, currency and metadata; its key `hold:<id>`, one per hold (a hold
    is captured once), so GET /api/transfer/hold:<id> finds it. Made as a
    row read back (Model.from_db, as a transfer's PENDING log is): only
    these fields set, without Model.__init__'s keyword path, which cost
    more than the rest of making it (_END_HOLDS inserts the row)."""
    values = {
        "id": uuid.uuid4(),
        "client_id": hold.client_id,
        "idempotency_key": f"hold:{hold.pk}",
        "movement_fingerprint": canonical_fingerprint(capture_of=str(hold.pk)),
        "type": TransactionType.TRANSFER.value,
        "status": TransactionStatus.PENDING.value,
        "source_wallet_id": hold.source_wallet_id,
        "destination_wallet_id": hold.destination_wallet_id,
        "amount": amount,
        "currency": hold.currency,
        "metadata": hold.metadata,
        "reference": new_reference(),
    }
    return TransactionLog.from_db(DEFAULT_DB_ALIAS, _CAPTURE_LOG_FIELDS, [values[name] for name in _CAPTURE_LOG_FIELDS])


def _hold_events(hold: Hold, recipients: list[int]) -> list[tuple[str, int, dict]]:
    """The event of `hold`'s new status, one per owner of its wallets, each as that owner may see it."""
    return [(_HOLD_EVENT_TYPES[hold.status], owner, hold_json(hold, viewer_id=owner)) for owner in recipients]


# An extension, with its key bound to the hold (HoldRequestKey) in the same
# statement: no row when the client's key is taken (by an earlier extension
# of this hold, or another hold request), and then nothing changed.
_EXTEND_HOLD = """
WITH keyed AS (
  INSERT INTO hold_request_keys (client_id, idempotency_key, fingerprint, hold_ids, created_at)
  SELECT %(client)s, %(key)s::text, %(fingerprint)s::text, ARRAY[%(id)s::uuid], %(now)s WHERE %(key)s::text <> ''
  ON CONFLICT (client_id, idempotency_key) DO NOTHING
  RETURNING 1
)
UPDATE holds SET expires_at = %(expires_at)s, extend_key = %(key)s::text, extend_fingerprint = %(fingerprint)s::text,
       updated_at = %(now)s
 WHERE id = %(id)s AND (%(key)s::text = '' OR EXISTS (SELECT 1 FROM keyed))
RETURNING 1
"""


def extend_hold(hold_id: uuid.UUID, expires_at, *, key: str, fingerprint: str) -> tuple[Hold, str]:
    """Move an OPEN hold's expiry to `expires_at`, later only, with its
    hold.extended event. Returns (hold, outcome): "extended"; "not_open" (it
    had ended, returned as it is; or its expiry had come, and it is EXPIRED
    here now); "replayed" (`key` made its last extension: unchanged);
    "not_later" (expires_at is not after its expiry: unchanged);
    "key_taken" (the client's `key` is bound to another hold request, or an
    earlier extension of this one: unchanged; the caller tells which).
    Hold.DoesNotExist for an unknown id."""
    with transaction.atomic(durable=True):
        hold = locks.lock_hold(hold_id)
        if key and hold.extend_key == key and hold.extend_fingerprint == fingerprint:
            return hold, "replayed"
        if hold.status != HoldStatus.OPEN:
            return hold, "not_open"
        now = timezone.now()
        if hold.expires_at <= now:
            post_hold_ends([(hold, HoldEnd(HoldStatus.EXPIRED))], now)
            return hold, "not_open"
        if expires_at <= hold.expires_at:
            return hold, "not_later"
        params = {"id": hold.pk, "client": hold.client_id, "key": key, "fingerprint": fingerprint}
        if not _fetch(_EXTEND_HOLD, {**params, "expires_at": expires_at, "now": now}):
            return hold, "key_taken"
        hold.expires_at, hold.extend_key, hold.extend_fingerprint, hold.updated_at = (expires_at, key, fingerprint, now)
        recipients = sorted(set(_owners_of({hold.source_wallet_id, hold.destination_wallet_id}).values()) - {None})
        events = [(EventType.HOLD_EXTENDED.value, owner, hold_json(hold, viewer_id=owner)) for owner in recipients]
        record_event_rows(events)
    return hold, "extended"
