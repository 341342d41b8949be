"""run_with_commit (wallet_project/db/base.py): a transaction's last statement
goes to the server with its COMMIT, in one round trip, and a failure still
rolls the whole transaction back, raised as the same Django error as before,
at the atomic block's end (transfers/tests/test_round_trips.py pins the
transfer's round trips)."""

from decimal import Decimal

import psycopg
import pytest
from django.db import IntegrityError, connection, transaction

from wallet_project.db.base import fetch, run, run_with_commit

pytestmark = pytest.mark.django_db(transaction=True)

SET_BALANCE = "UPDATE wallets SET balance = %s WHERE id = %s"
OFF = psycopg.pq.PipelineStatus.OFF


def balance(wallet) -> Decimal:
    wallet.refresh_from_db()
    return wallet.balance


def test_the_statement_is_held_for_the_commit_and_committed_with_it(funded_wallet):
    wallet = funded_wallet("10.00")

    with transaction.atomic():
        run(connection, SET_BALANCE, [Decimal("9.00"), wallet.pk])
        run_with_commit(connection, SET_BALANCE, [Decimal("7.00"), wallet.pk])
        # In the pipeline, unanswered: the commit sends what is left and waits once.
        assert connection.connection.pgconn.pipeline_status != OFF

    assert connection.connection.pgconn.pipeline_status == OFF
    assert balance(wallet) == Decimal("7.00")


def test_its_error_is_raised_by_the_commit_and_the_whole_transaction_rolls_back(funded_wallet):
    wallet = funded_wallet("10.00")

    # A customer wallet below zero breaks the balance CHECK.
    with pytest.raises(IntegrityError) as raised, transaction.atomic():
        run(connection, SET_BALANCE, [Decimal("9.00"), wallet.pk])
        run_with_commit(connection, SET_BALANCE, [Decimal("-1.00"), wallet.pk])

    # The driver's error behind Django's, as engine.retrying reads its SQLSTATE.
    assert raised.value.__cause__.sqlstate == "23514"
    assert balance(wallet) == Decimal("10.00")
    assert connection.get_autocommit() and not connection.faulted
    assert connection.connection.pgconn.pipeline_status == OFF
    assert fetch(connection, "SELECT 1", []) == [(1,)]


@pytest.mark.parametrize("then", ["statement_cursor", "cursor"])
def test_a_statement_after_it_sends_it_first_and_meets_its_error(funded_wallet, then):
    wallet = funded_wallet("10.00")

    with pytest.raises(IntegrityError), transaction.atomic():
        run_with_commit(connection, SET_BALANCE, [Decimal("-1.00"), wallet.pk])
        if then == "cursor":
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
        else:
            fetch(connection, "SELECT 1", [])
        pytest.fail("the statement after it ran on a failed transaction")

    assert balance(wallet) == Decimal("10.00")
    assert fetch(connection, "SELECT 1", []) == [(1,)]


def test_an_error_after_it_in_the_block_rolls_it_back(funded_wallet):
    wallet = funded_wallet("10.00")

    with pytest.raises(ZeroDivisionError), transaction.atomic():
        run_with_commit(connection, SET_BALANCE, [Decimal("7.00"), wallet.pk])
        1 / 0  # noqa: B018

    assert balance(wallet) == Decimal("10.00")
    assert connection.connection.pgconn.pipeline_status == OFF


def test_outside_a_transaction_it_simply_runs(funded_wallet):
    wallet = funded_wallet("10.00")

    run_with_commit(connection, SET_BALANCE, [Decimal("7.00"), wallet.pk])

    assert connection.connection.pgconn.pipeline_status == OFF
    assert balance(wallet) == Decimal("7.00")
