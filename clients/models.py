"""API clients' keys. An API client is a Django user (docs/api.md, Tenancy);
what it may do is its groups' permissions, and it calls the API with one of
its keys. Authentication (clients/authentication.py) reads these rows."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class ApiKey(models.Model):
    """A secret with which an API client (a Django user) calls the API:
    `Authorization: Token <key>`.

    Only the SHA-256 of the key is stored: a key is 256 random bits, so a fast
    hash is as safe as a password hasher and costs a microsecond per request
    instead of a quarter second. The prefix is its first characters, not
    secret (too short to guess the rest from): logs, `list_api_keys` and the
    admin name a key by it. A revoked key keeps its row, so the admin shows
    when it ended and a leaked copy is recognised as revoked.

    Its table and constraint names are those it had in `wallets`, where it
    was born: the move here changed Django's state only
    (migrations/0001_initial.py), so no row or constraint was touched.
    """

    client = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(
        max_length=100, blank=True, help_text="What the key is for, e.g. 'mobile backend, 2026-11'."
    )
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    digest = models.CharField(max_length=64, unique=True, editable=False, help_text="SHA-256 of the key, hex.")
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    # Written at most once an hour per key (clients/authentication.py): cheap.
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
