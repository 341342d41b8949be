"""Reads of the ledger. Writes live in services.py."""

import uuid

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Q, QuerySet

from transfers.exceptions import TransactionNotFound
from transfers.models import REFERENCE_FORMAT, TransactionLog


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
