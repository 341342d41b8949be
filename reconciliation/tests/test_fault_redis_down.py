"""Redis refused, hung or killed while money moves.

The contract: money still moves exactly once (PostgreSQL's unique constraint
and row locks are the guard, the Redis lock only an optimisation), the API
answers as usual (201, 200 replays; never a 500), GET /health says Redis is
down with a 503, and nothing is left half-done. The shared Redis is never
touched: the cache is pointed at a closed port or at a redis-server the test
starts, stops and kills itself.
"""

from decimal import Decimal

import pytest

from reconciliation.tests.faults import (
    assert_books_balance,
    balances,
    caches_at,
    interrupt_at,
    post_money,
)
from transfers.models import TransactionLog
from transfers.tests.concurrency import api_client, run_concurrently, token_of

# The contract holds straight to PostgreSQL and through PgBouncer alike.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.through_pgbouncer]


def test_with_redis_unreachable_concurrent_duplicates_move_money_once(unreachable_redis, treasury_api, funded_wallet):
    source, destination = funded_wallet("100.00"), funded_wallet("100.00")
    requests = {
        "a": ("/api/transfer", {"sourceWalletId": str(source.pk), "destinationWalletId": str(destination.pk)}, "30"),
        "b": ("/api/transfer", {"sourceWalletId": str(destination.pk), "destinationWalletId": str(source.pk)}, "12.5"),
        "w": (f"/api/wallets/{source.pk}/withdraw", {}, "10.00"),
    }
    user, token = treasury_api.user, token_of(treasury_api)

    def request(key):
        path, payload, amount = requests[key]
        return lambda: (key, post_money(api_client(token), path, {**payload, "amount": amount}, key))

    # Four copies of each request at the same instant: no Redis lock holds
    # any of them back, so they all reach PostgreSQL together.
    calls = [request(key) for key in requests for _ in range(4)]
    results = run_concurrently(calls, threads=len(calls))

    for key in requests:
        responses = [response for k, response in results if k == key]
        assert sorted(r.status_code for r in responses) == [200, 200, 200, 201], [r.json() for r in responses]
        assert [r.headers.get("Idempotent-Replayed") for r in responses if r.status_code == 200] == ["true"] * 3
        (log,) = TransactionLog.objects.filter(client=user, idempotency_key=key)
        assert {r.json()["data"]["transactionId"] for r in responses} == {str(log.pk)}
    assert balances(source, destination) == [Decimal("72.50"), Decimal("117.50")]
    assert_books_balance()

    health = treasury_api.get("/health")
    assert health.status_code == 503
    assert health.json()["checks"] == {"database": "up", "redis": "down"}
    assert health.json()["code"] == "service_unavailable"


def test_redis_killed_mid_run_never_moves_money_twice(own_redis, settings, monkeypatch, treasury_api, funded_wallet):
    process, url = own_redis
    settings.CACHES = caches_at(settings, url)
    assert treasury_api.get("/health").status_code == 200
    source, destination = funded_wallet("100.00"), funded_wallet("0")
    payload = {"sourceWalletId": str(source.pk), "destinationWalletId": str(destination.pk), "amount": "5.00"}
    user, token = treasury_api.user, token_of(treasury_api)

    def kill_redis():
        process.kill()
        process.wait()

    statuses = {}
    for i in range(8):
        key = f"run-{i}"
        if i == 3:
            # Killed inside this transfer's settle step, while it holds its
            # Redis lock: the release afterwards fails, and must not matter.
            interrupt_at("inside_settle", kill_redis, patch=monkeypatch.setattr)

        # Each request double-tapped: while Redis lives the twin may get 409.
        def tap(key=key):
            return post_money(api_client(token), "/api/transfer", payload, key)

        responses = run_concurrently([tap, tap], threads=2)
        statuses[key] = sorted(r.status_code for r in responses)

    assert process.poll() is not None, "Redis was never killed"
    for codes in statuses.values():
        assert codes.count(201) == 1 and set(codes) <= {200, 201, 409}, statuses
    # Once Redis is gone no lock is taken, so no twin can be told "in use".
    assert all(statuses[f"run-{i}"] == [200, 201] for i in range(4, 8)), statuses
    # A twin told 409 retries: the first result is replayed.
    for key in statuses:
        retry = post_money(treasury_api, "/api/transfer", payload, key)
        assert (retry.status_code, retry.headers["Idempotent-Replayed"]) == (200, "true")
        (log,) = TransactionLog.objects.filter(client=user, idempotency_key=key)
        assert retry.json()["data"]["transactionId"] == str(log.pk)
    assert balances(source, destination) == [Decimal("60.00"), Decimal("40.00")]
    assert_books_balance()
    health = treasury_api.get("/health")
    assert (health.status_code, health.json()["checks"]["redis"]) == (503, "down")
