"""The nouns of transfers: the ledger's tables, and what a money request
asks for and is answered, shared by the API and the services.

The ledger: one row of transaction_logs per movement of money. A log is
written PENDING before any money moves, then settled (COMPLETED or FAILED)
in one database transaction with the balance changes. See
transfers/services.py for the protocol and docs/design.md for the invariants.

Vocabulary (docs/design.md, "Words"):
- a **movement** is money asked to move from one wallet to another: its type
  (TRANSFER, DEPOSIT, WITHDRAWAL), amount, wallets and metadata (`Movement`);
- a **movement request** is a client's request for one, under an idempotency
  key (`found` is what the key already names: `Found`);
- a **transaction** is what the service records for it: one row of
  transaction_logs (`TransactionLog`, the first version's name; `log` in code), PENDING,
  then COMPLETED or FAILED;
- the **answer** is that transaction and whether an earlier request had
  already finished it (`MovementResult`).
The request's nouns are plain dataclasses, at the end of this module: a
stored fingerprint or body digest (TransactionLog.movement_fingerprint,
body_digest) is defined next to its column.

Between the ledger's tables and those dataclasses: the holds' table, and
what the engine's limits count in (docs/limits.md): the business day
(business_day), a locked wallet's Tier and LimitsToday, and the exposure and
daily-debits rows a movement changes (exposure_change, client_debits_key).
The rules that read them are transfers/engine.py's (check_rules,
check_caps); the locks that take them, transfers/locks.py's.
"""

import hashlib
import json
import re
import secrets
import uuid
import zoneinfo
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import cache

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from wallets.models import DECIMAL_PLACES, MAX_DIGITS, SYSTEM_KINDS, UNRESTRICTED, Wallet, WalletKind

REFERENCE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read over the phone
assert 256 % len(REFERENCE_ALPHABET) == 0, "new_reference draws one byte per character"
REFERENCE_FORMAT = re.compile(r"TXN-[A-Z0-9]{10,}", re.ASCII)  # also a CHECK constraint below


# Each byte's character, the byte modulo 32: uniform, as 32 divides 256.
_REFERENCE_CHARACTERS = bytes(ord(REFERENCE_ALPHABET[byte % len(REFERENCE_ALPHABET)]) for byte in range(256))


def new_reference() -> str:
    """TXN-, the UTC date (support can tell the day at a glance), 10 random
    characters (32^10 per day: a collision is as good as impossible, and the
    unique constraint would refuse it anyway)."""
    # One read of the system's randomness for all ten (secrets.choice reads
    # it once per character), mapped by one translate; the date without
    # strftime. Every movement and payout draws one: 40.3K -> 15.5K
    # instructions a reference (callgrind, 1,000 in a loop).
    suffix = secrets.token_bytes(10).translate(_REFERENCE_CHARACTERS).decode("ascii")
    return f"TXN-{timezone.now().date().isoformat().replace('-', '')}{suffix}"


def new_references(count: int) -> list[str]:
    """`count` references as new_reference makes them, all of today (UTC),
    for a batch's payouts: one read of the system's randomness and one of
    the date for all of them (1,000 references: 1.85 ms -> 0.13 ms
    in-process). A single movement's stays new_reference's own, without
    the list."""
    characters = secrets.token_bytes(10 * count).translate(_REFERENCE_CHARACTERS).decode("ascii")
    today = f"TXN-{timezone.now().date().isoformat().replace('-', '')}"
    return [today + characters[start : start + 10] for start in range(0, 10 * count, 10)]


class TransactionType(models.TextChoices):
    TRANSFER = "TRANSFER", "Transfer"
    DEPOSIT = "DEPOSIT", "Deposit"
    WITHDRAWAL = "WITHDRAWAL", "Withdrawal"


class TransactionStatus(models.TextChoices):
    PENDING = "PENDING", "Pending"
    COMPLETED = "COMPLETED", "Completed"
    FAILED = "FAILED", "Failed"
    REVERSED = "REVERSED", "Reversed"


# The statuses whose logs moved money (a REVERSED log did, and its
# compensating transfer moved it back).
MONEY_MOVED_STATUSES = (TransactionStatus.COMPLETED, TransactionStatus.REVERSED)


class OneToOneIndexedByConstraint(models.OneToOneField):
    """A one-to-one link whose uniqueness is a Meta UniqueConstraint of its
    model (typically partial: only the rows that have a link), not the
    column's own unique index; give it db_index=False (the constraint's
    index serves lookups and foreign-key checks by it). The reverse side
    stays one object, as any OneToOneField's."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("db_index", False)
        super().__init__(*args, **kwargs)
        self._unique = False


class TransactionLog(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    client = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="transaction_logs",
        help_text="The API client that asked for this movement.",
        # Led by the (client, idempotency_key) unique constraint's index; a
        # log's own would be one more index every insert and settle writes
        # (docs/design.md, "The indexes of transaction_logs").
        db_index=False,
    )
    idempotency_key = models.CharField(max_length=255)
    # sha256 of the canonical movement the key was first used for
    # (canonical_fingerprint, below): a replay must ask for the same one,
    # however it is written ("10" or "10.00").
    movement_fingerprint = models.CharField(max_length=64)
    # sha256 of that request's bytes exactly as sent (path, content type,
    # body), when it came through the API: a retry with the same bytes is
    # answered from the log without being parsed
    # (Found.answers_unread, below). The database default keeps raw
    # inserts (pgbench, fault tests) valid.
    body_digest = models.CharField(max_length=64, blank=True, default="", db_default="", editable=False)
    # Each led by idx_txlogs_source_wallet / idx_txlogs_destination_wallet
    # (below): no index of their own (as client, above).
    source_wallet = models.ForeignKey(Wallet, on_delete=models.PROTECT, related_name="outgoing_logs", db_index=False)
    destination_wallet = models.ForeignKey(
        Wallet, on_delete=models.PROTECT, related_name="incoming_logs", db_index=False
    )
    amount = models.DecimalField(max_digits=MAX_DIGITS, decimal_places=DECIMAL_PLACES)
    currency = models.CharField(max_length=3)
    type = models.CharField(max_length=16, choices=TransactionType.choices)
    status = models.CharField(max_length=16, choices=TransactionStatus.choices, default=TransactionStatus.PENDING)
    reference = models.CharField(max_length=32, default=new_reference)
    metadata = models.JSONField(default=dict, blank=True)
    error_code = models.CharField(max_length=64, blank=True, default="")
    error_message = models.TextField(blank=True, default="")
    # A payout of a batch (POST /api/transfers/batch): settled with the rest
    # of its batch, never on its own (services.batch_settle).
    # Led by the (batch, batch_index) unique constraint's index (as client, above).
    batch = models.ForeignKey(
        "TransferBatch", null=True, blank=True, on_delete=models.PROTECT, related_name="payouts", db_index=False
    )
    batch_index = models.PositiveIntegerField(null=True, blank=True, help_text="Its place in the batch, from 0.")
    # At most one compensating log per original: the partial unique
    # transfers_transactionlog_one_reversal_each (Meta), not the column's own
    # unique index, which would hold a NULL entry for every other log and be
    # written twice per movement (docs/design.md, "The indexes of
    # transaction_logs").
    reversal_of = OneToOneIndexedByConstraint(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="reversed_by",
        help_text="For a compensating transfer: the log it reverses (at most one each).",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    # Each wallet's balance once this movement was applied, written by the
    # engine in the statement that moves the money (transfers/engine.py,
    # decide and SETTLE): a balance as of any instant and a statement's running
    # balance are one indexed read (transfers/statements.py). Null for a log
    # that moved nothing, and for logs settled before migration 0015.
    source_balance_after = models.DecimalField(
        max_digits=MAX_DIGITS, decimal_places=DECIMAL_PLACES, null=True, blank=True, editable=False
    )
    destination_balance_after = models.DecimalField(
        max_digits=MAX_DIGITS, decimal_places=DECIMAL_PLACES, null=True, blank=True, editable=False
    )

    class Meta:
        db_table = "transaction_logs"
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["source_wallet", "created_at"], name="idx_txlogs_source_wallet"),
            models.Index(fields=["destination_wallet", "created_at"], name="idx_txlogs_destination_wallet"),
            # The logs not COMPLETED, by status (the beat's re-drive of old
            # PENDING logs, on-call's pending summary, the admin's and the
            # API's filters on PENDING, FAILED, REVERSED): the settle that
            # completes a log writes no entry here (a status=COMPLETED filter
            # reads the created_at order instead, where nearly every row is).
            models.Index(
                fields=["status", "created_at"],
                name="idx_txlogs_status",
                condition=~Q(status=TransactionStatus.COMPLETED),
            ),
            # Newest-first lists (the admin's, reconciliation's keyset pages).
            # Support's search by key alone, across clients, reads the
            # (client, key) unique index once per client (transfers/admin.py):
            # a key's own index was two more entries every movement writes.
            models.Index(fields=["created_at", "id"], name="idx_txlogs_created_at"),
            # A wallet's movements in the order they moved money, either side
            # (transfers/statements.py): the last one before an instant gives
            # the balance then; a period's are a statement. batch_index orders
            # the payouts of one batch, which share their completed_at.
            models.Index(
                fields=["source_wallet", "completed_at", "batch_index"],
                name="idx_txlogs_source_moved",
                condition=Q(completed_at__isnull=False),
            ),
            models.Index(
                fields=["destination_wallet", "completed_at", "batch_index"],
                name="idx_txlogs_destination_moved",
                condition=Q(completed_at__isnull=False),
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["client", "idempotency_key"], name="transfers_transactionlog_unique_client_key"
            ),
            models.UniqueConstraint(fields=["reference"], name="transfers_transactionlog_unique_reference"),
            models.CheckConstraint(condition=Q(amount__gt=0), name="transfers_transactionlog_amount_positive"),
            models.CheckConstraint(
                condition=~Q(source_wallet=F("destination_wallet")),
                name="transfers_transactionlog_distinct_wallets",
            ),
            models.CheckConstraint(
                condition=Q(reference__regex=f"^{REFERENCE_FORMAT.pattern}$"),
                name="transfers_transactionlog_reference_format",
            ),
            models.CheckConstraint(
                condition=Q(status__in=TransactionStatus.values), name="transfers_transactionlog_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(type__in=TransactionType.values), name="transfers_transactionlog_type_valid"
            ),
            models.CheckConstraint(
                condition=~Q(idempotency_key=""), name="transfers_transactionlog_idempotency_key_present"
            ),
            # A failure always says why.
            models.CheckConstraint(
                condition=~Q(status=TransactionStatus.FAILED) | (~Q(error_code="") & ~Q(error_message="")),
                name="transfers_transactionlog_failed_has_reason",
            ),
            # Only a batch's payouts have a batch (and an index): a single
            # movement writes no entry here. Still the index every lookup and
            # foreign-key check by batch reads (batch_id = x implies the
            # condition).
            models.UniqueConstraint(
                fields=["batch", "batch_index"],
                name="transfers_transactionlog_unique_batch_index",
                condition=Q(batch__isnull=False),
            ),
            # A log is reversed at most once (reversal_of, above).
            models.UniqueConstraint(
                fields=["reversal_of"],
                name="transfers_transactionlog_one_reversal_each",
                condition=Q(reversal_of__isnull=False),
            ),
            models.CheckConstraint(
                condition=Q(batch__isnull=True, batch_index__isnull=True)
                | Q(batch__isnull=False, batch_index__isnull=False, type=TransactionType.TRANSFER),
                name="transfers_transactionlog_batch_payout_has_index",
            ),
            # completed_at is set exactly when money moved.
            models.CheckConstraint(
                condition=(Q(status__in=MONEY_MOVED_STATUSES) & Q(completed_at__isnull=False))
                | (~Q(status__in=MONEY_MOVED_STATUSES) & Q(completed_at__isnull=True)),
                name="transfers_transactionlog_completed_at_iff_moved",
            ),
        ]
        permissions = [
            ("create_transfer", "Can move money between wallets (POST /api/transfer)"),
            ("create_deposit", "Can deposit into wallets"),
            ("create_withdrawal", "Can withdraw from wallets"),
            ("view_all_transfers", "Can see every API client's transactions"),
            # Tenancy (docs/api.md): a transfer may credit another client's wallet
            # only with this (the loan-disbursement service paying borrowers).
            ("pay_other_clients", "Can transfer into other API clients' wallets"),
            ("reconcile_transactionlog", "Can re-drive PENDING transactions"),
            ("reverse_transactionlog", "Can reverse completed transfers"),
        ]

    def __str__(self) -> str:
        return f"{self.reference} {self.type} {self.amount} {self.currency} {self.status}"


class BatchStatus(models.TextChoices):
    PENDING = "PENDING", "Pending"
    # Every payout completed.
    COMPLETED = "COMPLETED", "Completed"
    # atomic false: some payouts completed, some failed.
    PARTIALLY_COMPLETED = "PARTIALLY_COMPLETED", "Partially completed"
    # No payout completed (an atomic batch that broke a rule, or every payout failed).
    FAILED = "FAILED", "Failed"


class TransferBatch(models.Model):
    """A batch of payouts from one source wallet (POST /api/transfers/batch).

    Each payout the service could record is a TRANSFER log of its own
    (`payouts`, ordered by batch_index); a payout whose destination is unknown
    (or not the client's to pay) has no log, as a single transfer to it would
    store none: its outcome is kept in `rejected_payouts`. The batch and its
    logs are committed PENDING together, and settled together in one database
    transaction (services.batch_settle), so a PENDING batch has moved no money.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    client = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="transfer_batches")
    idempotency_key = models.CharField(max_length=255)
    # sha256 of the canonical batch (BatchRequest.fingerprint, below): a
    # replay must ask for the same batch.
    request_fingerprint = models.CharField(max_length=64)
    # sha256 of that request's bytes as sent, as TransactionLog.body_digest:
    # a retry with the same bytes is answered from the batch unread.
    body_digest = models.CharField(max_length=64, blank=True, default="", db_default="", editable=False)
    source_wallet = models.ForeignKey(Wallet, on_delete=models.PROTECT, related_name="outgoing_batches")
    atomic = models.BooleanField()
    status = models.CharField(max_length=24, choices=BatchStatus.choices, default=BatchStatus.PENDING)
    payout_count = models.PositiveIntegerField()
    total_amount = models.DecimalField(max_digits=MAX_DIGITS + 3, decimal_places=DECIMAL_PLACES)
    completed_count = models.PositiveIntegerField(default=0)
    completed_amount = models.DecimalField(max_digits=MAX_DIGITS + 3, decimal_places=DECIMAL_PLACES, default=0)
    failed_count = models.PositiveIntegerField(default=0)
    # The first broken rule of an atomic batch, and which payout broke it.
    error_code = models.CharField(max_length=64, blank=True, default="")
    error_message = models.TextField(blank=True, default="")
    failed_index = models.PositiveIntegerField(null=True, blank=True)
    # [{"index", "destinationWalletId", "amount", "idempotencyKey", "errorCode", "errorMessage"}]
    rejected_payouts = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "transfer_batches"
        ordering = ["-created_at"]
        verbose_name_plural = "transfer batches"
        indexes = [models.Index(fields=["status", "created_at"], name="idx_batches_status")]
        constraints = [
            models.UniqueConstraint(
                fields=["client", "idempotency_key"], name="transfers_transferbatch_unique_client_key"
            ),
            models.CheckConstraint(
                condition=Q(status__in=BatchStatus.values), name="transfers_transferbatch_status_valid"
            ),
            models.CheckConstraint(condition=Q(payout_count__gt=0), name="transfers_transferbatch_not_empty"),
            models.CheckConstraint(
                condition=Q(completed_count__lte=F("payout_count") - F("failed_count")),
                name="transfers_transferbatch_counts_fit",
            ),
            # finished_at is set exactly when the batch is settled.
            models.CheckConstraint(
                condition=Q(status=BatchStatus.PENDING, finished_at__isnull=True)
                | (~Q(status=BatchStatus.PENDING) & Q(finished_at__isnull=False)),
                name="transfers_transferbatch_finished_at_iff_settled",
            ),
        ]

    def __str__(self) -> str:
        return f"batch {self.pk} ({self.payout_count} payouts, {self.status})"


class ClientExposure(models.Model):
    """What one API client's wallets hold, in one currency, of the money that
    came in through deposits: its deposits minus its withdrawals (a reversal
    of either counts as its opposite). Every deposit moves the currency's
    settlement wallet down by as much, so bounding each client's exposure
    (settings.CLIENT_EXPOSURE_LIMIT) keeps any one client from taking the
    settlement wallet to where other clients' deposits no longer fit in
    NUMERIC(20,2) (docs/design.md, "Client exposure").

    Counted by the wallet's owner, in the settle transaction that moves the
    money (transfers/engine.py), under the row locks of that transaction:
    the settlement wallet's, then this row's. Transfers between customer
    wallets do not change it: no money enters or leaves the ledger.
    """

    client = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="exposures")
    currency = models.CharField(max_length=3)
    # May be negative: a client that withdraws money another client paid it.
    amount = models.DecimalField(max_digits=MAX_DIGITS, decimal_places=DECIMAL_PLACES, default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "client_exposures"
        constraints = [
            models.UniqueConstraint(
                fields=["client", "currency"], name="transfers_clientexposure_unique_client_currency"
            )
        ]

    def __str__(self) -> str:
        return f"{self.client} {self.currency} exposure {self.amount}"


class WalletDailyTotal(models.Model):
    """What one customer wallet received and sent in one business day
    (settings.BUSINESS_TIME_ZONE): the running totals its tier's daily caps
    are checked against (docs/limits.md). Written by the settle statement
    that moves the money (transfers/engine.py), so the totals move exactly
    when the balance does; read under the wallet's row lock. Reversals and
    corrections are outside tiers and do not count."""

    wallet = models.ForeignKey(Wallet, on_delete=models.PROTECT, related_name="daily_totals", db_index=False)
    day = models.DateField()
    debits = models.DecimalField(max_digits=MAX_DIGITS, decimal_places=DECIMAL_PLACES, default=0)
    credits = models.DecimalField(max_digits=MAX_DIGITS, decimal_places=DECIMAL_PLACES, default=0)

    class Meta:
        db_table = "wallet_daily_totals"
        constraints = [
            # Also the index the lock statement reads the day's row through.
            models.UniqueConstraint(fields=["wallet", "day"], name="transfers_walletdailytotal_one_per_day"),
            models.CheckConstraint(
                condition=Q(debits__gte=0) & Q(credits__gte=0), name="transfers_walletdailytotal_not_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.wallet_id} {self.day}: -{self.debits} +{self.credits}"


class ClientDailyDebit(models.Model):
    """What one API client's wallets sent in one currency in one business
    day, counted only while a CLIENT_DAILY_DEBIT_LIMIT is set for the
    currency (docs/limits.md): locked after the wallets, like the exposure."""

    client = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", db_index=False)
    currency = models.CharField(max_length=3)
    day = models.DateField()
    amount = models.DecimalField(max_digits=MAX_DIGITS, decimal_places=DECIMAL_PLACES, default=0)

    class Meta:
        db_table = "client_daily_debits"
        constraints = [
            models.UniqueConstraint(
                fields=["client", "currency", "day"], name="transfers_clientdailydebit_one_per_currency_and_day"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.client_id} {self.currency} {self.day}: {self.amount}"


# --- the business day -------------------------------------------------------------
#
# The daily caps count in the business day (docs/limits.md, "The business
# day"): the day in settings.BUSINESS_TIME_ZONE (Africa/Lagos by default,
# checked at start-up; docs/operations.md), the one zone the service counts
# days in: the daily totals, a statement's days (transfers.statements) and the
# days the API and the admin ask for (business_day, business_today,
# business_zone below).


@cache
def _zone(name: str) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(name)


def business_zone() -> zoneinfo.ZoneInfo:
    """The zone of settings.BUSINESS_TIME_ZONE; its key is the IANA name."""
    return _zone(settings.BUSINESS_TIME_ZONE)


def business_day(moment: datetime) -> date:
    """The business day that the aware `moment` falls in."""
    return moment.astimezone(business_zone()).date()


def business_today() -> date:
    """The business day it is now."""
    return timezone.localdate(timezone=business_zone())


# --- tiers, and what the limits need of a locked wallet (docs/limits.md) ---------

ZERO = Decimal(0)


@dataclass
class Tier:
    """A wallet's tier as the engine reads it with the wallet's row: its
    name and caps (None: no cap)."""

    id: int | None
    name: str
    max_single_credit: Decimal | None = None
    max_single_debit: Decimal | None = None
    max_daily_credits: Decimal | None = None
    max_daily_debits: Decimal | None = None
    max_balance: Decimal | None = None

    @property
    def has_daily_caps(self) -> bool:
        return self.max_daily_credits is not None or self.max_daily_debits is not None


NO_TIER = Tier(None, UNRESTRICTED)


@dataclass
class LimitsToday:
    """What the limits need of one locked customer wallet: its tier, and
    what it sent and received today so far (running: the engine adds each
    movement it completes, so a batch checks each payout on the totals the
    payouts before it leave)."""

    tier: Tier
    debits: Decimal = ZERO
    credits: Decimal = ZERO


# --- the rows a movement counts in: its client's exposure, its client's daily debits ---


def exposure_change(payer: Wallet, payee: Wallet, amount: Decimal) -> tuple[tuple[int, str], Decimal] | None:
    """Whose exposure a movement changes (the (client, currency) of its row,
    transfers.models.ClientExposure) and by how much: + amount to the owner
    of a customer wallet a system wallet pays (a deposit, a reversed
    withdrawal, a credit adjustment from suspense), - amount to the owner of
    one that pays a system wallet; None between customer wallets. A suspense
    wallet counts as the settlement wallet does: money from it enters the
    client's wallets from outside them (docs/design.md, "Client exposure")."""
    if payer.kind in SYSTEM_KINDS:
        return (payee.owner_id, payee.currency), amount
    if payee.kind in SYSTEM_KINDS:
        return (payer.owner_id, payer.currency), -amount
    return None


def client_debits_key(payer: Wallet) -> tuple[int, str] | None:
    """The (client, currency) of the paying client's daily-debits row a
    movement counts in: when a customer wallet pays in a currency
    CLIENT_DAILY_DEBIT_LIMIT names; else None (docs/limits.md, "Per-client caps")."""
    if payer.kind != WalletKind.CUSTOMER or payer.currency not in settings.CLIENT_DAILY_DEBIT_LIMIT:
        return None
    return payer.owner_id, payer.currency


# --- holds (docs/api.md, "Holds") --------------------------------------------------


class HoldStatus(models.TextChoices):
    # Reserving its amount on the source wallet (counted in wallet.held).
    OPEN = "OPEN", "Open"
    # Ended: its captured amount moved to the destination as a TRANSFER (transaction), the rest released.
    CAPTURED = "CAPTURED", "Captured"
    # Ended: released whole, by its client or by an operator.
    VOIDED = "VOIDED", "Voided"
    # Ended: released whole when its expiry came (the expiry task).
    EXPIRED = "EXPIRED", "Expired"
    # Never reserved anything: a rule refused it when it was placed (error_code says which).
    FAILED = "FAILED", "Failed"


HOLD_ENDED_STATUSES = (HoldStatus.CAPTURED, HoldStatus.VOIDED, HoldStatus.EXPIRED)


class Hold(models.Model):
    """An amount reserved on a customer wallet toward a destination wallet,
    until it is captured (moved, in whole or in part, as a TRANSFER),
    voided or expired: each ends it exactly once.

    Placed exactly once per (client, idempotency key), in one database
    transaction with the reservation (transfers/engine.py, place_hold): a
    hold row exists only with its outcome, OPEN (reserving) or FAILED (a
    rule refused it, nothing reserved). While OPEN its amount counts in its
    source wallet's `held`, and wallet.held is the sum of the wallet's OPEN
    holds (verify_ledger, held_agreement).

    A capture or a void carries its own idempotency key, kept as end_key: a
    retry with it is answered what the end did; another request to end an
    ended hold is refused (hold_not_open). An extension keeps the last
    extension's key the same way. Each such key is also bound, client-wide,
    to its holds and request (HoldRequestKey).
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    client = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="holds",
        help_text="The API client that placed the hold.",
    )
    idempotency_key = models.CharField(max_length=255)
    # sha256 of the canonical request (canonical_fingerprint, below), as a log's movement_fingerprint.
    request_fingerprint = models.CharField(max_length=64)
    # sha256 of the placing request's bytes, as TransactionLog.body_digest.
    body_digest = models.CharField(max_length=64, blank=True, default="", db_default="", editable=False)
    source_wallet = models.ForeignKey(Wallet, on_delete=models.PROTECT, related_name="outgoing_holds")
    destination_wallet = models.ForeignKey(Wallet, on_delete=models.PROTECT, related_name="incoming_holds")
    amount = models.DecimalField(max_digits=MAX_DIGITS, decimal_places=DECIMAL_PLACES)
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=16, choices=HoldStatus.choices)
    expires_at = models.DateTimeField()
    metadata = models.JSONField(default=dict, blank=True)
    error_code = models.CharField(max_length=64, blank=True, default="")
    error_message = models.TextField(blank=True, default="")
    # A capture: what moved (the rest of amount was released) and the TRANSFER that moved it.
    captured_amount = models.DecimalField(max_digits=MAX_DIGITS, decimal_places=DECIMAL_PLACES, null=True, blank=True)
    transaction = models.OneToOneField(
        TransactionLog, null=True, blank=True, on_delete=models.PROTECT, related_name="capture_of"
    )
    # The capture's or void's idempotency key and request fingerprint ("" for an expiry or an operator's void).
    end_key = models.CharField(max_length=255, blank=True, default="")
    end_fingerprint = models.CharField(max_length=64, blank=True, default="")
    # The last extension's key and fingerprint: its retry is answered again.
    extend_key = models.CharField(max_length=255, blank=True, default="")
    extend_fingerprint = models.CharField(max_length=64, blank=True, default="")
    # Who ended it and why, for an operator's void ("" otherwise).
    end_note = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "holds"
        ordering = ["-created_at"]
        indexes = [
            # The expiry task's scan: only OPEN holds, soonest first.
            models.Index(fields=["expires_at"], condition=Q(status="OPEN"), name="idx_holds_open_expiry"),
            models.Index(fields=["source_wallet", "status"], name="idx_holds_source_status"),
            models.Index(fields=["destination_wallet", "created_at"], name="idx_holds_destination"),
            models.Index(fields=["created_at", "id"], name="idx_holds_created_at"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["client", "idempotency_key"], name="transfers_hold_unique_client_key"),
            models.CheckConstraint(condition=Q(amount__gt=0), name="transfers_hold_amount_positive"),
            models.CheckConstraint(
                condition=~Q(source_wallet=F("destination_wallet")), name="transfers_hold_distinct_wallets"
            ),
            models.CheckConstraint(condition=Q(status__in=HoldStatus.values), name="transfers_hold_status_valid"),
            models.CheckConstraint(
                condition=~Q(status=HoldStatus.FAILED) | (~Q(error_code="") & ~Q(error_message="")),
                name="transfers_hold_failed_has_reason",
            ),
            # A capture moved something, at most the hold, through its transaction; nothing else captured.
            models.CheckConstraint(
                condition=(
                    Q(status=HoldStatus.CAPTURED)
                    & Q(captured_amount__gt=0)
                    & Q(captured_amount__lte=F("amount"))
                    & Q(transaction__isnull=False)
                )
                | (~Q(status=HoldStatus.CAPTURED) & Q(captured_amount__isnull=True) & Q(transaction__isnull=True)),
                name="transfers_hold_captured_has_transfer",
            ),
            models.CheckConstraint(
                condition=(Q(status__in=HOLD_ENDED_STATUSES) & Q(ended_at__isnull=False))
                | (~Q(status__in=HOLD_ENDED_STATUSES) & Q(ended_at__isnull=True)),
                name="transfers_hold_ended_at_iff_ended",
            ),
        ]
        permissions = [("void_hold", "Can void an open hold (admin)")]

    def __str__(self) -> str:
        return f"hold {self.pk} {self.amount} {self.currency} {self.status}"


# The one key per (client, key) of hold requests: its violation is a reused key.
HOLD_REQUEST_KEY_CONSTRAINT = "transfers_holdrequestkey_unique_client_key"


class HoldRequestKey(models.Model):
    """The idempotency key of a request that ends or extends holds (a
    capture, a void, an extension; of one hold or of a set), bound to the
    client, the holds and the request (docs/api.md, "Holds").

    One per (client, key), written in the transaction that does what the
    request asks (transfers/engine.py: _END_HOLDS, extend_hold): a key that
    ended hold A cannot end hold B, nor capture another set, nor extend
    anything; that request is refused 422 idempotency_key_reused and changes
    nothing, while the same request again is a replay. Another client's key
    of the same string is its own. A placement's key is the hold's own
    (Hold.idempotency_key), a namespace apart.
    """

    client = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    idempotency_key = models.CharField(max_length=255)
    # The request's canonical fingerprint (canonical_fingerprint, below), as the
    # holds keep it in end_fingerprint or extend_fingerprint.
    fingerprint = models.CharField(max_length=64)
    # The holds it ended or extended, in primary-key order: the same request
    # names the same holds.
    hold_ids = ArrayField(models.UUIDField())
    created_at = models.DateTimeField()

    class Meta:
        db_table = "hold_request_keys"
        constraints = [
            models.UniqueConstraint(fields=["client", "idempotency_key"], name=HOLD_REQUEST_KEY_CONSTRAINT),
        ]

    def __str__(self) -> str:
        return f"hold request key {self.idempotency_key!r} of client {self.client_id}"


# --- a money request: what it asks for, and its answer (docs/design.md, "Words") ---------


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
        """The movement fingerprint stored with its transaction: a replay must
        ask for the same movement (transfers.services, protocol layer 1)."""
        return canonical_fingerprint(
            type=self.type,
            source=self.source_wallet_id and str(self.source_wallet_id),
            destination=self.destination_wallet_id and str(self.destination_wallet_id),
            amount=self.amount,
            metadata=self.metadata,
        )


# json.dumps(sort_keys=True, separators=(",", ":"), default=str), made once:
# json.dumps builds an encoder on every call it is given options (callgrind,
# 100 fingerprints of a transfer: 75K -> 66K instructions each).
_CANONICAL_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=str)


def canonical_fingerprint(**asked: object) -> str:
    """sha256 (64 hex digits) of a canonical form of what was asked, to tell a
    genuine retry from a reused key however the request was written: amounts
    are normalised ("100" == "100.00"), keys sorted, whitespace dropped."""
    canonical = {k: (f"{v:.2f}" if isinstance(v, Decimal) else v) for k, v in asked.items()}
    return hashlib.sha256(_CANONICAL_JSON.encode(canonical).encode()).hexdigest()


def is_final(row: TransactionLog | TransferBatch | Hold) -> bool:
    """Whether a transaction, a batch or a hold is final: a request under its
    key is a replay, and a replica's copy of it may be read. A PENDING one may
    be settling on the primary right now. (A batch's BatchStatus.PENDING is the
    same string as TransactionStatus.PENDING.)"""
    return row.status != TransactionStatus.PENDING


@dataclass(frozen=True)
class Found:
    """Layer 1 of the protocol (docs/design.md, "The protocol: five
    layers"; step 2 of "The steps"): what a client's idempotency
    key already names, a transaction (services.movement_find), a batch
    (services.batch_find) or a placed hold (holds.hold_find, never
    PENDING), or None: nothing yet."""

    row: TransactionLog | TransferBatch | Hold | None

    @property
    def finished(self) -> bool:
        """Whether a request under the key is a replay (charged as one): what
        it names is final (is_final)."""
        return self.row is not None and is_final(self.row)

    def answers_unread(self, body_digest: str) -> bool:
        """Whether a request whose bytes have `body_digest` (sha256 of its
        path, content type and body, as sent) is a byte-identical retry of
        the finished request that made the row: then it is answered from the
        row without being parsed or validated, since it cannot ask for
        anything else (and retries are what replays mostly are: a double tap,
        a client's timeout). "" matches nothing. The one place this is decided,
        for single movements, batches and placed holds alike."""
        return self.finished and bool(body_digest) and self.row.body_digest == body_digest


@dataclass(frozen=True)
class MovementResult:
    """The answer to a movement request: its transaction, and whether an
    earlier request had already finished it (a replay: 200 instead of 201)."""

    log: TransactionLog
    replayed: bool


# --- a batch of payouts (POST /api/transfers/batch) --------------------------------


@dataclass(frozen=True)
class Payout:
    """One payout of a batch: a TRANSFER from the batch's source wallet under
    its own idempotency key."""

    destination_wallet_id: uuid.UUID
    amount: Decimal
    idempotency_key: str
    metadata: dict

    def movement(self, source_wallet_id: uuid.UUID) -> Movement:
        """The movement it is: the same as a single transfer's, so that its
        key answers GET /api/transfer/{key}, and POST /api/transfer replays it."""
        return Movement.transfer(
            source_wallet_id=source_wallet_id,
            destination_wallet_id=self.destination_wallet_id,
            amount=self.amount,
            metadata=self.metadata,
        )


@dataclass(frozen=True)
class BatchRequest:
    """A client's request for a batch of payouts from one source wallet, under
    the batch's idempotency key. `atomic`: all payouts complete or none does;
    otherwise each completes or fails on its own."""

    client: AbstractBaseUser
    idempotency_key: str
    source_wallet_id: uuid.UUID
    atomic: bool
    payouts: tuple[Payout, ...]

    def fingerprint(self) -> str:
        """What a replay of the batch key must ask for again: the same
        source, mode and payouts in the same order (amounts as numbers)."""
        return canonical_fingerprint(
            source=str(self.source_wallet_id),
            atomic=self.atomic,
            payouts=[
                [str(p.destination_wallet_id), f"{p.amount:.2f}", p.idempotency_key, p.metadata] for p in self.payouts
            ],
        )


@dataclass(frozen=True)
class PayoutOutcome:
    """What became of one payout of a batch: its transaction (None when its
    destination was unknown, as a single transfer to it would store none),
    and its status and error."""

    index: int
    idempotency_key: str
    destination_wallet_id: uuid.UUID
    amount: Decimal
    status: str
    transaction_id: uuid.UUID | None
    reference: str | None
    error_code: str
    error_message: str


@dataclass(frozen=True)
class BatchResult:
    """The answer to a batch request: the batch, each payout's outcome in the
    order given, and whether an earlier request had already settled it."""

    batch: TransferBatch
    payouts: list[PayoutOutcome]
    replayed: bool


# --- a hold's request (POST /api/holds) ---------------------------------------------


@dataclass(frozen=True)
class Expiry:
    """When a hold is to expire, as the client wrote it: an instant, or a
    number of seconds from when the request is served."""

    at: datetime | None = None
    in_seconds: int | None = None

    def instant(self, now: datetime) -> datetime:
        return self.at if self.at is not None else now + timedelta(seconds=self.in_seconds)

    def asked(self) -> dict:
        """What a replay must ask again (the relative form as written: a retry
        is the same request seconds later)."""
        if self.at is not None:
            return {"expiresAt": self.at.isoformat()}
        return {"expiresInSeconds": self.in_seconds}
