"""PgBouncer in transaction pooling in front of PostgreSQL is a supported
deployment (docs/operations.md, "Running it" and "PgBouncer and the read replica").

Against a real PgBouncer (conftest.py's, Debian's 1.18): the settings that
DATABASE_POOL_MODE=transaction gives connect and work through it; a server
session that dies between transactions is replaced unnoticed; one that dies
under a command is a 503, never a 500, and the connection is discarded. The
contract and crash-safety modules marked through_pgbouncer run through it
too; this module holds what only the pooler shows.
"""

import uuid
from decimal import Decimal

import psycopg
import pytest
from django.db import DatabaseError, connection, transaction, utils

from reconciliation.tests.faults import (
    assert_books_balance,
    balances,
    interrupt_at,
    kill_pooled_sessions_under_next_command,
    post_money,
    terminate_own_backend,
)
from transfers.models import TransactionLog, TransactionStatus
from wallet_project.db.faults import is_connection_fault
from wallet_project.tests.test_connection_urls import manage_shell

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.through_pgbouncer(only=True)]

USE_DATABASE = """
from django.db import connection
with connection.cursor() as cursor:
    cursor.execute("SELECT count(*) FROM wallets")
    print("rows", cursor.fetchone()[0])
print("server-side cursors", not connection.settings_dict["DISABLE_SERVER_SIDE_CURSORS"])
"""


def test_transaction_pooling_settings_work_through_pgbouncer(pgbouncer):
    url = f"postgres://postgres@127.0.0.1:{pgbouncer.port}/{connection.settings_dict['NAME']}"

    pooled = manage_shell(USE_DATABASE, DATABASE_URL=url, DATABASE_POOL_MODE="transaction")
    # The settings for a direct connection send a session option at startup,
    # which a transaction pooler cannot honour and PgBouncer refuses.
    direct = manage_shell(USE_DATABASE, DATABASE_URL=url, DATABASE_POOL_MODE="session")

    assert pooled.returncode == 0, pooled.stderr
    assert pooled.stdout.splitlines() == ["rows 0", "server-side cursors False"]
    assert direct.returncode != 0
    assert "unsupported startup parameter: options" in direct.stderr, direct.stderr


def transfer_payload(source, destination, amount="10.00") -> dict:
    return {"sourceWalletId": str(source.pk), "destinationWalletId": str(destination.pk), "amount": amount}


def test_server_session_killed_between_transactions_is_replaced_unnoticed(monkeypatch, treasury_api, funded_wallet):
    source, destination = funded_wallet("100.00"), funded_wallet("0")
    interrupt_at("after_pending_log", terminate_own_backend, patch=monkeypatch.setattr)

    response = post_money(treasury_api, "/api/transfer", transfer_payload(source, destination), f"k-{uuid.uuid4()}")

    assert response.status_code == 201, response.json()
    assert balances(source, destination) == [Decimal("90.00"), Decimal("10.00")]


def test_server_session_dying_under_begin_is_503_and_the_retry_moves_the_money_once(
    monkeypatch, treasury_api, funded_wallet
):
    """The issue's 500: psycopg.InternalError "received 2 results from command
    'BEGIN'", PgBouncer passing on the dying session's FATAL error and its own."""
    source, destination = funded_wallet("100.00"), funded_wallet("0")
    key = f"k-{uuid.uuid4()}"
    interrupt_at("after_pending_log", kill_pooled_sessions_under_next_command, patch=monkeypatch.setattr)
    connection.ensure_connection()
    before = connection.connection

    crashed = treasury_api.post(
        "/api/transfer", transfer_payload(source, destination), format="json", headers={"Idempotency-Key": key}
    )

    assert crashed.status_code == 503, crashed.json()
    assert crashed.json()["code"] == "service_unavailable"
    assert crashed.headers["Retry-After"] == "1"
    # Discarded within the request, before the WSGI server's end-of-request cleanup.
    assert connection.connection is not before
    assert TransactionLog.objects.get(idempotency_key=key).status == TransactionStatus.PENDING

    retry = post_money(treasury_api, "/api/transfer", transfer_payload(source, destination), key)

    assert retry.status_code == 201, retry.json()
    assert balances(source, destination) == [Decimal("90.00"), Decimal("10.00")]
    assert_books_balance()


def test_health_answers_through_pgbouncer_after_its_sessions_are_killed(client):
    assert client.get("/health").status_code == 200
    terminate_own_backend()

    response = client.get("/health")

    assert response.status_code == 200, response.json()
    assert response.json()["checks"]["database"] == "up"


# --- which errors are connection faults (wallet_project/db/faults.py) ----------------------


def django_error(driver_error: Exception) -> utils.Error:
    """The error as Django raises it: translated by the backend's wrapper."""
    try:
        with connection.wrap_database_errors:
            raise driver_error
    except utils.Error as error:
        return error
    raise AssertionError("not translated")


@pytest.mark.parametrize(
    "driver_error",
    [
        psycopg.InternalError("received 2 results from command 'BEGIN'"),
        psycopg.OperationalError("consuming input failed: server closed the connection unexpectedly"),
        psycopg.InterfaceError("the connection is lost"),
        psycopg.errors.AdminShutdown("terminating connection due to administrator command"),
        psycopg.errors.IdleInTransactionSessionTimeout("terminating connection due to idle-in-transaction timeout"),
        psycopg.errors.ReadOnlySqlTransaction("cannot execute INSERT in a read-only transaction"),
    ],
    ids=lambda error: type(error).__name__,
)
def test_connection_faults_are_recognised_and_discard_the_connection(driver_error):
    connection.ensure_connection()
    assert connection.is_usable()

    error = django_error(driver_error)

    assert is_connection_fault(error)
    assert connection.connection is None  # discarded at once outside a transaction
    connection.ensure_connection()
    assert connection.is_usable()


@pytest.mark.parametrize(
    "driver_error",
    [
        psycopg.errors.UniqueViolation("duplicate key value violates unique constraint"),
        psycopg.errors.SyntaxError("syntax error at or near"),
        psycopg.errors.InternalError_("an internal error of the server, with its SQLSTATE XX000"),
        psycopg.errors.InFailedSqlTransaction("current transaction is aborted"),
        # Retried by the settle step, on the same session: no reason to reconnect.
        psycopg.errors.DeadlockDetected("deadlock detected"),
        psycopg.errors.LockNotAvailable("could not obtain lock on row"),
        psycopg.ProgrammingError("the query has 2 placeholders but 1 parameters were passed"),
    ],
    ids=lambda error: type(error).__name__,
)
def test_statement_errors_are_not_connection_faults_and_keep_the_connection(driver_error):
    connection.ensure_connection()
    kept = connection.connection

    error = django_error(driver_error)

    assert isinstance(error, DatabaseError)
    assert not is_connection_fault(error)
    assert connection.connection is kept


def test_fault_inside_a_transaction_discards_the_connection_when_it_unwinds():
    connection.ensure_connection()
    kept = connection.connection

    with pytest.raises(utils.InternalError), transaction.atomic():
        connection.cursor().execute("SELECT 1")
        raise django_error(psycopg.InternalError("received 2 results from command 'BEGIN'"))

    assert connection.connection is not kept
    assert not connection.faulted
