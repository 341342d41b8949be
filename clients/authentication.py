"""`Authorization: Token <key>`: the API client of a key, with its permissions,
in one query; cached per process, and forgotten by every process the moment
any credential changes.

The query returns the client and the union of its own and its groups'
permissions (what ModelBackend would find with two more queries), for a live
key found by its SHA-256 (clients/api_keys.py).

The cache: each web process keeps what it read for a key, at most
API_AUTH_CACHE_SECONDS, under the *credentials version*, a random value in
Redis that changes whenever a key is revoked, a client is deactivated or
deleted, or a permission or group membership changes (the receivers at the
end of this module, connected in ClientsConfig.ready). A cached entry counts
only if it was read under the version Redis holds now, so a change bites on
the next request on every process and host. Order matters, both sides:

- a request reads the version *before* it reads the database, and caches
  the row under the version it read;
- a change writes the new version *after* its transaction commits.

So a row cached under the new version was read after the change committed.

Reading the version costs no round trip of its own: a request found in the
cache goes on *unconfirmed* as far as its rate limit, whose Lua script reads
the version in the same round trip (wallet_project/throttling.py,
ApiKeyAuthentication.confirm), before the view has written or answered
anything; a different version there, and the script charges nothing and
the client is read again (401 for a revoked key, uncharged; 403 for a lost
permission). A separate GET cost about 150K
instructions a request, 5 % of a replay (bench/instructions.py).
With Redis unreachable there is no version to trust: every request reads the
database. A version that could not be written (Redis down during the change)
is what API_AUTH_CACHE_SECONDS still bounds; so is a change made by raw SQL,
which no receiver sees.
"""

import functools
import hashlib
import logging
import re
import secrets
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from time import monotonic
from types import MethodType

from django.conf import settings
from django.contrib.auth import get_backends, get_user_model
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import AbstractBaseUser, Group, Permission
from django.core.cache import cache
from django.core.signals import setting_changed
from django.db import connection, transaction
from django.db.models import Q
from django.db.models.signals import m2m_changed, post_delete, post_save
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django_redis import get_redis_connection
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication, get_authorization_header

from clients.models import ApiKey
from wallet_project.db.base import from_row, in_model_order
from wallet_project.redis_health import REDIS_ERRORS
from wallet_project.throttling import UNREAD, charge_failed_authentication

logger = logging.getLogger("wallet.auth")

VERSION_KEY = "auth:credentials-version"
# How stale a key's last_used_at may be: one UPDATE per key an hour at most.
LAST_USED_RESOLUTION = timedelta(hours=1)

User = get_user_model()
# An HTTP auth-scheme token short enough to repeat back in a message.
SCHEME_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]{1,32}")
USER_FIELDS = in_model_order(User, ["username", "is_active", "is_staff", "is_superuser"])
IS_ACTIVE = USER_FIELDS.index("is_active")
# A change to these (or to groups and permissions) changes what a key may do.
AUTH_USER_FIELDS = frozenset({"is_active", "is_staff", "is_superuser", "username", "password"})

CLIENT_SQL = """
SELECT {user_columns}, k.id, k.prefix, k.last_used_at,
       ARRAY(
           SELECT ct.app_label || '.' || p.codename
             FROM auth_permission p
             JOIN django_content_type ct ON ct.id = p.content_type_id
            WHERE p.id IN (
                SELECT up.permission_id FROM auth_user_user_permissions up WHERE up.user_id = u.id
                UNION
                SELECT gp.permission_id
                  FROM auth_group_permissions gp
                  JOIN auth_user_groups ug ON ug.group_id = gp.group_id
                 WHERE ug.user_id = u.id
            )
       )
  FROM api_keys k
  JOIN auth_user u ON u.id = k.client_id
 WHERE k.digest = %s AND k.revoked_at IS NULL
""".format(user_columns=", ".join(f"u.{name}" for name in USER_FIELDS))  # noqa: S608 (model field names)


def key_digest(key: str) -> str:
    """SHA-256 of a key, hex: what the database stores and is searched by.

    `surrogatepass`: a header can hold any character, and an unknown key must
    be refused (401), never raise.
    """
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True, slots=True)
class KeyIdentity:
    """`request.auth` of an API request: which key, by its non-secret prefix
    (the request log line shows it)."""

    id: int
    prefix: str


@dataclass(frozen=True, slots=True)
class _Client:
    user_row: tuple
    key: KeyIdentity
    last_used_at: datetime | None
    permissions: frozenset[str]

    @property
    def is_active(self) -> bool:
        return self.user_row[IS_ACTIVE]


class _ClientCache:
    """digest -> (credentials version, expiry, client), per process, bounded."""

    MAX_ENTRIES = 10_000

    def __init__(self):
        self._entries: dict[str, tuple[bytes, float, _Client]] = {}
        self._lock = threading.Lock()

    def get(self, digest: str, version: bytes) -> _Client | None:
        entry = self.entry(digest)
        return entry[1] if entry is not None and entry[0] == version else None

    def entry(self, digest: str) -> tuple[bytes, _Client] | None:
        """(the version it was read under, the client), unless expired."""
        entry = self._entries.get(digest)
        if entry is None or entry[1] < monotonic():
            return None
        return entry[0], entry[2]

    def drop(self, digest: str) -> None:
        with self._lock:
            self._entries.pop(digest, None)

    def put(self, digest: str, version: bytes, client: _Client, ttl: float) -> None:
        with self._lock:
            if len(self._entries) >= self.MAX_ENTRIES:
                self._entries.clear()  # crude, and rare: a few thousand keys at most
            self._entries[digest] = (version, monotonic() + ttl, client)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


client_cache = _ClientCache()


def _version_key() -> str:
    return cache.make_key(VERSION_KEY)


def credentials_version() -> bytes | None:
    """The current credentials version (one Redis GET), or None when there is
    none to trust: Redis unreachable, or the version not set yet (then this
    sets one, and the caller reads the database this once)."""
    try:
        redis = get_redis_connection("default")
        version = redis.get(_version_key())
        if version is None:
            redis.set(_version_key(), secrets.token_hex(16), nx=True)
        return version
    except REDIS_ERRORS as exc:
        logger.warning("API key cache skipped, Redis unavailable: %s", exc)
        return None


def credentials_changed() -> bool:
    """Tell every web process to forget the clients it cached: their next
    request reads the database. Call it after the change has committed
    (transaction.on_commit). A new random value, not a counter: a Redis that
    lost its data and counted again from 1 could repeat an old version.

    False (and an error logged) when Redis could not be reached: the change
    then reaches processes that had the client cached within
    API_AUTH_CACHE_SECONDS.
    """
    try:
        get_redis_connection("default").set(_version_key(), secrets.token_hex(16))
    except REDIS_ERRORS as exc:
        logger.error(
            "credentials change not broadcast, Redis unavailable (cached clients expire within %ss): %s",
            settings.API_AUTH_CACHE_SECONDS,
            exc,
        )
        return False
    return True


def _client_of(digest: str) -> _Client | None:
    with connection.cursor() as cursor:
        cursor.execute(CLIENT_SQL, [digest])
        row = cursor.fetchone()
    if row is None:
        return None
    n = len(USER_FIELDS)
    return _Client(
        user_row=row[:n],
        key=KeyIdentity(id=row[n], prefix=row[n + 1]),
        last_used_at=row[n + 2],
        permissions=frozenset(row[n + 3]),
    )


def staff_refusal(user: AbstractBaseUser) -> str | None:
    """Why `user` may not hold an API key, or None: staff and superusers are
    people, who sign in to the admin; a key would carry a superuser's every
    permission (every client's wallets) to whoever holds it. The rule at
    both doors: issuing a key (clients.api_keys.api_key_issue) and using one
    (ApiKeyAuthentication below, for a user made staff after its key was issued)."""
    if user.is_superuser or user.is_staff:
        kind = "a superuser" if user.is_superuser else "staff"
        return f"{user.get_username()} is {kind}: people sign in to the admin, and only API clients hold keys."
    return None


def _note_use(client: _Client) -> None:
    """last_used_at, to the hour: at most one UPDATE per key an hour."""
    now = timezone.now()
    cutoff = now - LAST_USED_RESOLUTION
    if client.last_used_at is not None and client.last_used_at > cutoff:
        return
    ApiKey.objects.filter(Q(last_used_at__isnull=True) | Q(last_used_at__lte=cutoff), pk=client.key.id).update(
        last_used_at=now
    )


class ApiKeyAuthentication(TokenAuthentication):
    """`Authorization: Token <key>`, parsed as DRF's TokenAuthentication does
    (same errors, same schema), for the keys of clients.models.ApiKey.
    `request.user` is the client with its permissions preloaded (has_perm
    costs no query); `request.auth` its KeyIdentity.

    A credential under another scheme (`Bearer`, as /metrics takes, or
    `Basic`) is refused by name instead of being taken for no credential at
    all, which DRF would answer "credentials were not provided"."""

    def authenticate(self, request):
        try:
            return self._authenticate(request)
        except exceptions.AuthenticationFailed:
            # Every refused credential counts against the client's address;
            # past the limit the answer is 429 instead of 401.
            charge_failed_authentication(request)
            raise

    def _authenticate(self, request):
        parts = get_authorization_header(request).split()  # as DRF splits it
        scheme = parts[0] if parts else b""
        if scheme and scheme.lower() != self.keyword.lower().encode():
            name = scheme.decode("latin-1")
            named = name if SCHEME_NAME.fullmatch(name) else "another"
            raise exceptions.AuthenticationFailed(
                f"The API takes its key as `Authorization: Token <key>`, not the {named} scheme."
            )
        return super().authenticate(request)

    # DRF makes an authenticator per request: what this one used from the
    # cache and has yet to confirm, (digest, version it was read under).
    _unconfirmed: tuple[str, bytes] | None = None

    def authenticate_credentials(self, key):
        digest = key_digest(key)
        ttl = settings.API_AUTH_CACHE_SECONDS
        cached = client_cache.entry(digest) if ttl > 0 else None
        if cached is not None:
            # Confirmed by the rate limit's round trip (confirm, below).
            self._unconfirmed = (digest, cached[0])
            return self._user_of(cached[1])
        return self._user_of(self._read(digest, credentials_version() if ttl > 0 else None))

    @property
    def unconfirmed_key(self) -> str | None:
        """The Redis key whose value confirm() needs (the credentials
        version), while this request runs on a cached client; else None."""
        return _version_key() if self._unconfirmed is not None else None

    @property
    def unconfirmed_version(self) -> bytes | None:
        """The credentials version the cached client was read under, which
        the rate limit's script checks before it charges (None: nothing to
        confirm)."""
        return self._unconfirmed[1] if self._unconfirmed is not None else None

    def confirm(self, request, version: bytes | None | object = UNREAD) -> bool:
        """Confirm the cached client this request runs on against `version`,
        the credentials version read after it (by the rate limit's script:
        wallet_project/throttling.py; None when Redis could not tell; UNREAD:
        read it now). Under another version the client is read again and
        `request.user`/`request.auth` replaced: True, and the caller checks
        permissions again. Raises AuthenticationFailed (401) for a key revoked
        or a client deactivated since. False when nothing changed or nothing
        was left to confirm."""
        if self._unconfirmed is None:
            return False
        digest, cached_under = self._unconfirmed
        self._unconfirmed = None
        if version is UNREAD:
            version = credentials_version()
        if version is not None and version == cached_under:
            return False
        client_cache.drop(digest)
        try:
            request.user, request.auth = self._user_of(self._read(digest, version))
        except exceptions.AuthenticationFailed:
            charge_failed_authentication(request)  # as authenticate() does
            raise
        return True

    @staticmethod
    def _read(digest: str, version: bytes | None) -> _Client | None:
        """The client of a key from the database, cached under `version`
        (read before this: the module docstring's order) unless None."""
        client = _client_of(digest)
        if client is not None and client.is_active:
            _note_use(client)
            if version is not None:
                client_cache.put(digest, version, client, settings.API_AUTH_CACHE_SECONDS)
        return client

    @staticmethod
    def _user_of(client: _Client | None) -> tuple:
        """(user, KeyIdentity) of a live client; AuthenticationFailed else."""
        if client is None:
            raise exceptions.AuthenticationFailed(
                _("Unknown or revoked API key: check the key, or ask the operator to issue a new one.")
            )
        if not client.is_active:
            raise exceptions.AuthenticationFailed(
                _("This API client is deactivated: ask the operator to reactivate it or to issue another client.")
            )
        # A user with only these fields loaded (the others deferred, so a
        # save() could never blank them).
        user = from_row(User, connection.alias, USER_FIELDS, client.user_row)
        if staff_refusal(user):
            raise exceptions.AuthenticationFailed(
                _(
                    "This API key belongs to a staff account, which signs in to the admin: ask the operator for a key "
                    "of an API client."
                )
            )
        # What ModelBackend.get_all_permissions would compute with two queries.
        user._perm_cache = set(client.permissions)
        if _only_model_backend_answers():
            user.has_perm = MethodType(_key_client_has_perm, user)
        return user, client.key


# has_perm of a key's client, answered from its preloaded permissions. Django's
# User.has_perm loads and instantiates every AUTHENTICATION_BACKENDS entry on
# each call (django.contrib.auth.get_backends: import_string, then the class
# called) to end in ModelBackend's `perm in user._perm_cache`; a transfer asks
# twice (the action's permission, paying other clients), a replay once.
# Callgrind, 1,000 calls in one process: figures in bench/HISTORY.md,
# 2026-12-07 12:18.


@functools.cache
def _only_model_backend_answers() -> bool:
    """Whether ModelBackend itself is the one backend with has_perm, so that
    its answer is Django's. Worked out once, and again after Django's
    setting_changed signal names AUTHENTICATION_BACKENDS (override_settings
    in tests; _backends_changed), as Django resets its own caches of a
    setting."""
    return [type(backend) for backend in get_backends() if hasattr(backend, "has_perm")] == [ModelBackend]


def _backends_changed(*, setting: str, **kwargs) -> None:
    if setting == "AUTHENTICATION_BACKENDS":
        _only_model_backend_answers.cache_clear()


def _key_client_has_perm(user, perm: str, obj=None) -> bool:
    """User.has_perm as Django answers it with ModelBackend alone, for a user
    that is no superuser (staff_refusal refuses them): an active user, no
    object, a permission in its preloaded set."""
    return user.is_active and obj is None and perm in user._perm_cache


# --- what changes a client's credentials -----------------------------------------------


def _changed_after_commit() -> None:
    transaction.on_commit(credentials_changed)


def _user_saved(sender, instance, created, update_fields=None, **kwargs) -> None:
    # A new user has no key yet; a login's last_login is no credential.
    if created or (update_fields is not None and not AUTH_USER_FIELDS & set(update_fields)):
        return
    _changed_after_commit()


def _deleted(sender, **kwargs) -> None:
    _changed_after_commit()


def _memberships_changed(sender, action, **kwargs) -> None:
    if action in ("post_add", "post_remove", "post_clear"):
        _changed_after_commit()


def connect_receivers() -> None:
    """Called by ClientsConfig.ready: whatever changes what a key may do
    changes the credentials version. Through the ORM only: a QuerySet.update()
    or raw SQL sends no signal (API_AUTH_CACHE_SECONDS bounds those). And a
    changed AUTHENTICATION_BACKENDS setting (tests) is asked again whether
    has_perm may be answered from the preloaded permissions."""
    setting_changed.connect(_backends_changed, dispatch_uid="wallets.auth.backends_changed")
    post_save.connect(_user_saved, sender=User, dispatch_uid="wallets.auth.user_saved")
    for model in (User, Group, Permission, ApiKey):
        post_delete.connect(_deleted, sender=model, dispatch_uid=f"wallets.auth.deleted.{model._meta.label}")
    for through in (User.groups.through, User.user_permissions.through, Group.permissions.through):
        m2m_changed.connect(
            _memberships_changed, sender=through, dispatch_uid=f"wallets.auth.m2m.{through._meta.label}"
        )
