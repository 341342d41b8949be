"""API keys: issue, list, revoke (services and selectors for clients.models.ApiKey).

A key is `wk_` + 8 characters of public prefix + `_` + 43 characters of
secret (256 random bits), shown once when issued and stored only as its
SHA-256. A client holds at most MAX_LIVE_KEYS live keys: two, so that it can
switch to a new key before the old one is revoked (docs/api.md, Tenancy).

Every change here, and every change to a client's account or permissions
(clients/authentication.py's signal receivers), tells the web processes to
forget what they cached about clients: revocation bites on the next request.
"""

import secrets
import string
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from clients.authentication import credentials_changed, key_digest, staff_refusal
from clients.models import ApiKey

MAX_LIVE_KEYS = 2
KEY_MARK = "wk_"
PREFIX_ALPHABET = string.ascii_lowercase + string.digits
PREFIX_RANDOM_CHARS = 8


class ApiKeyError(Exception):
    """A key cannot be issued or revoked; the message says why, for a person."""


@dataclass(frozen=True)
class IssuedKey:
    """A new key: the row, and the key itself, which exists nowhere else."""

    api_key: ApiKey
    key: str


def _new_key() -> tuple[str, str]:
    """(key, prefix)."""
    prefix = KEY_MARK + "".join(secrets.choice(PREFIX_ALPHABET) for _ in range(PREFIX_RANDOM_CHARS))
    return f"{prefix}_{secrets.token_urlsafe(32)}", prefix


def api_key_issue(*, client: AbstractBaseUser, name: str = "") -> IssuedKey:
    """Issue a new key for `client` and return it with the key in clear (the
    only time it exists outside the client's hands). Every way a key is
    issued (the admin, `issue_api_key`, `create_api_client`) comes here.

    Raises ApiKeyError if the client already holds MAX_LIVE_KEYS live keys
    (revoke one first), is inactive, or is a person (staff_refusal). The
    client's row is locked while counting, so two issues at once cannot pass
    the limit together.
    """
    with transaction.atomic():
        locked = get_user_model().objects.select_for_update().get(pk=client.pk)
        if not locked.is_active:
            raise ApiKeyError(f"{locked.get_username()} is deactivated: activate it before issuing a key.")
        if refusal := staff_refusal(locked):
            raise ApiKeyError(refusal)
        live = api_key_list(client=locked).filter(revoked_at__isnull=True)
        if len(live) >= MAX_LIVE_KEYS:
            prefixes = ", ".join(k.prefix for k in live)
            raise ApiKeyError(
                f"{locked.get_username()} already holds {len(live)} live keys ({prefixes}): revoke one first."
            )
        # A prefix is 41 random bits: a collision is not expected, but the
        # unique constraint would refuse it, so draw again.
        for _ in range(3):
            key, prefix = _new_key()
            try:
                with transaction.atomic():
                    api_key = ApiKey.objects.create(client=locked, name=name, prefix=prefix, digest=key_digest(key))
            except IntegrityError:
                continue
            return IssuedKey(api_key=api_key, key=key)
    raise ApiKeyError("Could not draw a free key prefix; try again.")


def api_key_revoke(*, api_key: ApiKey) -> ApiKey:
    """Revoke a key for good: the next request with it is refused with 401 on
    every web process (clients/authentication.py). Revoking a revoked key
    changes nothing and raises ApiKeyError. Returns the updated row."""
    now = timezone.now()
    with transaction.atomic():
        updated = ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(revoked_at=now)
        if not updated:
            raise ApiKeyError(f"{api_key.prefix} is already revoked.")
        # After the commit, never before: a web process that re-read the
        # clients between the two would cache the key as live under the new
        # version (clients/authentication.py).
        transaction.on_commit(credentials_changed)
    api_key.revoked_at = now
    return api_key


def api_key_get(*, prefix: str) -> ApiKey:
    """The key with this prefix; ApiKeyError if there is none."""
    try:
        return ApiKey.objects.select_related("client").get(prefix=prefix)
    except ApiKey.DoesNotExist:
        raise ApiKeyError(f"No API key with prefix {prefix!r}.") from None


def api_key_list(*, client: AbstractBaseUser | None = None) -> QuerySet[ApiKey]:
    """Keys, newest first, of one client or of all; prefixes and dates only
    (the model holds nothing else that could be shown)."""
    keys = ApiKey.objects.select_related("client").order_by("-created_at", "-pk")
    return keys if client is None else keys.filter(client=client)
