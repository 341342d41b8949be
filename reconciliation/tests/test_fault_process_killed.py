"""A process doing a transfer is killed with SIGKILL mid-flight, or frozen.

The process is real (reconciliation/tests/crashing_client.py, its own Django,
its own PostgreSQL connection and Redis lock), held at a stage of the transfer
and killed there: no finally block, no rollback from the client, a Redis lock
left behind. A client retry or a reconciliation run must finish the job
exactly once. A frozen one (SIGSTOP) must not hold its row locks for good.
"""

import signal
import threading
import uuid
from decimal import Decimal

import psycopg
import pytest
from django.db import connection

from reconciliation.tests.faults import (
    admin_connection,
    assert_books_balance,
    balances,
    idle_in_transaction_timeout_ms,
    kill_process,
    outcome_of,
    post_money,
    reconcile_now,
    retry_until_lock_expires,
    start_client_that_hangs,
    stop_process,
)
from transfers.models import TransactionLog, TransactionStatus
from transfers.tests.concurrency import api_client, token_of

# The contract holds straight to PostgreSQL and through PgBouncer alike.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.through_pgbouncer]

# How long the killed process's Redis lock outlives it: short, so the test
# sees both the 409 it causes and the retry that succeeds once it expires.
LOCK_TIMEOUT_SECONDS = 3

# stage the process is killed at: the log it leaves behind
KILL_OUTCOMES = {
    "after_pending_log": TransactionStatus.PENDING,
    "inside_settle": TransactionStatus.PENDING,
    "after_settle_commit": TransactionStatus.COMPLETED,
}


def start_movement_that_hangs(stage: str, *, client, amount: str, key: str, wallets: list, log_path):
    """Start a transfer (two wallets) or a deposit (one) in another process;
    return it and its backend pid once it has reached `stage`."""
    return start_client_that_hangs(
        stage, client, amount, key, *(str(wallet.pk) for wallet in wallets),
        log_path=log_path, lock_timeout=LOCK_TIMEOUT_SECONDS,
    )  # fmt: skip


@pytest.mark.parametrize("recovery", ["client_retry", "reconcile_command"])
@pytest.mark.parametrize("stage", list(KILL_OUTCOMES))
def test_transfer_whose_process_is_killed_is_finished_exactly_once(
    stage, recovery, treasury_api, funded_wallet, tmp_path
):
    source, destination = funded_wallet("100.00"), funded_wallet("0")
    payload = {"sourceWalletId": str(source.pk), "destinationWalletId": str(destination.pk), "amount": "25.00"}
    key = f"killed-{uuid.uuid4()}"
    process, backend_pid = start_movement_that_hangs(
        stage,
        client=treasury_api.user,
        amount="25.00",
        key=key,
        wallets=[source, destination],
        log_path=tmp_path / "client.log",
    )
    try:
        if stage == "inside_settle":
            # Mid-flight for real: the process holds the wallet rows right now.
            with admin_connection() as admin, pytest.raises(psycopg.errors.LockNotAvailable):
                admin.execute("SELECT 1 FROM wallets WHERE id = %s FOR NO KEY UPDATE NOWAIT", [source.pk])
    except BaseException:
        stop_process(process)
        raise
    kill_process(process, backend_pid)

    log = TransactionLog.objects.get(client=treasury_api.user, idempotency_key=key)
    assert log.status == KILL_OUTCOMES[stage]
    moved = log.status == TransactionStatus.COMPLETED
    assert balances(source, destination) == ([Decimal("75.00"), Decimal("25.00")] if moved else [Decimal("100.00"), 0])

    if recovery == "reconcile_command":
        table = reconcile_now()
        if moved:
            assert "No PENDING transactions to reconcile." in table
        else:
            assert outcome_of(log.reference, table) == "COMPLETED"
        retry = post_money(treasury_api, "/api/transfer", payload, key)
        assert (retry.status_code, retry.headers["Idempotent-Replayed"]) == (200, "true")
    elif moved:
        retry = post_money(treasury_api, "/api/transfer", payload, key)
        assert (retry.status_code, retry.headers["Idempotent-Replayed"]) == (200, "true")
    else:
        # The dead process still holds the key's Redis lock: the contract's
        # 409 with Retry-After, and nothing moves until the lock expires.
        in_use = post_money(treasury_api, "/api/transfer", payload, key)
        assert in_use.status_code == 409, in_use.json()
        assert in_use.json()["code"] == "idempotency_key_in_use"
        assert balances(source, destination) == [Decimal("100.00"), 0]
        retry = retry_until_lock_expires(
            lambda: post_money(treasury_api, "/api/transfer", payload, key), lock_timeout=LOCK_TIMEOUT_SECONDS
        )
        assert retry.status_code == 201, retry.json()

    assert retry.json()["data"]["transactionId"] == str(log.pk)
    log.refresh_from_db()
    assert log.status == TransactionStatus.COMPLETED
    assert TransactionLog.objects.filter(client=treasury_api.user, idempotency_key=key).count() == 1
    assert balances(source, destination) == [Decimal("75.00"), Decimal("25.00")]
    assert_books_balance()


def test_client_frozen_inside_settle_does_not_hold_the_settlement_wallet_for_good(
    treasury_api, funded_wallet, tmp_path
):
    idle_timeout_ms = idle_in_transaction_timeout_ms()
    # What PostgreSQL (or PgBouncer) allows a session that sits idle inside a transaction, and a margin.
    answer_within = idle_timeout_ms / 1000 + 3
    frozen_for, waiting_for = funded_wallet("0"), funded_wallet("0")
    process, _ = start_movement_that_hangs(
        "inside_settle",
        client=treasury_api.user,
        amount="1.00",
        key="frozen",
        wallets=[frozen_for],
        log_path=tmp_path / "client.log",
    )
    # Frozen, not dead: its socket stays open, as after a network cut or a
    # stopped VM, so PostgreSQL sees a session idle in its transaction.
    process.send_signal(signal.SIGSTOP)
    responses, token = [], token_of(treasury_api)

    def deposit_behind_the_frozen_client():
        try:
            api = api_client(token)
            responses.append(post_money(api, f"/api/wallets/{waiting_for.pk}/deposit", {"amount": "5.00"}, "next"))
        finally:
            connection.close()

    other_deposit = threading.Thread(target=deposit_behind_the_frozen_client)
    try:
        other_deposit.start()
        other_deposit.join(answer_within)
        answered_in_time = not other_deposit.is_alive()
    finally:
        stop_process(process)
        other_deposit.join(30)

    assert answered_in_time, f"another deposit still waited after {answer_within:.0f}s behind the frozen client"
    assert responses[0].status_code == 201
