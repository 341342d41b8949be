"""A real Celery worker with embedded beat resolves stale PENDING logs alone.

The worker is the production command (`celery -A wallet_project worker -B`,
here consuming both pools' queues, wallet_project/worker.py) on the real
Redis broker and the test database, with the schedule and the age shortened
through the same environment variables production sets.
"""

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

import pytest
import redis
from django.conf import settings

from reconciliation.tests.faults import (
    admin_connection,
    assert_books_balance,
    balances,
    database_env,
    interrupt_at,
    post_money,
    stop_process,
    terminate_own_backend,
    wait_for_backend_exit,
)
from transfers.models import TransactionLog, TransactionStatus

pytestmark = pytest.mark.django_db(transaction=True)

# A Redis database of its own, so that no other worker takes these tasks
# (and this worker no one else's).
BROKER_URL = os.environ.get("CRASH_TESTS_BROKER_URL", "redis://127.0.0.1:6379/13")
RESOLVE_WITHIN_SECONDS = 60
# Every pool's queue (wallet_project/worker.py): the money tasks, the webhook deliveries, the hold expiries.
QUEUES = (settings.CELERY_TASK_DEFAULT_QUEUE, settings.WEBHOOK_QUEUE, settings.HOLDS_QUEUE)


@contextmanager
def worker_with_beat(log_path: Path, **extra_env: str) -> Iterator[subprocess.Popen]:
    """The production worker command, stopped (and its queues emptied) on the
    way out; `extra_env` adds settings (as production's environment would)."""
    cache = settings.CACHES["default"]
    env = {
        **os.environ,
        **database_env(),
        "CELERY_BROKER_URL": BROKER_URL,
        "REDIS_URL": cache["LOCATION"],
        "CACHE_KEY_PREFIX": cache["KEY_PREFIX"],
        "RECONCILE_PENDING_AFTER_SECONDS": "1",
        "RECONCILE_EVERY_SECONDS": "1",
        **extra_env,
    }
    command = [
        str(Path(sys.executable).with_name("celery")),
        *("-A", "wallet_project", "worker", "-B", "--pool", "solo", "--loglevel", "INFO"),
        *("--queues", ",".join(QUEUES)),
        *("--hostname", f"crash-tests-{uuid.uuid4().hex[:8]}@%h"),
        *("--schedule", str(log_path.with_suffix(".beat-schedule"))),
        *("--without-gossip", "--without-mingle", "--without-heartbeat"),
    ]
    with open(log_path, "w") as log:
        worker = subprocess.Popen(  # noqa: S603 (our own celery and arguments)
            command,
            cwd=settings.BASE_DIR,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield worker
    finally:
        stop_process(worker)
        # What beat queued that no worker took, and what a killed worker held
        # unacknowledged: the next run's worker need not redo it.
        redis.Redis.from_url(BROKER_URL).delete(*QUEUES, "unacked", "unacked_index")


def leave_stuck_transfers(monkeypatch, api, source, destination, amounts: dict[str, str]):
    """Transfers whose connection dies after the PENDING log, or inside the
    settle step (the last one): PENDING logs, no money moved."""
    interrupt_at("after_pending_log", terminate_own_backend, times=len(amounts) - 1, patch=monkeypatch.setattr)
    interrupt_at("inside_settle", terminate_own_backend, patch=monkeypatch.setattr)
    for key, amount in amounts.items():
        payload = {"sourceWalletId": str(source.pk), "destinationWalletId": str(destination.pk), "amount": amount}
        assert post_money(api, "/api/transfer", payload, key).status_code == 503
    logs = TransactionLog.objects.filter(idempotency_key__in=amounts)
    assert logs.filter(status=TransactionStatus.PENDING).count() == len(amounts)
    return logs


def wait_until_settled(logs, worker: subprocess.Popen, log_path: Path) -> None:
    deadline = time.monotonic() + RESOLVE_WITHIN_SECONDS
    while logs.filter(status=TransactionStatus.PENDING).exists():
        assert worker.poll() is None, f"the worker died:\n{log_path.read_text()}"
        assert time.monotonic() < deadline, f"still PENDING after the wait:\n{log_path.read_text()}"
        time.sleep(0.2)


def wait_for_backend_blocked_on_a_lock(timeout: float = 30.0) -> int:
    """The pid of the first other session on the test database that waits for a row lock."""
    deadline = time.monotonic() + timeout
    with admin_connection() as admin:
        while True:
            row = admin.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
            ).fetchone()
            if row:
                return row[0]
            assert time.monotonic() < deadline, "no session ever waited for the held wallet row"
            time.sleep(0.05)


def test_celery_worker_with_beat_resolves_stale_pending_logs_on_its_own(
    monkeypatch, treasury_api, funded_wallet, tmp_path
):
    source, destination = funded_wallet("100.00"), funded_wallet("0")
    first = leave_stuck_transfers(monkeypatch, treasury_api, source, destination, {"a": "10.00", "b": "20.00"})
    log_path = tmp_path / "worker.log"

    with worker_with_beat(log_path) as worker:
        wait_until_settled(first, worker, log_path)

    # Two logs that turn stale 0.1 s apart may fall to one tick or to two.
    re_driven = re.findall(r"reconciliation re-drove (\d+) stale PENDING logs", log_path.read_text())
    assert sum(map(int, re_driven)) == 2, log_path.read_text()
    assert sorted(first.values_list("status", flat=True)) == [TransactionStatus.COMPLETED] * 2
    assert balances(source, destination) == [Decimal("70.00"), Decimal("30.00")]
    assert_books_balance()


def test_celery_worker_killed_mid_task_leaves_the_work_to_the_next_worker(
    monkeypatch, treasury_api, funded_wallet, tmp_path
):
    source, destination = funded_wallet("100.00"), funded_wallet("0")
    stuck = leave_stuck_transfers(monkeypatch, treasury_api, source, destination, {"a": "10.00", "b": "20.00"})

    with admin_connection() as blocker:
        # Hold the source wallet's row: the worker's task blocks inside the
        # settle transaction, holding the first log's row lock, and dies there.
        blocker.execute("BEGIN")
        blocker.execute("SELECT 1 FROM wallets WHERE id = %s FOR NO KEY UPDATE", [source.pk])
        with worker_with_beat(tmp_path / "killed-worker.log") as worker:
            backend = wait_for_backend_blocked_on_a_lock()
            os.killpg(worker.pid, signal.SIGKILL)
            assert worker.wait(10) == -signal.SIGKILL
        blocker.execute("ROLLBACK")
    wait_for_backend_exit(backend)
    assert stuck.filter(status=TransactionStatus.PENDING).count() == 2
    assert balances(source, destination) == [Decimal("100.00"), 0]

    log_path = tmp_path / "worker.log"
    with worker_with_beat(log_path) as worker:
        wait_until_settled(stuck, worker, log_path)

    assert sorted(stuck.values_list("status", flat=True)) == [TransactionStatus.COMPLETED] * 2
    assert balances(source, destination) == [Decimal("70.00"), Decimal("30.00")]
    assert_books_balance()
