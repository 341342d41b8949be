"""Reads of wallets. Writes live in services.py.

Tenancy (docs/api.md) is enforced here, where wallets are read: a client sees
the customer wallets it owns, an auditor (wallets.view_all_wallets) every
customer wallet, and nobody a settlement wallet. Another client's wallet is
not found, exactly as an unknown one: existence is not disclosed.
"""

import datetime
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet

from wallets.exceptions import WalletNotFound
from wallets.models import TierProfile, Wallet, WalletKind

READ_ALL_WALLETS = "wallets.view_all_wallets"


def visible_wallets(*, viewer: AbstractBaseUser) -> QuerySet[Wallet]:
    """The customer wallets `viewer` may read: its own, or all for an auditor."""
    wallets = Wallet.objects.filter(kind=WalletKind.CUSTOMER).select_related("tier")
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


def owned_wallet_get(*, wallet_id: uuid.UUID, owner: AbstractBaseUser) -> Wallet:
    """A customer wallet `owner` opened, to change (its tier, its
    restrictions). Raises WalletNotFound for any other, an auditor's read
    included: reading every wallet writes none."""
    try:
        return owned_wallets(owner=owner).select_related("tier").get(pk=wallet_id)
    except Wallet.DoesNotExist:
        raise WalletNotFound() from None


def wallets_for_user(*, user_id: uuid.UUID, viewer: AbstractBaseUser) -> QuerySet[Wallet]:
    """The wallets of one end user that `viewer` may read, by currency: with
    the same userId in two clients' systems, each sees its own."""
    return visible_wallets(viewer=viewer).filter(user_id=user_id).order_by("currency")


def tiers(*, currency: str | None = None) -> QuerySet[TierProfile]:
    """The tier profiles a client may give its wallets (GET /api/tiers), of
    one currency or all, by currency and name."""
    profiles = TierProfile.objects.order_by("currency", "name")
    return profiles if currency is None else profiles.filter(currency=currency)


# The day's totals are counted by the money floor (transfers.models.WalletDailyTotal,
# in the statement that moves the money): transfers registers its reader here
# from its AppConfig.ready(), so that wallets imports nothing above it.
# The reader: wallet -> (business day, debits, credits).
DayTotalsReader = Callable[[Wallet], tuple[datetime.date, Decimal, Decimal]]
_day_totals_reader: list[DayTotalsReader] = []


def register_day_totals_reader(reader: DayTotalsReader) -> None:
    _day_totals_reader[:] = [reader]


@dataclass(frozen=True)
class WalletToday:
    """What a wallet sent and received today (the business day), and the
    room left under its tier's daily caps and balance cap (None: no cap)."""

    day: datetime.date
    debits: Decimal
    credits: Decimal
    debits_left: Decimal | None
    credits_left: Decimal | None
    balance_room: Decimal | None


def wallet_today(*, wallet: Wallet) -> WalletToday:
    """`wallet`'s totals of today and its room (docs/limits.md), as committed
    (a read: a movement settling now may take the room a moment later)."""
    day, debits, credits = _day_totals_reader[0](wallet)
    tier = wallet.tier

    def left(cap: Decimal | None, used: Decimal) -> Decimal | None:
        return None if cap is None else max(cap - used, Decimal(0))

    return WalletToday(
        day=day,
        debits=debits,
        credits=credits,
        debits_left=left(tier and tier.max_daily_debits, debits),
        credits_left=left(tier and tier.max_daily_credits, credits),
        balance_room=left(tier and tier.max_balance, wallet.balance),
    )
