"""wallet_project/db/base.py statement_cursor(): one psycopg cursor per
connection for the transfer protocol's statements, with everything Django's
cursor() gives (query logging, execute wrappers, error translation)."""

import pytest
from django.db import ProgrammingError, connection
from django.test.utils import CaptureQueriesContext

from wallet_project.db.base import DatabaseWrapper

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
