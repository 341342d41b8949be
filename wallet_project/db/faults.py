"""Which database errors mean "the connection cannot serve", not "this
statement is wrong".

A connection pooler or a lost server connection shows itself in more ways
than Django's OperationalError. Through PgBouncer in transaction pooling, a
server session that dies just as PgBouncer hands it a command (a PostgreSQL
restart, a failover, an administrator's pg_terminate_backend, under load)
answers it with its FATAL error, PgBouncer adds its own, and psycopg, which
sent a BEGIN, reads two results where it expects one:
`psycopg.InternalError: received 2 results from command 'BEGIN'`. Such an
error says nothing about the request: the answer is 503 with Retry-After (the
contract's "PostgreSQL unavailable"), and the connection, whose protocol state
is unknown, is discarded (wallet_project/db/base.py). This module is the one
place that tells them apart; the API's exception handler, reconciliation and
the backend ask it.
"""

import psycopg
from django.db import utils

# SQLSTATEs with which the server says the session, not the statement, is the
# problem (PostgreSQL's errcodes appendix); class 08, connection_exception,
# too. PgBouncer reports its own failures as 08P01.
SESSION_SQLSTATES = frozenset(
    {
        "57P01",  # admin_shutdown: pg_terminate_backend, a fast shutdown
        "57P02",  # crash_shutdown
        "57P03",  # cannot_connect_now: starting up, or a standby not ready
        "57P05",  # idle_session_timeout
        "25P03",  # idle_in_transaction_session_timeout
        "53300",  # too_many_connections
        # read_only_sql_transaction: the "primary" is a standby, as after a
        # failover that the pooler or DNS has not followed yet.
        "25006",
    }
)


def is_connection_fault(error: BaseException) -> bool:
    """True when `error` (Django's wrapper or psycopg's own) says the
    connection can no longer be trusted: gone, refused, ended by the server
    or the pooler, or out of step with the protocol. The connection is then
    discarded, and retrying the request on a new one can succeed.

    - InterfaceError: the connection is closed or lost.
    - OperationalError or InternalError without a SQLSTATE: raised by psycopg
      itself (connection refused, lost, timed out, or the pooler's doubled
      results), or with a SQLSTATE of class 08 or of SESSION_SQLSTATES.

    Not a fault: a deadlock or serialization failure, a lock or statement
    timeout (the session is fine; the API still answers 503 for those, a
    retry can succeed), nor a constraint violation, bad SQL or a statement
    refused on its own merits (IntegrityError, ProgrammingError, DataError...).
    """
    cause = error.__cause__ if isinstance(error, utils.Error) and error.__cause__ is not None else error
    if isinstance(error, utils.InterfaceError) or isinstance(cause, psycopg.InterfaceError):
        return True
    kinds = (utils.OperationalError, utils.InternalError, psycopg.OperationalError, psycopg.InternalError)
    if not isinstance(error, kinds) and not isinstance(cause, kinds):
        return False
    sqlstate = getattr(cause, "sqlstate", None)
    return sqlstate is None or sqlstate.startswith("08") or sqlstate in SESSION_SQLSTATES


def is_transient(error: BaseException) -> bool:
    """True when the database, not the request, is why `error` happened, so
    the same request can succeed later: a connection fault, or any
    OperationalError (a deadlock that outlived the settle step's retries, a
    lock or statement timeout). The API answers these 503 with Retry-After."""
    return isinstance(error, utils.OperationalError | psycopg.OperationalError) or is_connection_fault(error)
