"""Reads of wallets. Writes live in services.py."""

import uuid

from django.db.models import QuerySet

from wallets.exceptions import WalletNotFound
from wallets.models import Wallet, WalletKind


def wallet_get(*, wallet_id: uuid.UUID) -> Wallet:
    try:
        return Wallet.objects.get(pk=wallet_id)
    except Wallet.DoesNotExist:
        raise WalletNotFound() from None


def customer_wallet_get(*, wallet_id: uuid.UUID) -> Wallet:
    """A wallet a client may address; settlement wallets are internal."""
    try:
        return Wallet.objects.get(pk=wallet_id, kind=WalletKind.CUSTOMER)
    except Wallet.DoesNotExist:
        raise WalletNotFound() from None


def wallets_for_user(*, user_id: uuid.UUID) -> QuerySet[Wallet]:
    return Wallet.objects.filter(user_id=user_id, kind=WalletKind.CUSTOMER).order_by("currency")
