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
login page is checked over HTTP.

The server starts with bin/web's default worker count, which must follow
the machine's cores (Granian warns when it exceeds them).
"""

import os
import re
import subprocess
from pathlib import Path

import pytest
from django.conf import settings

from reconciliation.tests.faults import free_port
from wallet_project.tests.test_observability_e2e import START_TIMEOUT, running_web, service_env, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

BASE_DIR = Path(settings.BASE_DIR)
WALKTHROUGH_TIMEOUT = 120


def walkthrough_commands() -> str:
    """The sh blocks of README's "Day one" section, joined in order."""
    readme = (BASE_DIR / "README.md").read_text()
    section = re.search(r"^## Day one\n(.*?)^## ", readme, re.S | re.M)
    assert section, 'README.md has no "## Day one" section followed by another'
    blocks = re.findall(r"^```sh\n(.*?)^```", section.group(1), re.S | re.M)
    assert len(blocks) >= 6, blocks
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
    assert '{"type":"TRANSFER","status":"COMPLETED","direction":"DEBIT","amount":"120.50"}' in out
    assert '{"type":"DEPOSIT","status":"COMPLETED","direction":"CREDIT","amount":"500.00"}' in out
    assert out.rstrip().endswith("379.50")  # 500.00 in, 120.50 out


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
