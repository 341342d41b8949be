"""Token authentication that also loads the client's permissions, in one query.

DRF's TokenAuthentication costs a query for the token, and the first
`has_perm` two more (the user's permissions, then their groups'). Every API
request checks a permission, so here one statement returns the user and the
union of both sets, and Django's permission cache is filled with it.

Each web process then keeps what it read for API_AUTH_CACHE_SECONDS (default
10): a client's requests skip that query too. The price is that a revoked
token, a deactivated client or a removed permission takes up to that long to
bite; 0 turns the cache off.
"""

import threading
from time import monotonic

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection
from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication

from wallet_project.db import in_model_order

User = get_user_model()
USER_FIELDS = in_model_order(User, ["username", "is_active", "is_staff", "is_superuser"])
IS_ACTIVE = USER_FIELDS.index("is_active")

USER_AND_PERMISSIONS_SQL = """
SELECT {user_columns},
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
  FROM authtoken_token t
  JOIN auth_user u ON u.id = t.user_id
 WHERE t.key = %s
""".format(user_columns=", ".join(f"u.{name}" for name in USER_FIELDS))  # noqa: S608 (model field names)


class _TokenCache:
    """key -> (expiry, row), per process, bounded. Only valid tokens are kept."""

    MAX_ENTRIES = 10_000

    def __init__(self):
        self._entries: dict[str, tuple[float, tuple]] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> tuple | None:
        entry = self._entries.get(key)
        if entry is None or entry[0] < monotonic():
            return None
        return entry[1]

    def put(self, key: str, row: tuple, ttl: float) -> None:
        with self._lock:
            if len(self._entries) >= self.MAX_ENTRIES:
                self._entries.clear()  # crude, and rare: a few thousand clients at most
            self._entries[key] = (monotonic() + ttl, row)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


token_cache = _TokenCache()


class TokenWithPermissionsAuthentication(TokenAuthentication):
    """`Authorization: Token <key>`, as DRF's, with the permissions preloaded."""

    def authenticate_credentials(self, key):
        ttl = settings.API_AUTH_CACHE_SECONDS
        row = token_cache.get(key) if ttl > 0 else None
        if row is None:
            with connection.cursor() as cursor:
                cursor.execute(USER_AND_PERMISSIONS_SQL, [key])
                row = cursor.fetchone()
            if row is not None and row[IS_ACTIVE] and ttl > 0:
                token_cache.put(key, row, ttl)
        if row is None:
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        if not row[IS_ACTIVE]:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        # A user with only these fields loaded (the others deferred, so a
        # save() could never blank them).
        user = User.from_db(connection.alias, USER_FIELDS, row[: len(USER_FIELDS)])
        # What ModelBackend.get_all_permissions would compute with two queries.
        user._perm_cache = set(row[-1])
        return user, key
