"""The process handling a batch of payouts is killed with SIGKILL mid-flight.

As for a single transfer (test_fault_process_killed.py), the process is real
(crashing_client.py: its own Django, PostgreSQL connection and Redis lock),
held at a stage of the batch and killed there: no finally block, no rollback
from the client, the batch key's Redis lock left behind. Then a retry of the
batch with the same key, or a reconciliation run as Celery beat starts it,
must finish it exactly once: every payout COMPLETED or FAILED with the outcome
it would have had, the money moved once, the answer the one an uninterrupted
run of the same batch gives, and the books balanced.
"""

from decimal import Decimal

import psycopg
import pytest

from reconciliation.tasks import verify_ledger
from reconciliation.tests.faults import (
    BATCH_LEFT_BEHIND,
    PayoutBatch,
    admin_connection,
    assert_books_balance,
    batch_answer_shape,
    batch_args,
    kill_process,
    post_batch,
    reconcile_as_beat,
    retry_until_lock_expires,
    start_client_that_hangs,
    stop_process,
)
from transfers.models import BatchStatus, TransferBatch

# The contract holds straight to PostgreSQL and through PgBouncer alike.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.through_pgbouncer]

# How long the killed process's batch lock outlives it: short, so that the
# test sees the 409 it causes and the retry that succeeds once it expires
# (1 s keeps the file near a minute). Between the lock's acquisition and the
# 409 check there are only a commit, the kill and a few reads: tens of
# milliseconds, well inside it.
LOCK_TIMEOUT_SECONDS = 1


@pytest.mark.parametrize("atomic", [False, True], ids=["independent", "atomic"])
@pytest.mark.parametrize("recovery", ["client_retry", "celery_beat"])
@pytest.mark.parametrize("stage", list(BATCH_LEFT_BEHIND))
def test_batch_whose_process_is_killed_is_finished_exactly_once_with_the_same_outcomes(
    stage, recovery, atomic, transfer_api, funded_wallet, tmp_path
):
    batch = PayoutBatch(funded_wallet, transfer_api.user, atomic=atomic)
    # The same batch on wallets of its own, never interrupted: the answer the
    # interrupted one must end with.
    control = PayoutBatch(funded_wallet, transfer_api.user, atomic=atomic)
    uninterrupted = post_batch(transfer_api, control.body, control.key)
    assert uninterrupted.status_code == control.answer_status, uninterrupted.json()

    process, backend_pid = start_client_that_hangs(
        stage,
        transfer_api.user,
        *batch_args(batch.key, batch.body),
        log_path=tmp_path / "client.log",
        lock_timeout=LOCK_TIMEOUT_SECONDS,
    )
    try:
        if stage == "batch_inside_settle":
            # Mid-flight for real: the process holds the pool wallet's row now.
            with admin_connection() as admin, pytest.raises(psycopg.errors.LockNotAvailable):
                admin.execute("SELECT 1 FROM wallets WHERE id = %s FOR NO KEY UPDATE NOWAIT", [batch.pool.pk])
    except BaseException:
        stop_process(process)
        raise
    kill_process(process, backend_pid)

    left = batch.stored()
    if BATCH_LEFT_BEHIND[stage] is None:
        assert left is None and not batch.logs().exists()
    elif BATCH_LEFT_BEHIND[stage] == BatchStatus.PENDING:
        # Every payout with a destination recorded PENDING; nothing moved.
        assert left.status == BatchStatus.PENDING
        assert list(batch.logs().values_list("status", flat=True)) == ["PENDING"] * batch.log_count
    else:
        assert left.status == batch.final_status
    moved = left is not None and left.status != BatchStatus.PENDING
    assert batch.balances() == (batch.final_balances if moved else [Decimal("100.00"), 0, 0])
    log_ids = sorted(map(str, batch.logs().values_list("pk", flat=True)))

    if recovery == "celery_beat":
        summary = reconcile_as_beat()
        # Beat settles a batch left PENDING, and nothing else.
        assert summary == ({str(batch.final_status): 1} if left is not None and not moved else {})
    settled_before_retry = moved or (left is not None and recovery == "celery_beat")
    if settled_before_retry:
        assert batch.stored().status == batch.final_status
        assert batch.balances() == batch.final_balances
        retry = post_batch(transfer_api, batch.body, batch.key)
        assert retry.headers["Idempotent-Replayed"] == "true"
        assert retry.status_code == (422 if atomic else 200), retry.json()
    else:
        # The dead process still holds the batch key's Redis lock: the
        # contract's 409 with Retry-After, and nothing moves until it expires.
        in_use = post_batch(transfer_api, batch.body, batch.key)
        assert in_use.status_code == 409, in_use.json()
        assert in_use.json()["code"] == "idempotency_key_in_use" and in_use.headers["Retry-After"]
        assert batch.balances() == [Decimal("100.00"), 0, 0]
        retry = retry_until_lock_expires(
            lambda: post_batch(transfer_api, batch.body, batch.key), lock_timeout=LOCK_TIMEOUT_SECONDS
        )
        assert retry.status_code == batch.answer_status, retry.json()
        assert "Idempotent-Replayed" not in retry.headers

    data = retry.json()["data"]
    assert [(p["status"], p["errorCode"]) for p in data["payouts"]] == batch.outcomes
    assert batch_answer_shape(data) == batch_answer_shape(uninterrupted.json()["data"])
    (stored,) = TransferBatch.objects.filter(client=transfer_api.user, idempotency_key=batch.key)
    assert str(stored.pk) == data["batchId"] and stored.status == batch.final_status
    if left is not None:
        # The payouts the dead process recorded are the ones settled: none re-inserted.
        assert sorted(p["transactionId"] for p in data["payouts"] if p["transactionId"]) == log_ids
    assert batch.logs().count() == batch.log_count
    assert batch.balances() == batch.final_balances
    assert_books_balance()
    assert verify_ledger.apply().get() == 0
