"""Redis refused, hung or killed while a batch of payouts is sent and retried.

As for a single transfer (test_fault_redis_down.py): the Redis lock on the
batch key is only an optimisation, PostgreSQL's unique constraint and the
batch row lock are the guard. So with Redis gone a batch still settles
exactly once, with the outcomes it would have had; copies of it sent at the
same instant, or a retry while Redis is down or after it is back, replay the
first outcome and pay nothing again. The shared Redis is never touched.
"""

import signal
from decimal import Decimal

import pytest

from reconciliation.tests.faults import (
    PayoutBatch,
    assert_books_balance,
    batch_answer_shape,
    caches_at,
    free_port,
    interrupt_at,
    post_batch,
    terminate_own_backend,
)
from transfers.models import BatchStatus, TransferBatch
from transfers.tests.concurrency import api_client, run_concurrently, token_of

# The contract holds straight to PostgreSQL and through PgBouncer alike.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.through_pgbouncer]

ATOMIC = pytest.mark.parametrize("atomic", [False, True], ids=["independent", "atomic"])


def assert_settled_once(batch: PayoutBatch, client, answers) -> None:
    """Every answer is the one batch's, with the outcomes it must have; its
    money moved once; nothing is left PENDING."""
    (stored,) = TransferBatch.objects.filter(client=client, idempotency_key=batch.key)
    assert stored.status == batch.final_status
    for answer in answers:
        data = answer.json()["data"]
        assert data["batchId"] == str(stored.pk)
        assert [(p["status"], p["errorCode"]) for p in data["payouts"]] == batch.outcomes
        assert batch_answer_shape(data) == batch_answer_shape(answers[0].json()["data"])
    assert batch.logs().count() == batch.log_count
    assert batch.balances() == batch.final_balances
    assert_books_balance()


def assert_replayed(batch: PayoutBatch, response) -> None:
    assert response.status_code == (422 if batch.atomic else 200), response.json()
    assert response.headers["Idempotent-Replayed"] == "true"


@ATOMIC
def test_with_redis_unreachable_concurrent_copies_of_a_batch_settle_it_once(
    unreachable_redis, atomic, transfer_api, funded_wallet
):
    batch = PayoutBatch(funded_wallet, transfer_api.user, atomic=atomic)
    token = token_of(transfer_api)

    def send():
        return post_batch(api_client(token), batch.body, batch.key)

    # Four copies at the same instant: no Redis lock holds any back, so all
    # four reach PostgreSQL together and only its constraint and row locks
    # can keep the batch from being paid four times.
    answers = run_concurrently([send] * 4, threads=4)

    first = [a for a in answers if "Idempotent-Replayed" not in a.headers]
    assert len(first) == 1 and first[0].status_code == batch.answer_status, [a.json() for a in answers]
    for replay in (a for a in answers if a is not first[0]):
        assert_replayed(batch, replay)
    # A retry while Redis is still down: the same answer, nothing paid again.
    retry = send()
    assert_replayed(batch, retry)
    assert_settled_once(batch, transfer_api.user, [*answers, retry])


@ATOMIC
@pytest.mark.parametrize("outage", ["refused", "hung"])
def test_batch_cut_short_while_redis_is_down_is_settled_once_by_a_retry_and_replayed_once_redis_is_back(
    outage, atomic, own_redis, settings, monkeypatch, transfer_api, funded_wallet
):
    process, live_url = own_redis
    # Funded while Redis is up: a deposit waits out a hung Redis's timeout.
    batch = PayoutBatch(funded_wallet, transfer_api.user, atomic=atomic)
    if outage == "refused":
        settings.CACHES = caches_at(settings, f"redis://127.0.0.1:{free_port()}/0")
    else:
        settings.CACHES = caches_at(settings, live_url)
        process.send_signal(signal.SIGSTOP)
    assert transfer_api.get("/health").json()["checks"]["redis"] == "down"
    # The database connection dies inside the settle: the batch stays
    # PENDING with every payout recorded, and no lock was taken to protect it.
    interrupt_at("batch_inside_settle", terminate_own_backend, patch=monkeypatch.setattr)

    cut_short = post_batch(transfer_api, batch.body, batch.key)

    assert cut_short.status_code == 503, cut_short.json()
    assert batch.stored().status == BatchStatus.PENDING
    assert batch.balances() == [Decimal("100.00"), 0, 0]

    # Retried while Redis is still down: settled now, once.
    settled = post_batch(transfer_api, batch.body, batch.key)
    assert settled.status_code == batch.answer_status, settled.json()
    assert "Idempotent-Replayed" not in settled.headers
    down_again = post_batch(transfer_api, batch.body, batch.key)
    assert_replayed(batch, down_again)

    # Redis is back (the same server resumed, or the cache pointed at a live one).
    if outage == "refused":
        settings.CACHES = caches_at(settings, live_url)
    else:
        process.send_signal(signal.SIGCONT)
    assert transfer_api.get("/health").status_code == 200
    back = post_batch(transfer_api, batch.body, batch.key)
    assert_replayed(batch, back)
    assert_settled_once(batch, transfer_api.user, [settled, down_again, back])


@ATOMIC
def test_redis_killed_inside_a_batch_settle_never_pays_twice(
    atomic, own_redis, settings, monkeypatch, transfer_api, funded_wallet
):
    process, url = own_redis
    settings.CACHES = caches_at(settings, url)
    assert transfer_api.get("/health").status_code == 200
    batch = PayoutBatch(funded_wallet, transfer_api.user, atomic=atomic)

    def kill_redis():
        process.kill()
        process.wait()

    # Killed while this batch holds its key's Redis lock, inside the settle
    # transaction: the lock is gone with the server, and that must not matter.
    interrupt_at("batch_inside_settle", kill_redis, patch=monkeypatch.setattr)

    first = post_batch(transfer_api, batch.body, batch.key)

    assert process.poll() is not None, "Redis was never killed"
    assert first.status_code == batch.answer_status, first.json()
    token = token_of(transfer_api)
    # Retries, two at once, with Redis gone: each replays.
    retries = run_concurrently([lambda: post_batch(api_client(token), batch.body, batch.key)] * 2, threads=2)
    for retry in retries:
        assert_replayed(batch, retry)
    assert_settled_once(batch, transfer_api.user, [first, *retries])
    health = transfer_api.get("/health")
    assert (health.status_code, health.json()["checks"]["redis"]) == (503, "down")
