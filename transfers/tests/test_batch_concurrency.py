"""Batches of payouts under real concurrency: threads on separate
connections through the HTTP API, the real Redis lock and PostgreSQL.

A batch locks its source and every destination in primary-key order, the
order single transfers use, so batches and single transfers on the same
wallets, in both directions, wait for each other and never deadlock; and a
batch key retried at once from many threads settles once.
"""

import random
import uuid
from collections import Counter
from decimal import Decimal

import pytest
from django.db import connection

from reconciliation.services import ledger_discrepancies
from transfers.models import BatchStatus, TransactionLog, TransactionStatus, TransferBatch
from transfers.tests.concurrency import api_client, customer_total, post_transfer, run_concurrently, token_of

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.through_pgbouncer]


def post_batch(token: str, source, payouts: list[tuple], *, atomic: bool, key: str):
    body = {
        "sourceWalletId": str(source.pk),
        "atomic": atomic,
        "transfers": [{"destinationWalletId": str(d.pk), "amount": str(a), "idempotencyKey": k} for d, a, k in payouts],
    }
    return api_client(token).post("/api/transfers/batch", body, format="json", headers={"Idempotency-Key": key})


def deadlocks_detected() -> int:
    """PostgreSQL's count of deadlocks in this database (each one detected
    is an error some transaction got, even if the service retried it)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_force_next_flush()")
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")
        return cursor.fetchone()[0]


def test_batches_and_single_transfers_on_the_same_wallets_in_both_directions_never_deadlock(
    transfer_api, funded_wallet, database_path
):
    wallets = [funded_wallet("500.00") for _ in range(5)]
    token, rng = token_of(transfer_api), random.Random(20)
    total_before = customer_total()
    deadlocks_before = deadlocks_detected()
    calls = []
    for n in range(48):
        source = wallets[n % 5]
        others = [w for w in wallets if w != source]
        if n % 2:
            # A batch from `source` to every other wallet, in a shuffled order:
            # its lock order must not depend on the order given.
            payouts = [(w, Decimal(rng.randint(1, 3000)) / 100, f"p-{uuid.uuid4()}") for w in rng.sample(others, 4)]
            calls.append(
                lambda s=source, p=payouts, a=bool(n % 4 == 1): post_batch(
                    token, s, p, atomic=a, key=f"b-{uuid.uuid4()}"
                )
            )
        else:
            # A single transfer into the source of the next batch: the other direction.
            destination = rng.choice(others)
            amount = Decimal(rng.randint(1, 3000)) / 100
            calls.append(lambda s=destination, d=source, a=amount: post_transfer(token, s, d, a, f"t-{uuid.uuid4()}"))

    answers = run_concurrently(calls, threads=8)

    statuses = Counter(answer.status_code for answer in answers)
    assert set(statuses) <= {201, 422}, [(a.status_code, a.json()) for a in answers if a.status_code not in (201, 422)]
    refusals = {answer.json()["code"] for answer in answers if answer.status_code == 422}
    assert refusals <= {"insufficient_balance", "batch_failed"}
    assert deadlocks_detected() == deadlocks_before
    assert customer_total() == total_before
    assert not TransactionLog.objects.filter(status=TransactionStatus.PENDING).exists()
    assert not TransferBatch.objects.filter(status=BatchStatus.PENDING).exists()
    assert TransferBatch.objects.count() == 24
    assert ledger_discrepancies() == []


def test_one_batch_key_retried_at_once_settles_once(transfer_api, funded_wallet):
    pool = funded_wallet("1000.00")
    destinations = [funded_wallet("0") for _ in range(3)]
    payouts = [(d, Decimal("12.34"), f"p-{uuid.uuid4()}") for d in destinations * 10]
    token, key = token_of(transfer_api), f"batch-{uuid.uuid4()}"

    answers = run_concurrently(
        [lambda: post_batch(token, pool, payouts, atomic=False, key=key) for _ in range(8)], threads=8
    )

    statuses = Counter(answer.status_code for answer in answers)
    assert statuses[201] == 1 and set(statuses) <= {201, 200, 409}, statuses
    settled = next(answer.json()["data"] for answer in answers if answer.status_code == 201)
    for answer in answers:
        if answer.status_code == 200:
            assert answer.headers["Idempotent-Replayed"] == "true"
            assert answer.json()["data"]["payouts"] == settled["payouts"]
        elif answer.status_code == 409:
            assert answer.json()["code"] == "idempotency_key_in_use" and answer.headers["Retry-After"]
    assert TransferBatch.objects.count() == 1
    assert TransactionLog.objects.filter(batch__isnull=False, status=TransactionStatus.COMPLETED).count() == 30
    pool.refresh_from_db()
    assert pool.balance == Decimal("1000.00") - 30 * Decimal("12.34")
    assert ledger_discrepancies() == []
