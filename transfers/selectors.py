"""Reads of the ledger. Writes live in services.py."""

import uuid
from decimal import Decimal

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import DecimalField, OuterRef, Q, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce

from transfers.exceptions import TransactionNotFound
from transfers.models import MONEY_MOVED_STATUSES, REFERENCE_FORMAT, TransactionLog
from wallets.models import Wallet
from wallets.money import DECIMAL_PLACES, MAX_DIGITS


def log_for_client_key(*, client: AbstractBaseUser, idempotency_key: str) -> TransactionLog:
    """A client sees only its own keys: another client's key is simply not found."""
    if "\x00" in idempotency_key:  # no stored key has one (they are printable); PostgreSQL text cannot
        raise TransactionNotFound()
    log = TransactionLog.objects.filter(client=client, idempotency_key=idempotency_key).first()
    if log is None:
        raise TransactionNotFound()
    return log


def log_by_reference(*, viewer: AbstractBaseUser, reference: str) -> TransactionLog:
    if not REFERENCE_FORMAT.fullmatch(reference):
        raise TransactionNotFound()
    logs = TransactionLog.objects.filter(reference=reference)
    if not viewer.has_perm("transfers.view_all_transfers"):
        logs = logs.filter(client=viewer)
    log = logs.first()
    if log is None:
        raise TransactionNotFound()
    return log


def wallet_transactions(*, wallet_id: uuid.UUID) -> QuerySet[TransactionLog]:
    """Every log that touches the wallet, either side."""
    return TransactionLog.objects.filter(Q(source_wallet_id=wallet_id) | Q(destination_wallet_id=wallet_id))


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
