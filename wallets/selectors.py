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
from django.db.models import DateField, Expression, QuerySet, Value

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


def customer_wallet_get(*, wallet_id: uuid.UUID, viewer: AbstractBaseUser, today: bool = False) -> Wallet:
    """A customer wallet `viewer` may read; with `today`, with what it sent
    and received today (with_today). Raises WalletNotFound for an unknown
    wallet, a settlement wallet and another client's alike."""
    wallets = visible_wallets(viewer=viewer)
    try:
        return (with_today(wallets) if today else wallets).get(pk=wallet_id)
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
# in the statement that moves the money): transfers registers here, from its
# AppConfig.ready(), what reads them, so that wallets imports nothing above it:
# a function giving the business day of now and the annotations (today_debits,
# today_credits) that read a wallet's totals of that day in the wallet's own query.
DayTotals = Callable[[], tuple[datetime.date, dict[str, Expression]]]
_day_totals: list[DayTotals] = []


def register_day_totals(day_totals: DayTotals) -> None:
    _day_totals[:] = [day_totals]


def with_today(wallets: QuerySet[Wallet]) -> QuerySet[Wallet]:
    """`wallets`, each with what it sent and received today (business_day,
    today_debits, today_credits), in the same query."""
    day, annotations = _day_totals[0]()
    return wallets.annotate(business_day=Value(day, output_field=DateField()), **annotations)


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
    (a read: a movement settling now may take the room a moment later); from
    the annotations with_today added, else read now."""
    if not hasattr(wallet, "today_debits"):
        wallet = with_today(Wallet.objects.select_related("tier")).get(pk=wallet.pk)
    tier = wallet.tier
    debits, credits = wallet.today_debits, wallet.today_credits

    def left(cap: Decimal | None, used: Decimal) -> Decimal | None:
        return None if cap is None else max(cap - used, Decimal(0))

    return WalletToday(
        day=wallet.business_day,
        debits=debits,
        credits=credits,
        debits_left=left(tier and tier.max_daily_debits, debits),
        credits_left=left(tier and tier.max_daily_credits, credits),
        balance_room=left(tier and tier.max_balance, wallet.balance),
    )
