"""Django's PostgreSQL backend with two savings on the transfer path.

1. A health check that costs no round trip. CONN_HEALTH_CHECKS makes Django
   check a persistent connection before each request reuses it, so a
   connection that died in between (a PostgreSQL restart, an administrator's
   pg_terminate_backend) is replaced instead of failing the request. Django's
   check is a `SELECT 1`: a round trip on every request. Here a zero-timeout
   poll of the socket comes first: an idle connection receives nothing, so a
   silent socket is alive; when PostgreSQL ends a session it sends an error and
   closes the socket, which makes it readable, and only then does the real
   `SELECT 1` decide.

2. statement_cursor(): Django's cursor() opens a new psycopg cursor for every
   statement (a copy of the connection's adapters map, a transformer, a close),
   about half of what a short statement costs in Python. The protocol's
   statements read their few rows at once, so they share one psycopg cursor per
   connection instead (README "Performance").
"""

import select

from django.db.backends.postgresql import base
from django.utils.asyncio import async_unsafe


class DatabaseWrapper(base.DatabaseWrapper):
    # The psycopg cursor statement_cursor() hands out again; it belongs to one
    # connection (and so to one thread, as Django's connections do).
    _statement_cursor = None

    def is_usable(self) -> bool:
        if self.connection is None or self.connection.closed:
            return False
        try:
            readable, _, _ = select.select([self.connection.fileno()], [], [], 0)
        except (OSError, ValueError):
            return False
        return not readable or super().is_usable()

    @async_unsafe
    def statement_cursor(self):
        """A cursor as cursor() returns (the same health check, query logging,
        execute wrappers and error translation), over a psycopg cursor reused
        for the connection's lifetime.

        For a statement whose rows are all fetched before the next one runs:
        the next execute replaces them. Not closed by the caller (closing
        would end the reuse): use it without `with`.
        """
        self.close_if_health_check_failed()
        self.ensure_connection()
        cursor = self._statement_cursor
        if cursor is None or cursor.closed or cursor.connection is not self.connection:
            cursor = self._statement_cursor = self.create_cursor()
        return self._prepare_cursor(cursor)
