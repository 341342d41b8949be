"""Reconciliation racing client retries of the same stuck keys, and itself.

Real threads, real row locks: each racer has its own PostgreSQL connection.
What proves "applied once" is the books (balances against the expected sums,
verify_ledger's invariants) and a count of who settled each log, taken at the
settle step every racer goes through.
"""

import time
from collections import Counter
from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command

from reconciliation.services import logs_reconcile, stale_pending_logs
from reconciliation.tasks import reconcile_stale_pending
from reconciliation.tests.faults import (
    assert_books_balance,
    balances,
    interrupt_at,
    post_money,
    terminate_own_backend,
)
from transfers import engine, services
from transfers.models import Movement, TransactionLog, TransactionStatus, TransactionType
from transfers.tests.concurrency import api_client, run_concurrently, token_of

# The contract holds straight to PostgreSQL and through PgBouncer alike.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.through_pgbouncer]


def record_who_settles(monkeypatch) -> list:
    """The log ids the settle step moved money for, one entry per time."""
    settled = []
    settle_once = engine._settle_once

    def recording(log_id, **kwargs):
        log, settled_now = settle_once(log_id, **kwargs)
        if settled_now:
            settled.append(log_id)
        return log, settled_now

    monkeypatch.setattr(engine, "_settle_once", recording)
    # Hold the row locks a little longer, so that the racers really meet on them.
    interrupt_at("inside_settle", lambda: time.sleep(0.02), times=10**6, patch=monkeypatch.setattr)
    return settled


def expected_balances(start: list[Decimal], moves: list[tuple[int, int, Decimal]]) -> list[Decimal]:
    result = list(start)
    for source, destination, amount in moves:
        result[source] -= amount
        result[destination] += amount
    return result


def test_reconciliation_racing_client_retries_and_itself_applies_each_log_once(
    monkeypatch, treasury_api, funded_wallet
):
    wallets = [funded_wallet("500.00") for _ in range(3)]
    # Around a ring, so every settle contends with others for a wallet row.
    moves = [(i % 3, (i + 1) % 3, Decimal(f"{i + 1}.50")) for i in range(8)]
    requests = [
        (
            f"stuck-{i}",
            {"sourceWalletId": str(wallets[s].pk), "destinationWalletId": str(wallets[d].pk), "amount": str(amount)},
        )
        for i, (s, d, amount) in enumerate(moves)
    ]
    # Each first attempt loses its connection inside the settle transaction.
    interrupt_at("inside_settle", terminate_own_backend, times=len(requests), patch=monkeypatch.setattr)
    for key, payload in requests:
        assert post_money(treasury_api, "/api/transfer", payload, key).status_code == 503
    stuck = {log.idempotency_key: log for log in TransactionLog.objects.filter(status=TransactionStatus.PENDING)}
    assert sorted(stuck) == sorted(key for key, _ in requests)
    settled = record_who_settles(monkeypatch)

    token = token_of(treasury_api)

    def client_retry(key, payload):
        return lambda: post_money(api_client(token), "/api/transfer", payload, key)

    def reconcile_service():
        return [o.outcome for o in logs_reconcile(logs=stale_pending_logs(older_than=timedelta(0)))]

    def reconcile_command():
        out = StringIO()
        call_command("reconcile", "--older-than", "0", stdout=out)
        return [line.split()[1] for line in out.getvalue().splitlines() if line.startswith("TXN-")]

    retries = [client_retry(key, payload) for key, payload in requests]
    calls = [*retries, reconcile_service, reconcile_service, reconcile_command]
    *responses, by_service_a, by_service_b, by_command = run_concurrently(calls, threads=len(calls))

    assert Counter(settled) == {log.pk: 1 for log in stuck.values()}
    assert {r.status_code for r in responses} <= {200, 201}, [r.json() for r in responses]
    for (key, _), response in zip(requests, responses, strict=True):
        assert response.json()["data"]["transactionId"] == str(stuck[key].pk)
    # Every log was settled by exactly one racer: a retry that answered 201,
    # or a reconciler that reported COMPLETED; everyone else saw it done.
    reconciled = (by_service_a + by_service_b + by_command).count("COMPLETED")
    assert [r.status_code for r in responses].count(201) + reconciled == len(requests)
    assert TransactionLog.objects.filter(status=TransactionStatus.COMPLETED, idempotency_key__in=stuck).count() == 8
    assert balances(*wallets) == expected_balances([Decimal("500.00")] * 3, moves)
    assert_books_balance()


def test_reconcile_task_run_twice_at_once_applies_each_log_once(monkeypatch, settings, funded_wallet):
    settings.RECONCILE_PENDING_AFTER = timedelta(0)
    wallets = [funded_wallet("1000.00") for _ in range(4)]
    client = wallets[0].owner
    moves = [(i % 4, (i + 1 + i // 4) % 4, Decimal(f"{i % 7 + 1}.25")) for i in range(30)]
    moves = [(s, d, amount) for s, d, amount in moves if s != d]
    # What a crash right after step 3 leaves behind: committed PENDING logs.
    for i, (s, d, amount) in enumerate(moves):
        services._record_pending(
            client=client,
            idempotency_key=f"stuck-{i}",
            fingerprint=f"{i:064d}",
            movement=Movement(TransactionType.TRANSFER, amount, {}, wallets[s].pk, wallets[d].pk),
        )
    settled = record_who_settles(monkeypatch)

    summaries = run_concurrently([reconcile_stale_pending, reconcile_stale_pending], threads=2)

    assert sum(summary.get("COMPLETED", 0) for summary in summaries) == len(moves)
    assert Counter(Counter(settled).values()) == {1: len(moves)}
    assert TransactionLog.objects.filter(
        client=client, type="TRANSFER", status=TransactionStatus.COMPLETED
    ).count() == len(moves)
    assert balances(*wallets) == expected_balances([Decimal("1000.00")] * 4, moves)
    assert_books_balance()
