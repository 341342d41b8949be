"""Reads of wallets. Writes live in services.py.

Tenancy (docs/api.md) is enforced here, where wallets are read: a client sees
the customer wallets it owns, an auditor (wallets.view_all_wallets) every
customer wallet, and nobody a settlement wallet. Another client's wallet is
not found, exactly as an unknown one: existence is not disclosed.
"""

import uuid

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet

from wallets.exceptions import WalletNotFound
from wallets.models import Wallet, WalletKind

READ_ALL_WALLETS = "wallets.view_all_wallets"


def visible_wallets(*, viewer: AbstractBaseUser) -> QuerySet[Wallet]:
    """The customer wallets `viewer` may read: its own, or all for an auditor."""
    wallets = Wallet.objects.filter(kind=WalletKind.CUSTOMER)
    return wallets if viewer.has_perm(READ_ALL_WALLETS) else wallets.filter(owner=viewer)


def owned_wallets(*, owner: AbstractBaseUser) -> QuerySet[Wallet]:
    """The customer wallets `owner` opened: the only ones it may move money
    out of or deposit into (an auditor reads all of them and moves none)."""
    return Wallet.objects.filter(kind=WalletKind.CUSTOMER, owner=owner)


def customer_wallet_get(*, wallet_id: uuid.UUID, viewer: AbstractBaseUser) -> Wallet:
    """A customer wallet `viewer` may read. Raises WalletNotFound for an
    unknown wallet, a settlement wallet and another client's alike."""
    try:
        return visible_wallets(viewer=viewer).get(pk=wallet_id)
    except Wallet.DoesNotExist:
        raise WalletNotFound() from None


def wallets_for_user(*, user_id: uuid.UUID, viewer: AbstractBaseUser) -> QuerySet[Wallet]:
    """The wallets of one end user that `viewer` may read, by currency: with
    the same userId in two clients' systems, each sees its own."""
    return visible_wallets(viewer=viewer).filter(user_id=user_id).order_by("currency")
