"""Wallets: the account noun. Knows nothing of transfers.

A wallet's balance only ever changes inside transfers/services.py; here it is
a read-only number as far as any other code is concerned.
"""

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from wallets.money import DECIMAL_PLACES, MAX_DIGITS


class WalletKind(models.TextChoices):
    CUSTOMER = "CUSTOMER", "Customer"
    # One per currency: money enters (deposit) and leaves (withdrawal) through
    # it, so its balance is minus the money held in customer wallets.
    SETTLEMENT = "SETTLEMENT", "Settlement"


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
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "wallets"
        ordering = ["created_at"]
        permissions = [
            ("freeze_wallet", "Can freeze and unfreeze wallets"),
            ("view_all_wallets", "Can read every API client's wallets (auditors)"),
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
            models.CheckConstraint(
                condition=Q(kind=WalletKind.SETTLEMENT) | Q(balance__gte=0),
                name="wallets_wallet_customer_balance_non_negative",
            ),
            models.CheckConstraint(
                condition=(Q(kind=WalletKind.CUSTOMER) & Q(user_id__isnull=False))
                | (Q(kind=WalletKind.SETTLEMENT) & Q(user_id__isnull=True)),
                name="wallets_wallet_owner_matches_kind",
            ),
            # Every customer wallet has an owning client; no settlement wallet has one.
            models.CheckConstraint(
                condition=(Q(kind=WalletKind.CUSTOMER) & Q(owner__isnull=False))
                | (Q(kind=WalletKind.SETTLEMENT) & Q(owner__isnull=True)),
                name="wallets_wallet_client_matches_kind",
            ),
            models.CheckConstraint(
                condition=Q(currency__regex=r"^[A-Z]{3}$"),
                name="wallets_wallet_currency_iso_4217",
            ),
        ]

    def __str__(self) -> str:
        owner = self.user_id if self.kind == WalletKind.CUSTOMER else "settlement"
        return f"{self.currency} wallet {self.id} ({owner})"

    @property
    def is_settlement(self) -> bool:
        return self.kind == WalletKind.SETTLEMENT


class ApiKey(models.Model):
    """A secret with which an API client (a Django user) calls the API:
    `Authorization: Token <key>`.

    Only the SHA-256 of the key is stored: a key is 256 random bits, so a fast
    hash is as safe as a password hasher and costs a microsecond per request
    instead of a quarter second. The prefix is its first characters, not
    secret (too short to guess the rest from): logs, `list_api_keys` and the
    admin name a key by it. A revoked key keeps its row, so the admin shows
    when it ended and a leaked copy is recognised as revoked.

    It lives in `wallets`, the lowest app, because the client it belongs to
    is the owner of wallets (docs/api.md, Tenancy), and every app above may use it.
    """

    client = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(
        max_length=100, blank=True, help_text="What the key is for, e.g. 'mobile backend, 2026-11'."
    )
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    digest = models.CharField(max_length=64, unique=True, editable=False, help_text="SHA-256 of the key, hex.")
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    # Written at most once an hour per key (wallets/authentication.py): cheap.
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        db_table = "api_keys"
        verbose_name = "API key"
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["client", "revoked_at"], name="idx_api_keys_client")]
        constraints = [
            models.CheckConstraint(
                condition=Q(digest__regex=r"^[0-9a-f]{64}$"), name="wallets_apikey_digest_is_sha256"
            ),
        ]

    def __str__(self) -> str:
        return self.prefix

    @property
    def is_live(self) -> bool:
        return self.revoked_at is None
