"""The database connection dies at each stage of a batch of payouts.

As for a single transfer (test_fault_connection_killed.py), the fault is
real: the request's PostgreSQL backend is terminated from a second
connection. Then a retry of the batch with the same key, or a reconciliation
run, must finish it exactly once, with the outcomes it would have had.
"""

import time
import uuid
from decimal import Decimal

import pytest

from reconciliation.tests.faults import (
    BATCH_LEFT_BEHIND,
    assert_books_balance,
    balances,
    interrupt_at,
    kill_pooled_sessions_under_next_command,
    outcome_of,
    post_batch,
    post_money,
    reconcile_now,
    terminate_own_backend,
)
from transfers.models import BatchStatus, TransactionLog, TransferBatch
from wallets.tests.factories import WalletFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.through_pgbouncer]

# stage: the batch it leaves behind (None: nothing stored)
LEFT_BEHIND = BATCH_LEFT_BEHIND


def connection_killer(stage: str, database_path: str):
    """As in test_fault_connection_killed.py: through PgBouncer, a session
    killed between transactions is replaced unnoticed, so there the sessions
    die under the next command."""
    if database_path == "pgbouncer" and stage in ("batch_before_pending", "batch_after_pending"):
        return kill_pooled_sessions_under_next_command
    return terminate_own_backend


@pytest.mark.parametrize("atomic", [False, True], ids=["independent", "atomic"])
@pytest.mark.parametrize("recovery", ["client_retry", "reconcile_command"])
@pytest.mark.parametrize("stage", list(LEFT_BEHIND))
def test_batch_whose_connection_is_killed_is_finished_exactly_once_with_the_same_outcomes(
    stage, recovery, atomic, monkeypatch, transfer_api, funded_wallet, database_path
):
    pool, first, second = funded_wallet("100.00"), funded_wallet("0"), funded_wallet("0")
    frozen = WalletFactory(owner=transfer_api.user, is_active=False)
    keys = [f"payout-{uuid.uuid4()}" for _ in range(4)]
    amounts = ["10.00", "20.00", "5.00", "30.00"]
    destinations = [first, second, frozen, first]
    body = {
        "sourceWalletId": str(pool.pk),
        "atomic": atomic,
        "transfers": [
            {"destinationWalletId": str(d.pk), "amount": a, "idempotencyKey": k}
            for d, a, k in zip(destinations, amounts, keys, strict=True)
        ],
    }
    # What the batch must end as, however it got there.
    if atomic:
        expected = [("FAILED", "batch_failed")] * 2 + [("FAILED", "wallet_inactive"), ("FAILED", "batch_failed")]
        final_balances = [Decimal("100.00"), 0, 0]
        final_status, answer_status = BatchStatus.FAILED, 422
    else:
        expected = [("COMPLETED", ""), ("COMPLETED", ""), ("FAILED", "wallet_inactive"), ("COMPLETED", "")]
        final_balances = [Decimal("40.00"), Decimal("40.00"), Decimal("20.00")]
        final_status, answer_status = BatchStatus.PARTIALLY_COMPLETED, 201
    key = f"batch-{uuid.uuid4()}"
    interrupt_at(stage, connection_killer(stage, database_path), patch=monkeypatch.setattr)

    crashed = post_batch(transfer_api, body, key)
    if database_path == "pgbouncer":
        # kill_pooled_sessions_under_next_command lets the stopped sessions
        # die 0.3 s after the fault: the test's own reads below must not be
        # handed one of them by the pooler (a flake of the harness, not of
        # the service, whose request already got its 503).
        time.sleep(0.5)

    left = TransferBatch.objects.filter(client=transfer_api.user, idempotency_key=key).first()
    if LEFT_BEHIND[stage] is None:
        assert crashed.status_code == 503 and left is None
        assert not TransactionLog.objects.filter(idempotency_key__in=keys).exists()
    elif LEFT_BEHIND[stage] == BatchStatus.PENDING:
        assert crashed.status_code == 503, crashed.json()
        assert crashed.json()["code"] == "service_unavailable" and crashed.headers["Retry-After"]
        assert left.status == BatchStatus.PENDING
        # Every payout recorded PENDING, none moved.
        assert set(left.payouts.values_list("status", flat=True)) == {"PENDING"}
        assert left.payouts.count() == 4
    else:
        # Settled and committed; the answer needed one more read: straight to
        # PostgreSQL that read meets the dead connection (503), through
        # PgBouncer a fresh server session answers it.
        assert crashed.status_code == (503 if database_path == "direct" else answer_status)
        assert left.status == final_status
    moved = left is not None and left.status != BatchStatus.PENDING
    assert balances(pool, first, second) == (final_balances if moved else [Decimal("100.00"), 0, 0])
    log_ids = sorted(map(str, left.payouts.values_list("pk", flat=True))) if left else None

    if recovery == "reconcile_command":
        table = reconcile_now()
        if left is not None and left.status == BatchStatus.PENDING:
            assert outcome_of(f"batch:{left.pk}", table) == final_status
        else:
            assert "No PENDING transactions to reconcile." in table
    settled_before_retry = moved or (left is not None and recovery == "reconcile_command")

    retry = post_batch(transfer_api, body, key)

    assert retry.status_code == (answer_status if not settled_before_retry else (answer_status if atomic else 200))
    assert retry.headers.get("Idempotent-Replayed") == ("true" if settled_before_retry else None)
    data = retry.json()["data"]
    assert [(p["status"], p["errorCode"]) for p in data["payouts"]] == expected
    assert data["status"] == final_status
    (batch,) = TransferBatch.objects.filter(client=transfer_api.user, idempotency_key=key)
    assert str(batch.pk) == data["batchId"]
    if log_ids is not None:
        assert sorted(p["transactionId"] for p in data["payouts"]) == log_ids
    assert balances(pool, first, second) == final_balances
    assert TransactionLog.objects.filter(idempotency_key__in=keys).count() == 4
    assert_books_balance()


def test_retry_of_one_payout_key_settles_its_whole_pending_batch(
    monkeypatch, transfer_api, funded_wallet, database_path
):
    # A payout is never settled alone: an atomic batch must not half-complete.
    pool, first, second = funded_wallet("100.00"), funded_wallet("0"), funded_wallet("0")
    keys = [f"payout-{uuid.uuid4()}" for _ in range(2)]
    body = {
        "sourceWalletId": str(pool.pk),
        "atomic": True,
        "transfers": [
            {"destinationWalletId": str(first.pk), "amount": "10.00", "idempotencyKey": keys[0]},
            {"destinationWalletId": str(second.pk), "amount": "20.00", "idempotencyKey": keys[1]},
        ],
    }
    stage = "batch_after_pending"
    interrupt_at(stage, connection_killer(stage, database_path), patch=monkeypatch.setattr)
    assert post_batch(transfer_api, body, f"batch-{uuid.uuid4()}").status_code == 503

    single = {"sourceWalletId": str(pool.pk), "destinationWalletId": str(first.pk), "amount": "10.00"}
    retried = post_money(transfer_api, "/api/transfer", single, keys[0])

    assert retried.status_code == 201, retried.json()
    assert set(TransactionLog.objects.filter(idempotency_key__in=keys).values_list("status", flat=True)) == {
        "COMPLETED"
    }
    assert TransferBatch.objects.get().status == BatchStatus.COMPLETED
    assert balances(pool, first, second) == [Decimal("70.00"), Decimal("10.00"), Decimal("20.00")]
    assert_books_balance()
