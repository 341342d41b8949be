"""Wallets: the account noun. Knows nothing of transfers.

A wallet's balance only ever changes inside transfers/services.py; here it is
a read-only number as far as any other code is concerned.
"""

import uuid
from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

# Money: amounts are exact decimals end to end, NUMERIC(20,2) in PostgreSQL,
# `Decimal` in Python, strings like "1000.50" in JSON responses. Every amount
# and balance column has this shape.
MAX_DIGITS = 20
DECIMAL_PLACES = 2
MIN_AMOUNT = Decimal("0.01")
MAX_AMOUNT = settings.LEDGER_MAX_AMOUNT  # the largest NUMERIC(20,2)
CENT = Decimal("0.01")


class WalletKind(models.TextChoices):
    CUSTOMER = "CUSTOMER", "Customer"
    # One per currency: money enters (deposit) and leaves (withdrawal) through
    # it, so its balance is minus the money held in customer wallets.
    SETTLEMENT = "SETTLEMENT", "Settlement"
    # One per currency: the other side of a manual adjustment (a correction
    # approved by two people, docs/design.md "Corrections"). A credit to a
    # customer wallet is a debit here, so it may go below zero, like the
    # settlement wallet; its balance is what adjustments have not yet been
    # explained by (cleared by an opposite adjustment).
    SUSPENSE = "SUSPENSE", "Suspense"


# The service's own wallets, one of each per currency: no owner, no user,
# and the only wallets that may go below zero.
SYSTEM_KINDS = (WalletKind.SETTLEMENT, WalletKind.SUSPENSE)


class FreezeReason(models.TextChoices):
    """Why a wallet was frozen. Freezing is one person's protective action
    whatever the reason; unfreezing a wallet frozen for FRAUD needs a second
    person (a correction, docs/design.md "Corrections")."""

    SUPPORT = "SUPPORT", "Support decision"
    FRAUD = "FRAUD", "Suspected fraud"


class Wallet(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # Tenancy (docs/api.md): the API client that opened a customer wallet; only
    # it may read it or move money out of it. Settlement wallets have none.
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="wallets",
        help_text="The API client that opened the wallet (none for a settlement wallet).",
    )
    user_id = models.UUIDField(null=True, blank=True, help_text="The end user in the client's own user system.")
    kind = models.CharField(max_length=16, choices=WalletKind.choices, default=WalletKind.CUSTOMER)
    currency = models.CharField(max_length=3, default=settings.DEFAULT_CURRENCY)
    balance = models.DecimalField(max_digits=MAX_DIGITS, decimal_places=DECIMAL_PLACES, default=0, editable=False)
    # What the wallet's OPEN holds reserve (docs/api.md, "Holds"): available =
    # balance - held. Changed only by the engine's settle statement, with the
    # holds (transfers/engine.py). db_default: a process of the previous
    # release inserting a wallet still writes a valid row.
    held = models.DecimalField(
        max_digits=MAX_DIGITS, decimal_places=DECIMAL_PLACES, default=0, db_default=0, editable=False
    )
    is_active = models.BooleanField(default=True)
    # Why it is frozen; "" while active (and for a wallet frozen before
    # reasons were kept: read as SUPPORT). No CHECK ties it to is_active, so
    # that a process of the previous release, which freezes without a
    # reason, keeps working during a deploy. db_default: such a process
    # inserting a wallet still writes a valid row, and adding a column with a
    # constant default rewrites no row.
    frozen_reason = models.CharField(
        max_length=16, choices=FreezeReason.choices, blank=True, default="", db_default="", editable=False
    )
    # What the person who froze it wrote (the admin asks for it); "" while
    # active. Internal, like frozen_reason: support's answer when the client
    # asks why (docs/operations.md, "The admin, for support staff").
    # db_default for the same reasons as frozen_reason's.
    frozen_note = models.TextField(blank=True, default="", db_default="", editable=False)
    # The wallet's KYC tier (docs/limits.md): the caps the engine checks under
    # the wallet's row lock. None: unrestricted (every wallet opened before
    # tiers existed, and a new one whose client has no default tier), so
    # nothing that worked before fails; the admin lists them for review.
    # No index: a tier is only ever looked up from a wallet, and a tier in
    # use is never deleted (PROTECT).
    tier = models.ForeignKey(
        "wallets.TierProfile",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        db_index=False,
        related_name="wallets",
        editable=False,
        help_text="The wallet's KYC tier; empty: unrestricted.",
    )
    # Restrictions (docs/limits.md), distinct from freezing: post-no-debit
    # lets money in but not out, post-no-credit the other way round. Set by
    # the owning client (API) or Support (admin) with a reason.
    post_no_debit = models.BooleanField(default=False, db_default=False, editable=False)
    post_no_credit = models.BooleanField(default=False, db_default=False, editable=False)
    restriction_reason = models.TextField(blank=True, default="", db_default="", editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "wallets"
        ordering = ["created_at"]
        permissions = [
            ("freeze_wallet", "Can freeze and unfreeze wallets"),
            ("view_all_wallets", "Can read every API client's wallets (auditors)"),
            ("give_wallet", "Can give an unclaimed wallet to its API client"),
            ("set_wallet_tier", "Can set a wallet's KYC tier"),
            ("restrict_wallet", "Can set a wallet's post-no-debit and post-no-credit restrictions"),
        ]
        indexes = [
            models.Index(fields=["user_id"], name="idx_wallets_user_id"),
            models.Index(fields=["is_active"], name="idx_wallets_is_active"),
            models.Index(fields=["created_at", "id"], name="idx_wallets_created_at"),
        ]
        constraints = [
            # Two clients may use the same userId for different people.
            models.UniqueConstraint(
                fields=["owner", "user_id", "currency"],
                name="wallets_wallet_one_per_owner_user_and_currency",
                violation_error_code="wallet_exists",
            ),
            models.UniqueConstraint(
                fields=["currency"],
                condition=Q(kind=WalletKind.SETTLEMENT),
                name="wallets_wallet_one_settlement_per_currency",
            ),
            models.UniqueConstraint(
                fields=["currency"],
                condition=Q(kind=WalletKind.SUSPENSE),
                name="wallets_wallet_one_suspense_per_currency",
            ),
            models.CheckConstraint(
                condition=Q(kind__in=SYSTEM_KINDS) | Q(balance__gte=0),
                name="wallets_wallet_customer_balance_non_negative",
            ),
            # A hold reserves money the wallet has: never more than its balance
            # (a system wallet, which may go below zero, holds nothing).
            models.CheckConstraint(
                condition=Q(held__gte=0) & (Q(held__lte=models.F("balance")) | Q(held=0)),
                name="wallets_wallet_held_within_balance",
            ),
            models.CheckConstraint(
                condition=(Q(kind=WalletKind.CUSTOMER) & Q(user_id__isnull=False))
                | (Q(kind__in=SYSTEM_KINDS) & Q(user_id__isnull=True)),
                name="wallets_wallet_owner_matches_kind",
            ),
            # Every customer wallet has an owning client; no system wallet has one.
            models.CheckConstraint(
                condition=(Q(kind=WalletKind.CUSTOMER) & Q(owner__isnull=False))
                | (Q(kind__in=SYSTEM_KINDS) & Q(owner__isnull=True)),
                name="wallets_wallet_client_matches_kind",
            ),
            models.CheckConstraint(
                condition=Q(currency__regex=r"^[A-Z]{3}$"),
                name="wallets_wallet_currency_iso_4217",
            ),
        ]

    def __str__(self) -> str:
        owner = self.user_id if self.kind == WalletKind.CUSTOMER else self.kind.lower()
        return f"{self.currency} wallet {self.id} ({owner})"

    @property
    def available(self):
        """What the wallet may spend: its balance less what its OPEN holds reserve."""
        return self.balance - self.held

    @property
    def is_settlement(self) -> bool:
        return self.kind == WalletKind.SETTLEMENT

    @property
    def is_system(self) -> bool:
        """A settlement or suspense wallet: the service's own."""
        return self.kind in SYSTEM_KINDS


# --- tier limits (docs/limits.md) ---------------------------------------------------

# The caps of a tier, in the order the API and the admin show them; None: no cap.
TIER_CAPS = ("max_single_credit", "max_single_debit", "max_daily_credits", "max_daily_debits", "max_balance")
# The name of no tier: what a wallet without one (Wallet.tier None) is.
UNRESTRICTED = "unrestricted"


def _cap(help_text: str) -> models.DecimalField:
    return models.DecimalField(
        max_digits=MAX_DIGITS, decimal_places=DECIMAL_PLACES, null=True, blank=True, help_text=help_text
    )


class TierProfile(models.Model):
    """A KYC tier of one currency: the caps on what a wallet of the tier may
    receive and send in one movement and in one business day, and hold
    (docs/limits.md). Seeded with the Central Bank of Nigeria's levels;
    Finance edits the caps in the admin, every change kept in
    TierProfileChange. A cap of None is no cap."""

    name = models.CharField(max_length=64, help_text="How clients name it: level_1, unrestricted, ...")
    currency = models.CharField(max_length=3)
    description = models.TextField(blank=True, default="")
    max_single_credit = _cap("Most one movement may bring in; empty: no cap.")
    max_single_debit = _cap("Most one movement may take out; empty: no cap.")
    max_daily_credits = _cap("Most that may come in in one business day; empty: no cap.")
    max_daily_debits = _cap("Most that may go out in one business day; empty: no cap.")
    max_balance = _cap("Most the wallet may hold; empty: no cap.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "tier_profiles"
        ordering = ["currency", "name"]
        constraints = [
            models.UniqueConstraint(fields=["currency", "name"], name="wallets_tierprofile_unique_currency_name"),
            *(
                models.CheckConstraint(
                    condition=Q(**{f"{cap}__isnull": True}) | Q(**{f"{cap}__gte": 0}),
                    name=f"wallets_tierprofile_{cap}_not_negative",
                )
                for cap in TIER_CAPS
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.currency})"

    def caps(self) -> dict[str, object]:
        return {cap: getattr(self, cap) for cap in TIER_CAPS}


class TierProfileChange(models.Model):
    """One change of one cap of a tier profile: who, when, from what to what.
    Append-only: a trigger refuses UPDATE and DELETE (migration 0013)."""

    profile = models.ForeignKey(TierProfile, on_delete=models.PROTECT, related_name="changes")
    cap = models.CharField(max_length=32)
    old_value = models.DecimalField(max_digits=MAX_DIGITS, decimal_places=DECIMAL_PLACES, null=True)
    new_value = models.DecimalField(max_digits=MAX_DIGITS, decimal_places=DECIMAL_PLACES, null=True)
    changed_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    changed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "tier_profile_changes"
        ordering = ["-changed_at", "-id"]

    def __str__(self) -> str:
        return f"{self.profile}: {self.cap} {self.old_value} -> {self.new_value}"


class WalletLimitChange(models.Model):
    """One change of a wallet's tier or restrictions, by its client (API) or
    a staff member (admin), with the reason given: the wallet's limit
    history. Append-only: a trigger refuses UPDATE and DELETE."""

    wallet = models.ForeignKey(Wallet, on_delete=models.PROTECT, related_name="limit_changes")
    what = models.CharField(max_length=32, help_text="tier, post_no_debit or post_no_credit")
    old_value = models.CharField(max_length=64)
    new_value = models.CharField(max_length=64)
    reason = models.TextField(blank=True, default="")
    changed_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    changed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "wallet_limit_changes"
        ordering = ["-changed_at", "-id"]

    def __str__(self) -> str:
        return f"{self.wallet_id}: {self.what} {self.old_value} -> {self.new_value}"


class ClientTierDefault(models.Model):
    """The tier a client's new wallets of one currency take (none: unrestricted)."""

    client = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="tier_defaults")
    currency = models.CharField(max_length=3, editable=False)
    tier = models.ForeignKey(TierProfile, on_delete=models.PROTECT, related_name="+")

    class Meta:
        db_table = "client_tier_defaults"
        constraints = [
            models.UniqueConstraint(fields=["client", "currency"], name="wallets_clienttierdefault_one_per_currency")
        ]

    def __str__(self) -> str:
        return f"{self.client}: {self.tier}"

    def save(self, *args, **kwargs):
        # The currency is the tier's: one default per client and currency.
        self.currency = self.tier.currency
        super().save(*args, **kwargs)
