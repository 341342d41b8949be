"""One client's slow webhook receiver stalls nobody else (issue 25, "one slow
webhook receiver stalls every client's webhooks and reconciliation").

The service as `make start` runs it: beat, the money worker and the webhooks
worker pool (wallet_project/worker.py) as separate processes, on the real
Redis broker and the test database. A receiver on loopback drips its answer
a byte a second, and its client has as many endpoints as the webhooks pool
has processes. Meanwhile another client's webhook arrives within a few
seconds, a PENDING transfer left by a crash is reconciled on schedule, and
the dripping attempt ends at its deadline and is sent again later with the
same webhook-id, never while it is still being sent.
"""

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
import redis
from django.conf import settings

from conftest import make_api_client
from events.tests.receiver import DRIP, Receiver, subscribe
from reconciliation.tests.faults import database_env, stop_process
from reconciliation.tests.test_fault_celery_beat import BROKER_URL, QUEUES, leave_stuck_transfers
from transfers.models import TransactionStatus
from wallets.services import wallet_set_active
from wallets.tests.factories import WalletFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("migrated_groups")]

POOL_SLOTS = 2  # the webhooks pool's processes, and the dripping client's endpoints
DEADLINE_SECONDS = 3  # WEBHOOK_TIMEOUT_SECONDS
RECONCILE_AFTER_SECONDS = 2  # RECONCILE_PENDING_AFTER_SECONDS; beat runs reconciliation every second
# "A few seconds": the deliveries tick is every 0.5 s here.
HONEST_WITHIN_SECONDS = 5
RECONCILED_WITHIN_SECONDS = 5


def service_env(tmp_path: Path) -> dict[str, str]:
    cache = settings.CACHES["default"]
    return {
        **os.environ,
        **database_env(),
        "DJANGO_SECRET_KEY": settings.SECRET_KEY,  # the endpoint secrets are encrypted under it
        "CELERY_BROKER_URL": BROKER_URL,
        "REDIS_URL": cache["LOCATION"],
        "CACHE_KEY_PREFIX": cache["KEY_PREFIX"],
        "CELERY_BEAT_SCHEDULE_FILE": str(tmp_path / "beat-schedule"),
        "WEBHOOK_ALLOW_LOOPBACK": "true",
        "WEBHOOK_DELIVER_EVERY_SECONDS": "0.5",
        "WEBHOOK_TIMEOUT_SECONDS": str(DEADLINE_SECONDS),
        "WEBHOOK_RETRY_BASE_SECONDS": "1",
        "WEBHOOK_RETRY_CAP_SECONDS": "2",
        "RECONCILE_PENDING_AFTER_SECONDS": str(RECONCILE_AFTER_SECONDS),
        "RECONCILE_EVERY_SECONDS": "1",
    }


@contextmanager
def started(command: list[str], env: dict[str, str], log_path: Path) -> Iterator[subprocess.Popen]:
    with open(log_path, "w") as log:
        process = subprocess.Popen(  # noqa: S603 (our own commands)
            command, cwd=settings.BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield process
    finally:
        stop_process(process)


@contextmanager
def the_service(tmp_path: Path) -> Iterator[list[tuple[subprocess.Popen, Path]]]:
    """Beat and both worker pools, as the Procfile starts them."""
    env = service_env(tmp_path)
    python, celery = sys.executable, str(Path(sys.executable).with_name("celery"))
    node = uuid.uuid4().hex[:8]  # node names of this run's own
    commands = {
        "beat": [celery, "-A", "wallet_project", "beat", "--loglevel=INFO"],
        "money": [python, "-m", "wallet_project.worker", "money", "--concurrency=1", "-n", f"money-{node}@%h"],
        "webhooks": [
            *(python, "-m", "wallet_project.worker", "webhooks"),
            *(f"--concurrency={POOL_SLOTS}", "-n", f"webhooks-{node}@%h"),
        ],
    }
    try:
        with ExitStack() as stack:
            processes = [
                (stack.enter_context(started(command, env, tmp_path / f"{name}.log")), tmp_path / f"{name}.log")
                for name, command in commands.items()
            ]
            yield processes
    finally:
        redis.Redis.from_url(BROKER_URL).delete(*QUEUES, "unacked", "unacked_index")


def wait_for(condition, seconds: float, processes, what: str) -> float:
    """Poll until `condition()` holds; the time.monotonic() when it did."""
    deadline = time.monotonic() + seconds
    while not condition():
        for process, log in processes:
            assert process.poll() is None, f"{log.name} died:\n{log.read_text()}"
        assert time.monotonic() < deadline, f"{what} not within {seconds} s"
        time.sleep(0.05)
    return time.monotonic()


def most_at_once(requests, notice_seconds: float = 0.5) -> int:
    """The most requests the receiver was serving at the same moment. A
    request's end is when the receiver noticed the sender hang up: up to
    `notice_seconds` later than it did, while the sender may already be
    sending the next."""
    ends = [(r.ended - notice_seconds if r.ended else float("inf"), -1) for r in requests]
    edges = sorted([(r.started, 1) for r in requests] + ends)
    held = most = 0
    for _, step in edges:
        held += step
        most = max(most, held)
    return most


def test_a_dripping_receiver_stalls_neither_another_clients_webhook_nor_reconciliation(
    monkeypatch, treasury_api, funded_wallet, tmp_path, settings
):
    settings.WEBHOOK_ALLOW_LOOPBACK = True  # to register the receivers; the workers get it from service_env
    slow, honest = Receiver(), Receiver()
    # 57 bytes a second apart: each read waits 1 s, the whole answer a minute.
    slow.script, slow.drip_seconds = [DRIP] * 1000, 1.0
    try:
        dripping = make_api_client("Treasury client")
        for n in range(POOL_SLOTS):
            subscribe(dripping, slow, types=["wallet.frozen"], path=f"/{n}")
        other = make_api_client("Treasury client")
        subscribe(other, honest, types=["wallet.frozen"])
        source, destination = funded_wallet("100.00"), funded_wallet("0")

        with the_service(tmp_path) as processes:
            for _ in range(2):  # 2 events x 2 endpoints: work for every process of the pool
                wallet_set_active(wallet=WalletFactory(owner=dripping.user), is_active=False)
            wait_for(lambda: slow.requests, 60, processes, "the dripping receiver's first request")

            frozen_at = time.monotonic()
            wallet_set_active(wallet=WalletFactory(owner=other.user), is_active=False)
            (stuck,) = leave_stuck_transfers(monkeypatch, treasury_api, source, destination, {"crashed": "10.00"})
            due_at = time.monotonic() + RECONCILE_AFTER_SECONDS
            arrived_at = wait_for(lambda: honest.requests, 60, processes, "the other client's webhook")
            reconciled_at = wait_for(
                lambda: type(stuck).objects.get(pk=stuck.pk).status == TransactionStatus.COMPLETED,
                60,
                processes,
                "reconciliation",
            )
            first = slow.requests[0]
            wait_for(
                lambda: [r for r in slow.requests[1:] if (r.path, r.webhook_id) == (first.path, first.webhook_id)],
                60,
                processes,
                "the retry of the dripping attempt",
            )
            wait_for(lambda: first.ended, 10, processes, "the first dripping attempt's end")

        webhook_delay, reconcile_delay = arrived_at - frozen_at, max(0.0, reconciled_at - due_at)
        print(f"\nother client's webhook after {webhook_delay:.2f} s; reconciled {reconcile_delay:.2f} s after due")
        assert honest.accepted_ids() and webhook_delay < HONEST_WITHIN_SECONDS
        assert reconcile_delay < RECONCILED_WITHIN_SECONDS
        # The dripping attempt ended at its deadline: the sender hung up, long before the answer's end.
        assert first.cut and first.ended - first.started < DEADLINE_SECONDS + 3
        # It was sent again later, with the same webhook-id, never while a copy was still being sent.
        for delivery in {(r.path, r.webhook_id) for r in slow.requests}:
            assert most_at_once([r for r in slow.requests if (r.path, r.webhook_id) == delivery]) == 1
        # The dripping client held one process of the pool at a time (WEBHOOK_MAX_IN_FLIGHT_PER_CLIENT).
        assert most_at_once(slow.requests) == 1
        assert not slow.accepted_ids()
    finally:
        slow.stop()
        honest.stop()
