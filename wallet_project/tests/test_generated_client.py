"""The schema is the SDK (docs/api.md, "Generating a client"): a client
generated from the served /api/schema/ by openapi-python-client (pinned in
requirements-dev.txt) type-checks with `mypy --strict` under a day-one script
written against it alone (generated_client_day_one.py), and that script runs
against the real service (bin/web): wallets, a deposit, a transfer and its
replay, a failed transfer, odd keys, history pages, a batch and the event
feed. Every answer it got is then checked against the schema: its status is
declared, its body and the headers it must carry are what the schema says.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command

from conftest import make_api_client
from wallet_project.tests.openapi import check_answer
from wallet_project.tests.test_observability_e2e import web_server  # noqa: F401 (a fixture)

pytestmark = pytest.mark.django_db

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
# openapi-python-client's configuration: the package's name, and no
# formatting hooks after generation (ruff's formatting is not what is tested).
CONFIG = "post_hooks: []\nproject_name_override: wallet-client\npackage_name_override: wallet_client\n"


@pytest.fixture(scope="module")
def client_key(web_server, django_db_blocker):  # noqa: F811 (the imported fixture)
    """A Treasury client's API key; the database emptied afterwards."""
    try:
        with django_db_blocker.unblock():
            yield make_api_client("Treasury client").api_key
    finally:
        with django_db_blocker.unblock():
            call_command("flush", interactive=False, verbosity=0)


def run(*command: str, cwd: Path, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(  # noqa: S603 (our own tools, our own arguments)
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def test_a_generated_python_client_type_checks_and_runs_day_one_as_the_schema_says(web_server, client_key, tmp_path):  # noqa: F811
    served = web_server.request(
        "GET", "/api/schema/", headers={"Authorization": f"Token {client_key}", "Accept": "application/json"}
    )
    assert served.status == 200, served.body[:500]
    schema = json.loads(served.body)
    (tmp_path / "schema.json").write_bytes(served.body)
    (tmp_path / "config.yml").write_text(CONFIG)

    generated = run(
        str(BIN / "openapi-python-client"),
        *("generate", "--path", "schema.json", "--config", "config.yml", "--meta", "none"),
        cwd=tmp_path,
    )
    assert generated.returncode == 0, generated.stdout + generated.stderr
    # The generator warns of what it could not type; nothing may be left untyped.
    assert "Warning" not in generated.stdout + generated.stderr, generated.stdout + generated.stderr
    shutil.copy(HERE / "generated_client_day_one.py", tmp_path / "day_one.py")

    checked = run(
        str(BIN / "mypy"), "--strict", "--cache-dir", str(tmp_path / ".mypy_cache"), "day_one.py", cwd=tmp_path
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr

    env = {
        **os.environ,
        "PYTHONPATH": str(tmp_path),
        "WALLET_BASE_URL": f"http://127.0.0.1:{web_server.port}",
        "WALLET_API_KEY": client_key,
    }
    ran = run(sys.executable, "day_one.py", cwd=tmp_path, env=env, timeout=180)
    assert ran.returncode == 0, ran.stdout[-5000:] + ran.stderr[-5000:]

    answers = [json.loads(line) for line in ran.stdout.splitlines()]
    for answer in answers:
        check_answer(schema, answer["operation"], answer["method"], answer["status"], answer["body"], answer["headers"])
    statuses = {(a["operation"], a["method"], a["status"]) for a in answers}
    assert {("/api/transfer", "post", 201), ("/api/transfer", "post", 200), ("/api/transfer", "post", 422)} <= statuses
    events = [event for a in answers if a["operation"] == "/api/events" for event in a["body"]["data"]["events"]]
    assert {"deposit.completed", "transfer.completed", "transfer.failed", "batch.finished"} <= {
        event["type"] for event in events
    }


def test_typescript_types_generated_from_the_schema_type_check_a_client_script(web_server, client_key, tmp_path):  # noqa: F811
    # tools/openapi-typescript/check: npm ci of the pinned openapi-typescript and
    # typescript (from the npm registry, which this machine reaches), the types
    # generated from the served schema, and tsc --strict over day_one.ts, which
    # narrows events by type, error data by code and a replay by its header.
    served = web_server.request(
        "GET", "/api/schema/", headers={"Authorization": f"Token {client_key}", "Accept": "application/json"}
    )
    assert served.status == 200, served.body[:500]
    tools = tmp_path / "openapi-typescript"
    # A copy, so that npm's node_modules is never written into the checkout.
    shutil.copytree(HERE.parents[1] / "tools" / "openapi-typescript", tools)
    (tmp_path / "schema.json").write_bytes(served.body)

    checked = run(str(tools / "check"), str(tmp_path / "schema.json"), cwd=tools, timeout=600)

    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "day_one.ts type-checks" in checked.stdout
    assert "wallet.d.ts" in {path.name for path in tools.iterdir()}
