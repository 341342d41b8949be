"""An idle tick logs nothing at INFO (issue 26: 327 of the 555 lines `make
start` printed in 3.5 minutes were the webhook delivery task beat starts every
2 s, with nothing to do; hold expiries tick every 5 s). Celery's own lines about a task beat starts every
few seconds are left out (wallet_project/log_format.py, QuietTicks); every
other task's stay, and so does a failure."""

import subprocess
import sys
import uuid
from pathlib import Path

import redis
from django.conf import settings

from reconciliation.tests.faults import stop_process
from wallet_project.celery import app as celery_app
from wallet_project.tests.test_observability_e2e import BROKER_URL, START_TIMEOUT, parse_log, service_env, wait_for

DELIVERY = "wallets.tasks.deliver_webhooks"
EXPIRE_HOLDS = "transfers.tasks.expire_holds"
CHAIN = "reconciliation.tasks.chain_ledger"
BASE_DIR = Path(settings.BASE_DIR)


def test_the_frequent_tasks_are_the_quiet_ones():
    # Webhook delivery every 2 s, hold expiry every 5 s, the ledger chain every 10 s.
    assert set(settings.QUIET_TASKS) == {DELIVERY, EXPIRE_HOLDS, CHAIN}


def test_a_worker_running_idle_delivery_and_expiry_ticks_logs_nothing_about_them(tmp_path):
    queue = f"quiet-ticks-{uuid.uuid4().hex[:8]}"
    with celery_app.connection_for_write(BROKER_URL) as broker:
        for _ in range(3):
            celery_app.send_task(DELIVERY, queue=queue, connection=broker)
            celery_app.send_task(EXPIRE_HOLDS, queue=queue, connection=broker)
        # Run after the three (one process, in queue order): its success says they ran.
        last = celery_app.send_task("wallets.tasks.purge_events", queue=queue, connection=broker).id

    log_path = tmp_path / "worker.log"
    command = [
        str(Path(sys.executable).with_name("celery")),
        *("-A", "wallet_project", "worker", "--concurrency", "1", "--loglevel", "INFO", "--queues", queue),
        *("--hostname", f"{queue}@%h", "--without-gossip", "--without-mingle", "--without-heartbeat"),
    ]
    with open(log_path, "w") as log:
        worker = subprocess.Popen(  # noqa: S603 (our own celery and arguments)
            command, cwd=BASE_DIR, env=service_env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:

        def finished() -> list[dict] | None:
            assert worker.poll() is None, f"the worker exited:\n{log_path.read_text()}"
            records, _ = parse_log(log_path.read_text())
            done = any(last in line["message"] and "succeeded" in line["message"] for line in records)
            return records if done else None

        records = wait_for(finished, what="the last task's success logged", timeout=START_TIMEOUT, log=log_path)
    finally:
        stop_process(worker)
        redis.Redis.from_url(BROKER_URL).delete(queue, f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}")

    noisy = (DELIVERY, "webhooks", EXPIRE_HOLDS, "holds")
    assert [line["message"] for line in records if any(word in line["message"] for word in noisy)] == []
    assert any(f"purge_events[{last}] received" in line["message"] for line in records)
