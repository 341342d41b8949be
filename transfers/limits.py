"""Tier limits and restrictions: the rules of docs/limits.md, checked by the
engine (transfers/engine.py, check_rules) under the row locks of the
movement, against running totals the settle statement keeps.

Order, the one a client is told of them in (docs/limits.md, "The order of
the checks, and what a refusal says"):
restrictions (post-no-debit on the payer, post-no-credit on the payee,
422 wallet_restricted); the client's per-movement maximum
(CLIENT_MAX_REQUEST_AMOUNT); the client's daily debits
(CLIENT_DAILY_DEBIT_LIMIT); the payer's tier (single debit, daily debits);
the payee's tier (single credit, daily credits, balance). A cap broken is
422 limit_exceeded naming the cap and the room left, except on a payee
another client owns: its tier is that client's business, so the refusal
names nothing.

Outside tiers: settlement and suspense wallets, and corrections (a
reversal's compensation, a manual adjustment): they are neither checked nor
counted.

The daily caps count in the business day (docs/limits.md, "The business
day"): the day in settings.BUSINESS_TIME_ZONE (Africa/Lagos by default,
checked at start-up; docs/operations.md), the one zone the service counts
days in: the daily totals, a statement's days (transfers.statements) and the
days the API and the admin ask for (business_day, business_today,
business_zone below).
"""

import datetime
import zoneinfo
from dataclasses import dataclass
from decimal import Decimal
from functools import cache

from django.conf import settings
from django.db.models import DecimalField, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from transfers.exceptions import LimitExceeded, WalletRestricted
from transfers.models import ClientDailyDebit, TransactionLog, WalletDailyTotal
from wallets.models import SYSTEM_KINDS, UNRESTRICTED, Wallet, WalletKind

ZERO = Decimal(0)


# --- the business day -------------------------------------------------------------


@cache
def _zone(name: str) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(name)


def business_zone() -> zoneinfo.ZoneInfo:
    """The zone of settings.BUSINESS_TIME_ZONE; its key is the IANA name."""
    return _zone(settings.BUSINESS_TIME_ZONE)


def business_day(moment: datetime.datetime) -> datetime.date:
    """The business day that the aware `moment` falls in."""
    return moment.astimezone(business_zone()).date()


def business_today() -> datetime.date:
    """The business day it is now."""
    return timezone.localdate(timezone=business_zone())


# --- tiers --------------------------------------------------------------------------


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
class WalletDay:
    """What the limits need of one locked customer wallet: its tier, and
    what it sent and received today so far (running: the engine adds each
    movement it completes, so a batch checks each payout on the totals the
    payouts before it leave)."""

    tier: Tier
    debits: Decimal = ZERO
    credits: Decimal = ZERO


def _refuse(limit: str, cap: Decimal, room: Decimal, currency: str, whose: str) -> LimitExceeded:
    room = max(room, ZERO)
    return LimitExceeded(
        f"Limit exceeded: {limit} of {whose} is {cap:.2f} {currency}; room left: {room:.2f}.", limit=limit
    )


def _private_payee(log: TransactionLog, destination: Wallet) -> bool:
    """Whether the payee is another client's wallet: told nothing of its state."""
    return destination.owner_id != log.client_id


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
    customer wallet carries its WalletDay as `.day`), in the order above;
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
        day, tier = source.day, source.day.tier
        whose = f"the source wallet's tier {tier.name}"
        if tier.max_single_debit is not None and amount > tier.max_single_debit:
            raise _refuse("maxSingleDebit", tier.max_single_debit, tier.max_single_debit, currency, whose)
        if tier.max_daily_debits is not None and day.debits + amount > tier.max_daily_debits:
            raise _refuse("maxDailyDebits", tier.max_daily_debits, tier.max_daily_debits - day.debits, currency, whose)
    if payee:
        day, tier = destination.day, destination.day.tier
        whose = f"the destination wallet's tier {tier.name}"
        refusal = None
        if tier.max_single_credit is not None and amount > tier.max_single_credit:
            refusal = _refuse("maxSingleCredit", tier.max_single_credit, tier.max_single_credit, currency, whose)
        elif tier.max_daily_credits is not None and day.credits + amount > tier.max_daily_credits:
            room = tier.max_daily_credits - day.credits
            refusal = _refuse("maxDailyCredits", tier.max_daily_credits, room, currency, whose)
        elif tier.max_balance is not None and destination.balance + amount > tier.max_balance:
            room = tier.max_balance - destination.balance
            refusal = _refuse("maxBalance", tier.max_balance, room, currency, whose)
        if refusal is not None:
            if _private_payee(log, destination):
                raise LimitExceeded("The destination wallet cannot receive this amount.", limit="payee")
            raise refusal


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
