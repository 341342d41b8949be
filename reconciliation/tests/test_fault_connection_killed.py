"""The database connection dies at each stage of a money movement.

The fault is real: the request's own PostgreSQL backend is terminated with
pg_terminate_backend from a second connection, as a server restart, a
failover or a network cut would do it. Then a client retry with the same key,
or a reconciliation run, must finish the job exactly once.
"""

import uuid
from decimal import Decimal

import pytest
from django.db import OperationalError

from reconciliation.tests.faults import (
    assert_books_balance,
    balances,
    interrupt_at,
    kill_pooled_sessions_under_next_command,
    outcome_of,
    post_money,
    reconcile_now,
    terminate_own_backend,
)
from transfers.models import TransactionLog, TransactionStatus

# The contract holds straight to PostgreSQL and through PgBouncer alike.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.through_pgbouncer]

AMOUNT = Decimal("40.25")

# stage: (what the interrupted request answers, the log it leaves behind)
CRASH_OUTCOMES = {
    "before_pending_log": (503, None),
    "after_pending_log": (503, TransactionStatus.PENDING),
    "inside_settle": (503, TransactionStatus.PENDING),
    # Nothing after the commit needs the database: the client hears 201. A
    # client that lost that answer on the wire retries, and must get a replay.
    "after_settle_commit": (201, TransactionStatus.COMPLETED),
}


def connection_killer(stage: str, database_path: str):
    """The fault at a stage. Through PgBouncer a client holds a server session
    only inside a transaction, and one killed between transactions is replaced
    by the pooler unnoticed (test_pgbouncer.py); so there the sessions die
    under the next command instead, the race a restart under load gives (at
    after_pending_log, the BEGIN: psycopg's "received 2 results")."""
    if database_path == "pgbouncer" and stage in ("before_pending_log", "after_pending_log"):
        return kill_pooled_sessions_under_next_command
    return terminate_own_backend


@pytest.mark.parametrize("recovery", ["client_retry", "reconcile_command"])
@pytest.mark.parametrize("stage", list(CRASH_OUTCOMES))
def test_transfer_whose_connection_is_killed_is_finished_exactly_once(
    stage, recovery, monkeypatch, treasury_api, funded_wallet, database_path
):
    source, destination = funded_wallet("100.00"), funded_wallet("0")
    payload = {"sourceWalletId": str(source.pk), "destinationWalletId": str(destination.pk), "amount": str(AMOUNT)}
    key = f"crash-{uuid.uuid4()}"
    crash_status, left_behind = CRASH_OUTCOMES[stage]
    interrupt_at(stage, connection_killer(stage, database_path), patch=monkeypatch.setattr)

    crashed = post_money(treasury_api, "/api/transfer", payload, key)

    assert crashed.status_code == crash_status, crashed.json()
    if crash_status == 503:
        assert crashed.json()["code"] == "service_unavailable"
        assert crashed.headers["Retry-After"]
    log = TransactionLog.objects.filter(idempotency_key=key).first()
    assert (log.status if log else None) == left_behind
    moved = left_behind == TransactionStatus.COMPLETED
    assert balances(source, destination) == ([Decimal("59.75"), AMOUNT] if moved else [Decimal("100.00"), 0])

    if recovery == "reconcile_command":
        table = reconcile_now()
        if left_behind == TransactionStatus.PENDING:
            assert outcome_of(log.reference, table) == "COMPLETED"
        else:
            assert "No PENDING transactions to reconcile." in table
    settled_before_retry = moved or (left_behind == TransactionStatus.PENDING and recovery == "reconcile_command")

    retry = post_money(treasury_api, "/api/transfer", payload, key)

    assert retry.status_code == (200 if settled_before_retry else 201), retry.json()
    assert retry.headers.get("Idempotent-Replayed") == ("true" if settled_before_retry else None)
    (final,) = TransactionLog.objects.filter(client=treasury_api.user, idempotency_key=key)
    assert final.status == TransactionStatus.COMPLETED
    assert retry.json()["data"]["transactionId"] == str(final.pk)
    if log is not None:
        assert final.pk == log.pk
    assert balances(source, destination) == [Decimal("59.75"), AMOUNT]
    assert_books_balance()


@pytest.mark.parametrize("endpoint", ["deposit", "withdraw"])
def test_deposit_or_withdrawal_killed_inside_settle_is_retried_exactly_once(
    endpoint, monkeypatch, treasury_api, funded_wallet
):
    # These lock the currency's settlement wallet, the hottest row there is:
    # a backend killed while holding it must release it and move nothing.
    wallet = funded_wallet("100.00")
    path, payload, key = f"/api/wallets/{wallet.pk}/{endpoint}", {"amount": "30.00"}, f"crash-{uuid.uuid4()}"
    interrupt_at("inside_settle", terminate_own_backend, patch=monkeypatch.setattr)

    crashed = post_money(treasury_api, path, payload, key)

    assert crashed.status_code == 503, crashed.json()
    assert TransactionLog.objects.get(idempotency_key=key).status == TransactionStatus.PENDING
    assert balances(wallet) == [Decimal("100.00")]

    retry = post_money(treasury_api, path, payload, key)

    assert retry.status_code == 201, retry.json()
    assert balances(wallet) == [Decimal("130.00") if endpoint == "deposit" else Decimal("70.00")]
    assert TransactionLog.objects.get(idempotency_key=key).status == TransactionStatus.COMPLETED
    assert_books_balance()


def test_reconciliation_that_loses_its_connection_mid_settle_leaves_the_log_for_the_next_run(
    monkeypatch, treasury_api, funded_wallet, database_path
):
    source, destination = funded_wallet("100.00"), funded_wallet("0")
    payload = {"sourceWalletId": str(source.pk), "destinationWalletId": str(destination.pk), "amount": "10.00"}
    interrupt_at("after_pending_log", connection_killer("after_pending_log", database_path), patch=monkeypatch.setattr)
    assert post_money(treasury_api, "/api/transfer", payload, "stuck").status_code == 503
    # Now the reconciler's own backend dies while it holds the wallet rows.
    interrupt_at("inside_settle", terminate_own_backend, patch=monkeypatch.setattr)

    with pytest.raises(OperationalError):
        reconcile_now()

    log = TransactionLog.objects.get(idempotency_key="stuck")
    assert log.status == TransactionStatus.PENDING
    assert balances(source, destination) == [Decimal("100.00"), 0]

    assert outcome_of(log.reference, reconcile_now()) == "COMPLETED"
    assert balances(source, destination) == [Decimal("90.00"), Decimal("10.00")]
    assert_books_balance()
