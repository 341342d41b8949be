"""Django's PostgreSQL backend with two savings on the transfer path, and a
connection that a fault has touched is never used again.

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
   connection instead (bench/HISTORY.md).

3. A connection fault (wallet_project/db/faults.py: the server or the pooler
   dropped the session, or psycopg lost track of the protocol) discards the
   connection: at once outside a transaction, at the transaction's end inside
   one (instead of a rollback the broken session could not take), and the
   health check never passes it again. Django's own rule, a check after any
   error, would pass a desynchronised connection whose socket is quiet, and
   through PgBouncer it often is.
"""

import select

from django.db import utils
from django.db.backends.postgresql import base
from django.utils.asyncio import async_unsafe

from wallet_project.db.faults import is_connection_fault


class DatabaseErrorWrapper(utils.DatabaseErrorWrapper):
    """Django's translation of driver errors, which also marks the connection
    faulted when the error is a connection fault."""

    def __exit__(self, exc_type, exc_value, traceback):
        try:
            super().__exit__(exc_type, exc_value, traceback)
        except utils.Error as error:
            if is_connection_fault(error):
                self.wrapper.connection_faulted()
            raise


class DatabaseWrapper(base.DatabaseWrapper):
    # The psycopg cursor statement_cursor() hands out again; it belongs to one
    # connection (and so to one thread, as Django's connections do).
    _statement_cursor = None
    # Set by a connection fault; a new connection starts clean.
    faulted = False

    @property
    def wrap_database_errors(self):
        return DatabaseErrorWrapper(self)

    def connection_faulted(self) -> None:
        """Discard the connection after a connection fault. Inside an atomic
        block Django still has to unwind it: the connection is closed when it
        would roll back (rollback below), and PostgreSQL rolls back on its own."""
        if self.faulted:
            return
        self.faulted = True
        if not self.in_atomic_block:
            self._discard()

    def _discard(self) -> None:
        try:
            self.close()
        except utils.Error:
            # Closing a broken connection may fail too; it is gone either way.
            self.connection = None

    def connect(self):
        self.faulted = False
        super().connect()

    def rollback(self):
        if self.faulted:
            self._discard()
            return
        super().rollback()

    def is_usable(self) -> bool:
        if self.connection is None or self.connection.closed or self.faulted:
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
