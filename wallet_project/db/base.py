"""The project's PostgreSQL backend (settings' DATABASES ENGINE names this
package, "wallet_project.db"; Django loads this module of it), and the
helpers for code that runs plain SQL through it and builds model instances
from the rows: statement_cursor, fetch, run, from_row, in_model_order.

Django's PostgreSQL backend with two savings on the transfer path, and a
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

import functools
import select

import psycopg
from django.db import utils
from django.db.backends.postgresql import base
from django.db.models.base import ModelState
from django.db.models.fields.related_descriptors import ForeignKeyDeferredAttribute
from django.db.models.signals import post_init, pre_init
from django.utils.asyncio import async_unsafe
from django.utils.functional import cached_property

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
    # Its CursorWrapper, while no query is logged (statement_cursor).
    _statement_wrapper = None
    # Set by a connection fault; a new connection starts clean.
    faulted = False

    # Cached as Django's own is: it holds nothing but the connection, and
    # every statement, fetch and commit asks for it.
    @cached_property
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
        if self.connection is None:
            # ensure_connection's own test, without its second async check:
            # this method has made it.
            self.ensure_connection()
        cursor = self._statement_cursor
        if cursor is None or cursor.closed or cursor.connection is not self.connection:
            cursor = self._statement_cursor = self.create_cursor()
            cursor.__class__ = _preparing(type(cursor))
        if self.queries_logged:
            return self._prepare_cursor(cursor)
        # _prepare_cursor's plain CursorWrapper, made once per psycopg
        # cursor: it holds nothing but the two. With fetch's fetchall below
        # and the money path's rows named by DEFAULT_DB_ALIAS (from_row):
        # a first-time transfer 4,934,933 -> 4,785,219 instructions (-3.0 %),
        # a replay 2,522,550 -> 2,485,988 (-1.4 %; bench/instructions.py,
        # layouts 0-2, n=40).
        self.validate_thread_sharing()
        wrapped = self._statement_wrapper
        if wrapped is None or wrapped.cursor is not cursor:
            wrapped = self._statement_wrapper = self.make_cursor(cursor)
        return wrapped


@functools.cache
def _preparing(cursor_class):
    """`cursor_class` (a psycopg cursor class) whose execute asks psycopg to
    prepare the statement: PostgreSQL parses, analyses and plans it once per
    connection instead of on every call. psycopg honours the request only
    when the connection's prepare_threshold is not None (settings.py: not
    through PgBouncer's transaction pooling). The statements sent through
    statement_cursor are the money path's, fixed text with parameters:
    SETTLE alone took 0.9 ms of planning on every transfer. PostgreSQL's
    CPU per first-time transfer about halved: 4.9-5.2 ms to 2.8-2.9 ms in
    bench/run.py, 5.0 to 2.4 ms in-process (bench/HISTORY.md,
    "2026-12-06 23:30").

    A prepared statement outlives a migration: PostgreSQL re-analyses it
    when a table it reads changes, and fails it only if its result columns
    change ("cached plan must not change result type", SQLSTATE 0A000).
    The statements here name their result columns (none returns `*`), so a
    migration that adds a column changes nothing; one that retypes or drops
    a returned column fails each such statement once per connection: then
    the connection's prepared statements are forgotten (psycopg would
    otherwise send the broken one again, forever), and a statement outside
    a transaction runs again at once; inside one, the transaction fails
    (its rollback forgets them too) and the next request prepares anew."""

    class PreparingCursor(cursor_class):
        __slots__ = ()

        def execute(self, query, params=None, *, prepare=True, binary=None):
            try:
                return super().execute(query, params, prepare=prepare, binary=binary)
            except psycopg.errors.FeatureNotSupported:
                if not prepare:
                    raise
                # psycopg's own cache of names (no public call empties it
                # without a round trip); the next execute deallocates them
                # on the server too.
                self.connection._prepared.clear()
                if self.connection.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                    raise
                # Unprepared: this execute ends with the DEALLOCATE ALL.
                return super().execute(query, params, prepare=False, binary=binary)

    return PreparingCursor


# --- Plain SQL and model instances from rows ------------------------------------------
# For code that runs plain SQL (the money path's statements) and builds
# model instances from the rows.


def in_model_order(model, names) -> list[str]:
    """The primary key and `names`, as the attnames Model.from_db expects for a
    row whose columns come in the model's field order (as .only() selects them)."""
    wanted = {model._meta.pk.attname, *names}
    return [f.attname for f in model._meta.concrete_fields if f.attname in wanted]


def from_row(model, alias: str, names, row):
    """A `model` instance of a row read by plain SQL: `names` (attnames, as
    in_model_order gives them) and the row's values in the same order, the
    other fields deferred. What Model.from_db(alias, names, row) returns,
    built directly: from_db spreads the row over every concrete field (a
    placeholder for each one not read), and Model.__init__ walks them all
    again and sends pre_init and post_init, about 140 us of CPU for a log
    row. A transfer builds five instances (its log twice, its two wallets,
    the client's user): this took 8 % of a transfer's instructions and 2 %
    of a replay's (bench/HISTORY.md, "2026-12-06 09:30"). Falls back to
    from_db for a model whose fields Model.__init__ would set through a
    descriptor of their own, and while anything listens to pre_init or
    post_init. `alias`: DEFAULT_DB_ALIAS for rows read on
    django.db.connection, which names that database: asking the proxy for
    its alias is a lookup in asgiref's Local (an exception raised and caught
    on every attribute read)."""
    if pre_init.receivers or post_init.receivers or not _sets_plainly(model):
        return model.from_db(alias, names, row)
    instance = model.__new__(model)
    state = instance._state = ModelState()
    state.adding, state.db = False, alias
    instance.__dict__.update(zip(names, row, strict=True))
    return instance


@functools.cache
def _sets_plainly(model) -> bool:
    """Whether Model.__init__ sets each concrete field of `model` as a plain
    instance attribute: a field's attribute on the class is Django's
    non-data DeferredAttribute, or a foreign key's id, whose __set__ only
    clears a related object a new instance does not have yet."""
    for field in model._meta.concrete_fields:
        descriptor = model.__dict__.get(field.attname) or getattr(model, field.attname, None)
        if hasattr(descriptor, "__set__") and not isinstance(descriptor, ForeignKeyDeferredAttribute):
            return False
    return True


def statement_cursor(connection):
    """A cursor for one statement whose rows are all read before the next
    runs, not closed by the caller (use it without `with`).

    On this project's backend (DatabaseWrapper, above) one psycopg cursor
    reused for the connection's lifetime; on any other (Django's stock
    PostgreSQL backend) a new cursor(), which works the same, slower: with
    a new cursor() every time, a transfer cost 2.9 % more instructions
    (5.83M -> 6.00M) and a replay 3.9 % more (2.86M -> 2.97M; callgrind,
    bench/HISTORY.md, "2026-12-06 09:30"), above the 2 % a fast path must
    earn to stay. transfers/tests/test_stock_backend.py runs the money path
    on the stock backend.
    """
    reused = getattr(connection, "statement_cursor", None)
    return reused() if reused is not None else connection.cursor()


def fetch(connection, statement: str, params) -> list[tuple]:
    """The rows of a statement that returns some (SELECT, RETURNING)."""
    cursor = statement_cursor(connection)
    cursor.execute(statement, params)
    # The psycopg cursor's fetchall under the wrapper's error translation:
    # asking Django's CursorWrapper for fetchall wraps it in a new function
    # (functools.wraps) on every call.
    with cursor.db.wrap_database_errors:
        return cursor.cursor.fetchall()


def run(connection, statement: str, params) -> None:
    """A statement that returns no rows. Kept apart from fetch because asking
    the cursor whether there are rows (its description) builds a column object
    per column: measurable on a path that runs on every request."""
    statement_cursor(connection).execute(statement, params)
