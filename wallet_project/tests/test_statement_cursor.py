"""wallet_project/db/base.py statement_cursor(): one psycopg cursor per
connection for the transfer protocol's statements, with everything Django's
cursor() gives (query logging, execute wrappers, error translation), each
statement prepared once per connection unless prepare_threshold is None
(DATABASE_POOL_MODE=transaction), and a migration that changes a prepared
statement's result columns costing at most one failed transaction."""

from decimal import Decimal

import pytest
from django.db import NotSupportedError, ProgrammingError, connection
from django.test.utils import CaptureQueriesContext

from wallet_project.db.base import DatabaseWrapper
from wallet_project.tests.test_connection_urls import manage_shell

pytestmark = pytest.mark.django_db


@pytest.fixture
def own_connection():
    """A connection of its own, in autocommit: these tests close it and fail
    statements on it, which the test's own transaction would not survive."""
    wrapper = DatabaseWrapper({**connection.settings_dict}, alias="statement-cursor-probe")
    wrapper.connect()
    yield wrapper
    wrapper.close()


def test_statements_share_one_psycopg_cursor_and_each_reads_its_own_rows():
    first = connection.statement_cursor()
    first.execute("SELECT %s::int", [1])
    assert first.fetchall() == [(1,)]

    second = connection.statement_cursor()
    second.execute("SELECT %s::int, %s::text", [2, "two"])

    assert second.cursor is first.cursor
    assert second.fetchall() == [(2, "two")]


def test_a_new_connection_gets_a_new_cursor(own_connection):
    before = own_connection.statement_cursor().cursor
    own_connection.close()

    cursor = own_connection.statement_cursor()
    cursor.execute("SELECT 1")

    assert cursor.cursor is not before
    assert cursor.cursor.connection is own_connection.connection
    assert cursor.fetchall() == [(1,)]


def test_statements_are_logged_and_pass_through_execute_wrappers():
    seen = []

    def wrapper(execute, sql, params, many, context):
        seen.append(sql)
        return execute(sql, params, many, context)

    with CaptureQueriesContext(connection) as queries, connection.execute_wrapper(wrapper):
        cursor = connection.statement_cursor()
        cursor.execute("SELECT %s::int", [7])
        cursor.fetchall()

    assert seen == ["SELECT %s::int"]
    assert [q["sql"] for q in queries.captured_queries] == ["SELECT 7::int"]


def test_a_failed_statement_raises_djangos_error_and_the_cursor_still_works(own_connection):
    with pytest.raises(ProgrammingError):
        own_connection.statement_cursor().execute("SELECT * FROM no_such_table")

    cursor = own_connection.statement_cursor()
    cursor.execute("SELECT 'still here'")
    assert cursor.fetchall() == [("still here",)]


def prepared_on_server(wrapper) -> set[str]:
    with wrapper.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        return {row[0] for row in cursor.fetchall()}


def test_statements_are_prepared_once_per_connection(own_connection):
    for n in range(3):
        cursor = own_connection.statement_cursor()
        cursor.execute("SELECT %s::int + 40", [n])
        assert cursor.fetchall() == [(n + 40,)]

    assert prepared_on_server(own_connection) == {"SELECT $1::int + 40"}


def test_nothing_is_prepared_with_the_transaction_pooling_settings():
    # What DATABASE_POOL_MODE=transaction gives (settings.py): PgBouncer
    # would hand a prepared statement's name to another server session.
    settings_dict = {**connection.settings_dict, "OPTIONS": {**connection.settings_dict["OPTIONS"]}}
    settings_dict["OPTIONS"]["prepare_threshold"] = None
    wrapper = DatabaseWrapper(settings_dict, alias="statement-cursor-pooled")
    try:
        for n in range(3):
            cursor = wrapper.statement_cursor()
            cursor.execute("SELECT %s::int + 40", [n])
            cursor.fetchall()
        assert prepared_on_server(wrapper) == set()
    finally:
        wrapper.close()


@pytest.fixture
def scratch_table(own_connection):
    with own_connection.cursor() as cursor:
        cursor.execute("CREATE TABLE scratch_prepared (id int PRIMARY KEY, amount numeric(10, 2))")
        cursor.execute("INSERT INTO scratch_prepared VALUES (1, 1.50)")
    yield "scratch_prepared"
    with own_connection.cursor() as cursor:
        cursor.execute("DROP TABLE scratch_prepared")


def retype(wrapper, precision: int) -> None:
    # As a migration run by another process would (a new connection).
    other = DatabaseWrapper({**wrapper.settings_dict}, alias="statement-cursor-migration")
    try:
        with other.cursor() as cursor:
            cursor.execute(f"ALTER TABLE scratch_prepared ALTER COLUMN amount TYPE numeric({precision}, 2)")
    finally:
        other.close()


def select_amount(wrapper):
    cursor = wrapper.statement_cursor()
    cursor.execute("SELECT id, amount FROM scratch_prepared WHERE id = %s", [1])
    return cursor.fetchall()


def test_a_migration_that_adds_a_column_leaves_prepared_statements_working(own_connection, scratch_table):
    assert select_amount(own_connection) == [(1, Decimal("1.50"))]
    with own_connection.cursor() as cursor:
        cursor.execute("ALTER TABLE scratch_prepared ADD COLUMN note text")

    assert select_amount(own_connection) == [(1, Decimal("1.50"))]


def test_a_retyped_result_column_is_prepared_anew_outside_a_transaction(own_connection, scratch_table):
    assert select_amount(own_connection) == [(1, Decimal("1.50"))]
    retype(own_connection, 12)

    # PostgreSQL refuses the prepared statement ("cached plan must not change
    # result type"); the cursor forgets it and runs the statement again.
    assert select_amount(own_connection) == [(1, Decimal("1.50"))]
    assert select_amount(own_connection) == [(1, Decimal("1.50"))]


def test_a_retyped_result_column_fails_one_transaction_then_is_prepared_anew(own_connection, scratch_table):
    assert select_amount(own_connection) == [(1, Decimal("1.50"))]
    retype(own_connection, 14)

    own_connection.set_autocommit(False)  # a transaction, as atomic() opens
    try:
        with pytest.raises(NotSupportedError, match="cached plan must not change result type"):
            select_amount(own_connection)
        own_connection.rollback()

        assert select_amount(own_connection) == [(1, Decimal("1.50"))]
    finally:
        own_connection.rollback()
        own_connection.set_autocommit(True)


SHOW_THRESHOLDS = """
from django.conf import settings
for alias in ("default", "replica"):
    print(settings.DATABASES[alias]["OPTIONS"]["prepare_threshold"])
"""


@pytest.mark.parametrize("pool_mode, primary", [("session", str(2**62)), ("transaction", "None")])
def test_the_replica_never_prepares_whatever_the_primary_does(pool_mode, primary):
    # The replica may sit behind a transaction pooler while the primary is
    # reached directly: DATABASE_POOL_MODE speaks for the primary only.
    shown = manage_shell(
        SHOW_THRESHOLDS,
        DATABASE_POOL_MODE=pool_mode,
        DATABASE_REPLICA_URL="postgres://postgres@127.0.0.1:6432/wallet",
    )

    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.split() == [primary, "None"]
