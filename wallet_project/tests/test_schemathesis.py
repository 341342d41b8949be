"""The OpenAPI schema tells the truth: Schemathesis generates requests from
/api/schema/, sends them to the real server (bin/web) and checks every answer
against the schema (status codes, bodies, headers, content types), across its
phases: the schema's examples, coverage of its boundaries, fuzzing, and
stateful sequences that follow the links it infers between operations. Zero
failures, in both modes: positive data (what the schema allows) is accepted,
and negative data (what it does not) is refused with a 4xx in the envelope,
never a 500 (`negative_data_rejection` among the checks: the schema is
neither narrower nor wider than what the server reads).

The client's own wallets, a transaction's key and reference and a real
cursor are given to it (test data it cannot invent), and
schemathesis_hooks.py states the two rules a schema cannot: a money request
has its key somewhere, and a transfer's wallets differ.
"""

import os
import re
import subprocess
import sys
import time
import urllib.parse
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.management import call_command

from conftest import make_api_client
from transfers.services import transfer_create
from wallet_project.tests.test_observability_e2e import funded_wallet, web_server  # noqa: F401 (a fixture)

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
# Enough for every phase to reach each operation's interesting cases, short
# enough for the suite (about a minute here).
MAX_EXAMPLES = 30
CONFIG = """
hooks = "wallet_project.tests.schemathesis_hooks"
headers = {{ Authorization = "Token ${{ST_API_KEY}}" }}
request-timeout = 30.0

[generation]
mode = "{mode}"
max-examples = {max_examples}

[checks.positive_data_acceptance]
# 422: a business rule (insufficient balance, a balance limit) refused a
# well-formed movement and stored it FAILED, as the contract says.
expected-statuses = ["2XX", 401, 403, 404, 409, 422, 429]

[checks.negative_data_rejection]
# Schemathesis's own list and 413: a body that breaks a string's maxLength
# by enough is larger than API_MAX_BODY_BYTES, refused whole before it is
# read (code payload_too_large, documented on every operation with a body).
expected-statuses = [400, 401, 403, 404, 405, 406, 409, 413, 415, 422, 428, 429, "5XX"]

[parameters]
id = "{wallet}"
userId = "{user_id}"
idempotency_key = "{key}"
reference = "{reference}"
cursor = "{cursor}"
after = "{after}"
"""


@pytest.fixture(scope="module")
def scene(web_server, django_db_blocker):  # noqa: F811 (the imported fixture)
    """A Treasury client with two funded wallets, one transfer between them,
    and a history cursor the API gave out; emptied afterwards."""
    try:
        with django_db_blocker.unblock():
            api = make_api_client("Treasury client")
            source, destination = funded_wallet("1000000.00", api.user), funded_wallet("0", api.user)
            made = [
                transfer_create(
                    client=api.user,
                    source_wallet_id=source.pk,
                    destination_wallet_id=destination.pk,
                    amount=Decimal("1.00"),
                    idempotency_key=f"seed-{n}",
                    metadata={},
                ).log
                for n in range(2)
            ]
            key, reference = "seed-0", made[0].reference
        page = web_server.request(
            "GET",
            f"/api/wallets/{source.pk}/transactions?limit=1",
            headers={"Authorization": f"Token {api.api_key}"},
        )
        # Events are listed once every writing transaction older than theirs
        # has ended, and this PostgreSQL server is shared with other test runs
        # whose transactions stay open for a whole test: wait for a cursor
        # (a None here was sent as after=None, and Schemathesis failed on it).
        deadline = time.monotonic() + 60
        while True:
            events = web_server.request("GET", "/api/events", headers={"Authorization": f"Token {api.api_key}"})
            after = events.json()["data"]["nextCursor"]
            if after is not None:
                break
            assert time.monotonic() < deadline, "the seed transfers' events were not listed in time"
            time.sleep(0.1)
        next_link = page.json()["data"]["next"]
        cursor = urllib.parse.parse_qs(urllib.parse.urlsplit(next_link).query)["cursor"][0]
        yield {
            "api_key": api.api_key,
            "source": source,
            "destination": destination,
            "key": key,
            "reference": reference,
            "cursor": cursor,
            "after": after,
        }
    finally:
        with django_db_blocker.unblock():
            call_command("flush", interactive=False, verbosity=0)


@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_the_running_service_answers_every_generated_request_as_its_schema_says(web_server, scene, tmp_path, mode):  # noqa: F811
    config = tmp_path / "schemathesis.toml"
    config.write_text(
        CONFIG.format(
            mode=mode,
            max_examples=MAX_EXAMPLES,
            wallet=scene["source"].pk,
            user_id=scene["source"].user_id,
            key=scene["key"],
            reference=scene["reference"],
            cursor=scene["cursor"],
            after=scene["after"],
        )
    )
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "ST_API_KEY": scene["api_key"],
        "ST_SOURCE_WALLET": str(scene["source"].pk),
        "ST_DESTINATION_WALLET": str(scene["destination"].pk),
    }

    run = subprocess.run(  # noqa: S603 (our own tool, our own arguments)
        [
            str(Path(sys.executable).parent / "st"),
            "--config-file",
            str(config),
            "run",
            f"http://127.0.0.1:{web_server.port}/api/schema/",
            "--checks",
            "all",
            "--no-color",
            "--seed",
            "20261130",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )

    assert run.returncode == 0, run.stdout[-15000:] + run.stderr[-3000:]
    # It did test: every operation of the schema, and money moved through
    # the generated requests (the seed transfers left 999998.00).
    selected = re.search(r"Selected: (\d+)/(\d+)", run.stdout)
    tested = re.search(r"Tested: (\d+)", run.stdout)
    assert selected and tested and selected[1] == selected[2] == tested[1], run.stdout[-3000:]
    scene["source"].refresh_from_db()
    assert scene["source"].balance != Decimal("999998.00"), "no generated deposit, withdrawal or transfer settled"
