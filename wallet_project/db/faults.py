"""Which database errors mean "the connection cannot serve", not "this
statement is wrong".

A connection pooler or a lost server connection shows itself in more ways
than Django's OperationalError. Through PgBouncer in transaction pooling, a
server connection terminated while it sat in the pool (a PostgreSQL restart,
a failover, an administrator's pg_terminate_backend) hands its pending FATAL
error and PgBouncer's own to the next client that gets it, and psycopg, which
sent a BEGIN, reads two results where it expects one:
`psycopg.InternalError: received 2 results from command 'BEGIN'`. Such an
error says nothing about the request: the answer is 503 with Retry-After (the
contract's "PostgreSQL unavailable"), and the connection, whose protocol state
is unknown, is discarded (wallet_project/db/base.py). This module is the one
place that tells them apart; the API's exception handler and the backend both
ask it.
"""

import psycopg
from django.db import utils

# SQLSTATEs outside the OperationalError family that still mean the session,
# not the statement, is the problem (PostgreSQL's errcodes appendix):
#   25P03 idle_in_transaction_session_timeout: the server ended the session;
#   25006 read_only_sql_transaction: the "primary" is a standby, as after a
#         failover that a pooler or DNS has not followed yet.
SESSION_SQLSTATES = frozenset({"25P03", "25006"})


def is_connection_fault(error: BaseException) -> bool:
    """True when `error` (Django's wrapper or psycopg's own) comes from the
    connection, the pooler or the server's state, so retrying the same request
    on a new connection can succeed and nothing about the request is wrong.

    - OperationalError and InterfaceError: the connection is gone, refused,
      timed out, or the server shut the session (SQLSTATE classes 08, 57P0x,
      53300), or a deadlock after every retry: all worth a retry.
    - InternalError raised by psycopg itself (no SQLSTATE): the client lost
      track of the protocol, as with the pooler's doubled results.
    - InternalError with a SQLSTATE of SESSION_SQLSTATES.

    Not a fault: constraint violations, bad SQL, a statement refused on its
    own merits (IntegrityError, ProgrammingError, DataError...). Those stay
    bugs or 4xx.
    """
    cause = error.__cause__ if isinstance(error, utils.Error) and error.__cause__ is not None else error
    if isinstance(error, (utils.OperationalError, utils.InterfaceError)):
        return True
    if isinstance(cause, (psycopg.OperationalError, psycopg.InterfaceError)):
        return True
    if isinstance(error, utils.InternalError) or isinstance(cause, psycopg.InternalError):
        sqlstate = getattr(cause, "sqlstate", None)
        return sqlstate is None or sqlstate in SESSION_SQLSTATES
    return False
