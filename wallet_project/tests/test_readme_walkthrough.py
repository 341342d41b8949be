"""The README's "Day one" walkthrough, run as written against the service as
`make start` runs it, so the README cannot drift from the product.

The commands are the README's own: every ```sh block of the "Day one"
section, in order, run by bash with `set -euo pipefail` (each curl carries
--fail-with-body, so a 4xx fails the run), against `bin/web` on a free port
(BASE, which the README's first line defaults to :8000) serving the test
database; `manage.py create_api_client` in the walkthrough makes its fresh API
client there. The person's part (createsuperuser, the admin and the docs in a
browser) is interactive; the browser tests cover it
(transfers/tests/test_admin_e2e.py), and here the docs' redirect to the
login page is checked over HTTP. "Webhooks on your machine" runs after it
in the same shell, with beat and the webhooks worker pool beside bin/web,
and its example receiver gets the deposit's event.

The server starts with bin/web's default worker count, which must follow
the machine's cores (Granian warns when it exceeds them).
"""

import json
import os
import re
import subprocess
import sys
import uuid
from contextlib import ExitStack
from pathlib import Path

import pytest
import redis
from django.conf import settings

from events.models import Event
from reconciliation.tests.faults import free_port
from reconciliation.tests.test_webhook_isolation_e2e import started
from wallet_project.tests.test_observability_e2e import START_TIMEOUT, running_web, service_env, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

BASE_DIR = Path(settings.BASE_DIR)
WALKTHROUGH_TIMEOUT = 120


# Between "Day one" and "Webhooks on your machine": wait until the commit
# horizon (events/outbox.py) has passed Day one's events. A new endpoint's
# events are those of the transactions that end after the horizon it is made
# at, and on this PostgreSQL server, shared with other test runs, their open
# transactions can hold the horizon back behind Day one's deposit: the
# endpoint would then count that deposit as its own, and the README's
# receiver (--count 1) could take it and leave the README's deposit to fail.
# On a machine of one's own the horizon passes at once.
HORIZON_WAIT_SECONDS = 300
_HORIZON_PASSED = """
import os, time, psycopg
deadline = time.monotonic() + float(os.environ["HORIZON_WAIT_SECONDS"])
passed = "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint > (SELECT coalesce(max(txid), 0) FROM events)"
with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
    while not conn.execute(passed).fetchone()[0]:
        assert time.monotonic() < deadline, "Day one's events stayed behind the commit horizon"
        time.sleep(0.1)
"""
HORIZON_PASSED_DAY_ONE = f"HORIZON_WAIT_SECONDS={HORIZON_WAIT_SECONDS} {sys.executable} - <<'PY'{_HORIZON_PASSED}PY"


def walkthrough_commands(title: str = "Day one", at_least: int = 6) -> str:
    """The sh blocks of the README's section `title`, joined in order."""
    readme = (BASE_DIR / "README.md").read_text()
    section = re.search(rf"^## {title}\n(.*?)^## ", readme, re.S | re.M)
    assert section, f'README.md has no "## {title}" section followed by another'
    blocks = re.findall(r"^```sh\n(.*?)^```", section.group(1), re.S | re.M)
    assert len(blocks) >= at_least, blocks
    return "\n".join(blocks)


@pytest.fixture
def web_server(migrated_groups, tmp_path):
    """bin/web as the Procfile runs it, WEB_CONCURRENCY left to its default."""
    port = free_port()
    env = service_env(HOST="127.0.0.1", PORT=str(port), PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics"))
    env.pop("WEB_CONCURRENCY", None)
    with running_web(tmp_path, env) as server:
        yield server, env


def test_readme_day_one_walkthrough_runs_as_written(web_server):
    server, env = web_server
    script = "set -euo pipefail\n" + walkthrough_commands()

    run = subprocess.run(  # noqa: S603
        ["bash", "-c", script],  # noqa: S607
        cwd=BASE_DIR,
        env={**env, "BASE": f"http://127.0.0.1:{server.port}"},
        capture_output=True,
        text=True,
        timeout=WALKTHROUGH_TIMEOUT,
    )

    assert run.returncode == 0, f"stdout:\n{run.stdout}\nstderr:\n{run.stderr}\nweb log:\n{server.log_text()[-3000:]}"
    out = run.stdout
    assert "Deposit completed" in out
    assert re.search(r"HTTP/1.1 201 Created.*?Transfer completed successfully", out, re.S)
    # The retry: the same transaction again, marked as a replay.
    assert re.search(r"HTTP/1.1 200 OK.*?idempotent-replayed: true.*?Transaction already processed", out, re.S | re.I)
    first, replay = re.findall(r'"transactionId":"([0-9a-f-]+)","status":"COMPLETED"', out)[-2:]
    assert first == replay
    assert '"COMPLETED"' in out  # the lookup by reference
    row = '{{"type":"{}","status":"COMPLETED","direction":"{}","amount":"{}","balanceAfter":"{}"}}'
    assert row.format("TRANSFER", "DEBIT", "120.50", "379.50") in out
    assert row.format("DEPOSIT", "CREDIT", "500.00", "500.00") in out
    assert "\n379.50\n" in out  # her balance: 500.00 in, 120.50 out
    # Her statement of today, as JSON and as CSV.
    assert '{"openingBalance":"0.00","totalIn":"500.00","totalOut":"120.50","closingBalance":"379.50"}' in out
    assert "date,reference,id,type,description,moneyIn,moneyOut,balance" in out
    assert out.rstrip().endswith(",Closing balance,,,379.50")


def test_api_docs_send_a_browser_to_the_admin_login(web_server):
    server, _ = web_server

    answer = server.request("GET", "/api/docs/", headers={"Accept": "text/html,application/xhtml+xml"})

    assert answer.status == 302
    assert answer.headers["Location"] == "/admin/login/?next=/api/docs/"


def test_default_worker_count_follows_the_cores(web_server):
    server, _ = web_server
    cores = len(os.sched_getaffinity(0))

    wait_for(
        lambda: server.log_text().count("Started worker-") >= cores,
        what=f"{cores} workers started",
        timeout=START_TIMEOUT,
        log=server.log_path,
    )

    assert len(server.worker_pids()) == cores
    assert "higher than the amount of CPU cores" not in server.log_text()


def test_readme_webhooks_section_delivers_to_its_local_receiver(migrated_groups, tmp_path):
    """ "Webhooks on your machine" after "Day one", in the same shell, against
    bin/web, beat and the webhooks worker pool started with
    WEBHOOK_ALLOW_LOOPBACK=true, as the README says; its receiver is the
    README's own (bin/webhook_receiver.py) on a free port."""
    port = free_port()
    env = service_env(
        HOST="127.0.0.1",
        PORT=str(port),
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics"),
        WEBHOOK_ALLOW_LOOPBACK="true",
        CELERY_BEAT_SCHEDULE_FILE=str(tmp_path / "beat-schedule"),
    )
    python, celery = sys.executable, str(Path(sys.executable).with_name("celery"))
    node = uuid.uuid4().hex[:8]
    workers = [
        [celery, "-A", "wallet_project", "beat", "--loglevel=INFO"],
        [python, "-m", "wallet_project.worker", "webhooks", "--concurrency=1", "-n", f"readme-{node}@%h"],
    ]
    script = "\n".join(
        [
            "set -euo pipefail",
            walkthrough_commands(),
            HORIZON_PASSED_DAY_ONE,
            walkthrough_commands("Webhooks on your machine", 2),
        ]
    )
    try:
        with running_web(tmp_path, env) as server, ExitStack() as stack:
            for n, command in enumerate(workers):
                stack.enter_context(started(command, env, tmp_path / f"worker-{n}.log"))
            run = subprocess.run(  # noqa: S603
                ["bash", "-c", script],  # noqa: S607
                cwd=BASE_DIR,
                env={**env, "BASE": f"http://127.0.0.1:{server.port}", "HOOK_PORT": str(free_port())},
                capture_output=True,
                text=True,
                timeout=WALKTHROUGH_TIMEOUT + HORIZON_WAIT_SECONDS,
            )
    finally:
        redis.Redis.from_url(env["CELERY_BROKER_URL"]).delete(settings.WEBHOOK_QUEUE, "unacked", "unacked_index")

    logs = "\n".join((tmp_path / f"worker-{n}.log").read_text()[-2000:] for n in range(len(workers)))
    assert run.returncode == 0, f"stdout:\n{run.stdout}\nstderr:\n{run.stderr}\nworkers:\n{logs}"
    (event_id,) = re.findall(r"^verified deposit\.completed ([0-9a-f-]{36})$", run.stdout, re.M)
    assert Event.objects.filter(pk=event_id, type="deposit.completed").exists()
    shown = json.loads(run.stdout.strip().splitlines()[-1])
    assert shown["isActive"] is True and shown["lastStatusCode"] == 204 and shown["lastError"] == ""
