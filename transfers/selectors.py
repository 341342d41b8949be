"""Reads of the ledger. Writes live in services.py and the engine it
calls (engine.py), and in holds.py."""

import datetime
import uuid
from decimal import Decimal

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import DecimalField, OuterRef, Q, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from transfers.exceptions import BatchNotFound, TransactionNotFound
from transfers.models import (
    MONEY_MOVED_STATUSES,
    REFERENCE_FORMAT,
    ZERO,
    TransactionLog,
    TransferBatch,
    WalletDailyTotal,
    business_day,
)
from wallets.models import DECIMAL_PLACES, MAX_DIGITS, Wallet
from wallets.selectors import customer_wallet_get

# The permission that lets a client read every client's transactions and
# holds (an auditor's): the one name for it, in code and, below, in SQL.
VIEW_ALL_TRANSFERS = "transfers.view_all_transfers"
_APP_LABEL, _CODENAME = VIEW_ALL_TRANSFERS.split(".")

# The SQL twin of selectors.shows_request_details: whether the client whose
# id is {viewer} may see what the paying client of the log {row} sent. It
# sent it, or it holds VIEW_ALL_TRANSFERS (an auditor), as
# ModelBackend.has_perm decides: an active user, a superuser, or the
# permission given to the user or to one of its groups.
SHOWS_REQUEST_DETAILS_SQL = f"""({{viewer}} = {{row}}.client_id OR EXISTS (
    SELECT 1 FROM auth_user u
     WHERE u.id = {{viewer}} AND u.is_active AND (u.is_superuser OR EXISTS (
           SELECT 1 FROM auth_permission p JOIN django_content_type ct ON ct.id = p.content_type_id
            WHERE ct.app_label = '{_APP_LABEL}' AND p.codename = '{_CODENAME}'
              AND (p.id IN (SELECT permission_id FROM auth_user_user_permissions WHERE user_id = u.id)
                   OR p.id IN (SELECT gp.permission_id FROM auth_group_permissions gp
                                 JOIN auth_user_groups ug ON ug.group_id = gp.group_id WHERE ug.user_id = u.id))))))"""  # noqa: S608 (a constant)

# Joined into the logs the API shows, which say what kind each wallet is.
WALLETS = ("source_wallet", "destination_wallet")


def with_reversal_links(logs: QuerySet[TransactionLog]) -> QuerySet[TransactionLog]:
    """The logs with `reversed_by_id`: the id of the log that reverses each
    (its `reversed_by`, reversal_of's other side: unique and indexed, one
    index probe per log), or None."""
    compensation = TransactionLog.objects.filter(reversal_of=OuterRef("pk")).values("pk")[:1]
    return logs.annotate(reversed_by_id=Subquery(compensation))


def log_for_client_key(*, client: AbstractBaseUser, idempotency_key: str) -> TransactionLog:
    """A client sees only its own keys: another client's key is simply not
    found (TransactionNotFound), whoever's wallets it touched."""
    if "\x00" in idempotency_key:  # no stored key has one (they are printable); PostgreSQL text cannot
        raise TransactionNotFound()
    logs = TransactionLog.objects.filter(client=client, idempotency_key=idempotency_key).select_related(*WALLETS)
    log = with_reversal_links(logs).first()
    if log is None:
        raise TransactionNotFound()
    return log


def visible_logs(*, viewer: AbstractBaseUser) -> QuerySet[TransactionLog]:
    """The transactions `viewer` may read (tenancy): those that touch a wallet
    it owns, either side (a credit from another client included), or all of
    them for an auditor (transfers.view_all_transfers)."""
    if viewer.has_perm(VIEW_ALL_TRANSFERS):
        return TransactionLog.objects.all()
    return TransactionLog.objects.filter(Q(source_wallet__owner=viewer) | Q(destination_wallet__owner=viewer))


def log_by_reference(*, viewer: AbstractBaseUser, reference: str) -> TransactionLog:
    """A transaction by its reference, if `viewer` may read it; else
    TransactionNotFound, as for an unknown reference."""
    if not REFERENCE_FORMAT.fullmatch(reference):
        raise TransactionNotFound()
    log = with_reversal_links(visible_logs(viewer=viewer).filter(reference=reference).select_related(*WALLETS)).first()
    if log is None:
        raise TransactionNotFound()
    return log


def wallet_transactions(*, wallet_id: uuid.UUID, viewer: AbstractBaseUser) -> QuerySet[TransactionLog]:
    """Every transaction that touches the wallet, either side, if `viewer`
    may read the wallet (wallets.selectors.customer_wallet_get, which raises
    WalletNotFound otherwise)."""
    customer_wallet_get(wallet_id=wallet_id, viewer=viewer)
    either_side = Q(source_wallet_id=wallet_id) | Q(destination_wallet_id=wallet_id)
    return TransactionLog.objects.filter(either_side).select_related(*WALLETS)


def shows_request_details(*, log: TransactionLog, viewer: AbstractBaseUser) -> bool:
    """Whether `viewer` may see what the paying client sent with a
    transaction (its idempotency key and metadata): the client that sent it,
    or an auditor. The owner of a wallet another client paid into sees the
    credit, not the payer's key or notes."""
    return log.client_id == viewer.pk or viewer.has_perm(VIEW_ALL_TRANSFERS)


def day_totals() -> tuple[datetime.date, dict[str, Subquery]]:
    """Today's business day, and the annotations that read a wallet's
    totals of it (today_debits, today_credits; 0 without a row) in the
    wallet's own query. Registered with wallets.selectors for GET
    /api/wallets/{id}."""
    day = business_day(timezone.now())
    row = WalletDailyTotal.objects.filter(wallet=OuterRef("pk"), day=day)
    return day, {
        f"today_{name}": Coalesce(Subquery(row.values(name)[:1]), ZERO, output_field=DecimalField())
        for name in ("debits", "credits")
    }


# --- the admin's wallet page ---------------------------------------------------


# How many transactions the admin's wallet page lists.
RECENT_TRANSACTIONS = 20


def wallet_balance_and_ledger(*, wallet_id: uuid.UUID) -> tuple[Decimal, Decimal]:
    """The stored balance and the ledger's (credits minus debits of the logs
    that moved money), read in one statement: one snapshot, so a transfer
    committing meanwhile cannot make them look different."""
    money = DecimalField(max_digits=MAX_DIGITS, decimal_places=DECIMAL_PLACES)
    moved = TransactionLog.objects.filter(status__in=MONEY_MOVED_STATUSES).order_by()

    def total(side: str) -> Coalesce:
        sums = moved.filter(**{side: OuterRef("pk")}).values(side).annotate(total=Sum("amount")).values("total")
        return Coalesce(Subquery(sums, output_field=money), Value(Decimal("0")), output_field=money)

    balance, credits, debits = (
        Wallet.objects.filter(pk=wallet_id)
        .annotate(credits=total("destination_wallet_id"), debits=total("source_wallet_id"))
        .values_list("balance", "credits", "debits")
        .get()
    )
    return balance, credits - debits


def wallet_recent_transactions(*, wallet_id: uuid.UUID, limit: int = RECENT_TRANSACTIONS) -> list[TransactionLog]:
    """The newest logs on either side of a wallet. Two index-ordered reads
    (source, created_at) and (destination, created_at) of `limit` rows each,
    merged: an OR over both sides would gather every log of a busy wallet
    (a settlement wallet has most of them) just to sort it."""
    newest = TransactionLog.objects.order_by("-created_at")
    outgoing = newest.filter(source_wallet_id=wallet_id)[:limit]
    incoming = newest.filter(destination_wallet_id=wallet_id)[:limit]
    return list(outgoing.union(incoming, all=True).order_by("-created_at")[:limit])


def batch_for_client(*, client: AbstractBaseUser, batch_id: uuid.UUID) -> TransferBatch:
    """A batch, if `client` sent it (or is an auditor); else BatchNotFound,
    as for an unknown id: another client's batches are not disclosed."""
    batches = TransferBatch.objects.all()
    if not client.has_perm(VIEW_ALL_TRANSFERS):
        batches = batches.filter(client=client)
    batch = batches.filter(pk=batch_id).first()
    if batch is None:
        raise BatchNotFound()
    return batch
