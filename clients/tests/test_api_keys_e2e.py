"""API keys against the service as production runs it: `bin/web` with two
Granian worker processes over real HTTP, PostgreSQL and Redis.

Each worker keeps its own cache of clients (here for a whole minute, so that
only the credentials version can explain a refusal). A key is first used
until both workers have answered it, so both hold it cached; then a change
is made as on-call makes it (a command, the ORM) in this process, and every
request after it, on fresh connections spread over both workers, must be
refused, whichever worker answers.

Then the secrecy of keys: a key used on every kind of endpoint appears
nowhere in a dump of the whole database, nor in the server's log.
"""

import json
import secrets
import subprocess
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from io import StringIO

import pytest
import redis
from django.conf import settings
from django.contrib.auth.models import Group, Permission
from django.core.management import call_command

from clients.api_keys import api_key_issue
from clients.models import ApiKey
from conftest import ensure_migrated_groups, make_api_client
from reconciliation.tests.faults import database_url, free_port
from wallet_project.tests.test_observability_e2e import (
    WebServer,
    parse_log,
    running_web,
    service_env,
)

WEB_WORKERS = 2
# Far longer than the test: a refusal can only come from the version.
CACHE_SECONDS = "60"
# Requests sent at once, on fresh connections, so that both workers take some.
AT_ONCE = 8
# Enough rounds that two workers each answer some; a run that never spreads fails.
MAX_ROUNDS = 25


# The server sees only committed rows: each test commits its own, and is
# flushed after it.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def server(django_db_setup, tmp_path_factory) -> Iterator[WebServer]:
    directory = tmp_path_factory.mktemp("web-keys")
    port = free_port()
    env = service_env(
        HOST="127.0.0.1",
        PORT=str(port),
        WEB_CONCURRENCY=str(WEB_WORKERS),
        API_AUTH_CACHE_SECONDS=CACHE_SECONDS,
        METRICS_TOKEN=secrets.token_urlsafe(32),
        PROMETHEUS_MULTIPROC_DIR=str(directory / "metrics"),
        THROTTLE_RATE_TRANSFERS="1000000/min",
        THROTTLE_RATE_REPLAYS="1000000/min",
        THROTTLE_RATE_READS="1000000/min",
    )
    with running_web(directory, env, workers=WEB_WORKERS) as web:
        yield web


def get(server: WebServer, key: str, path: str):
    return server.request("GET", path, headers={"Authorization": f"Token {key}", "X-Request-ID": str(uuid.uuid4())})


def pids_of(server: WebServer, answers) -> set[int]:
    """The worker processes that answered these requests, from their log lines."""
    wanted = {answer.request_id for answer in answers}
    records, _ = parse_log(server.log_text())
    return {r["pid"] for r in records if r.get("event") == "request" and r["request_id"] in wanted}


def on_every_worker(server: WebServer, key: str, path: str, expected: int) -> list:
    """Rounds of AT_ONCE requests until both workers have answered some; every
    answer must be `expected`. Returns them all."""
    answers = []
    with ThreadPoolExecutor(AT_ONCE) as pool:
        for _ in range(MAX_ROUNDS):
            answers += pool.map(lambda _: get(server, key, path), range(AT_ONCE))
            assert [a.status for a in answers] == [expected] * len(answers), [(a.status, a.body) for a in answers]
            if len(pids_of(server, answers)) == WEB_WORKERS:
                return answers
    pytest.fail(f"{len(answers)} requests never reached both workers: {pids_of(server, answers)}")


# A list by userId: needs wallets.view_wallet, and changes nothing.
READ_PATH = "/api/wallets?userId=7d0e1c5e-8f6a-4a43-9e4f-0e8d6c1f2a10"


def test_a_revoked_key_is_refused_by_every_worker_while_the_other_live_key_works(server):
    api = make_api_client("Transfer client")
    second = api_key_issue(client=api.user, name="rotation").key
    path = READ_PATH
    # Both keys live at once, each cached by both workers.
    on_every_worker(server, api.api_key, path, 200)
    on_every_worker(server, second, path, 200)

    out = StringIO()
    call_command("revoke_api_key", api.api_key[:11], stdout=out)

    refused = on_every_worker(server, api.api_key, path, 401)
    assert {json.loads(a.body)["code"] for a in refused} == {"authentication_failed"}
    on_every_worker(server, second, path, 200)


def test_a_deactivated_client_is_refused_by_every_worker_on_the_next_request(server):
    api = make_api_client("Transfer client")
    path = READ_PATH
    on_every_worker(server, api.api_key, path, 200)

    api.user.is_active = False
    api.user.save()

    on_every_worker(server, api.api_key, path, 401)


def test_a_client_taken_out_of_its_group_is_refused_by_every_worker(server):
    api = make_api_client("Transfer client")
    path = READ_PATH
    on_every_worker(server, api.api_key, path, 200)

    api.user.groups.remove(Group.objects.get(name="Transfer client"))

    on_every_worker(server, api.api_key, path, 403)


def test_a_permission_taken_from_a_group_is_refused_by_every_worker(server):
    group = Group.objects.create(name=f"readers-{uuid.uuid4().hex[:6]}")
    view_wallet = Permission.objects.get(content_type__app_label="wallets", codename="view_wallet")
    group.permissions.add(view_wallet)
    api = make_api_client(group.name)
    path = READ_PATH
    on_every_worker(server, api.api_key, path, 200)

    group.permissions.remove(view_wallet)

    on_every_worker(server, api.api_key, path, 403)


# --- no key in clear, anywhere ------------------------------------------------------------------


def test_a_used_key_is_nowhere_in_the_database_or_the_logs(server):
    ensure_migrated_groups()  # put back after an earlier module's flush
    out = StringIO()
    call_command("create_api_client", f"secret-keeper-{uuid.uuid4().hex[:6]}", "--group", "Treasury client", stdout=out)
    key = out.getvalue().strip()
    auth = {"Authorization": f"Token {key}", "Content-Type": "application/json"}
    user_id = str(uuid.uuid4())

    def send(method, path, body=None, **headers):
        return server.request(
            method, path, headers={**auth, **headers}, body=json.dumps(body).encode() if body is not None else None
        )

    opened = [send("POST", "/api/wallets", {"userId": user_id, "currency": currency}) for currency in ("NGN", "USD")]
    assert [a.status for a in opened] == [201, 201], [a.body for a in opened]
    source, other = (json.loads(a.body)["data"]["id"] for a in opened)
    destination = json.loads(send("POST", "/api/wallets", {"userId": str(uuid.uuid4()), "currency": "NGN"}).body)[
        "data"
    ]["id"]
    deposit = send("POST", f"/api/wallets/{source}/deposit", {"amount": "50.00"}, **{"Idempotency-Key": "dep-1"})
    transfer_body = {"sourceWalletId": source, "destinationWalletId": destination, "amount": "10.00"}
    transfer = send("POST", "/api/transfer", transfer_body, **{"Idempotency-Key": "t-1"})
    reference = json.loads(transfer.body)["data"]["reference"]
    answers = [
        deposit,
        transfer,
        send("POST", "/api/transfer", transfer_body, **{"Idempotency-Key": "t-1"}),  # replay
        send("POST", f"/api/wallets/{source}/withdraw", {"amount": "1.00"}, **{"Idempotency-Key": "w-1"}),
        send("GET", f"/api/wallets/{source}"),
        send("GET", f"/api/wallets?userId={user_id}"),
        send("GET", f"/api/wallets/{source}/transactions"),
        send("GET", "/api/transfer/t-1"),
        send("GET", f"/api/transfer/reference/{reference}"),
        send("POST", "/api/transfer", {"amount": "x"}, **{"Idempotency-Key": "bad"}),  # 400
        send("GET", f"/api/wallets/{other}/nowhere"),  # 404
    ]
    assert [a.status for a in answers] == [201, 201, 200, 201, 200, 200, 200, 200, 200, 400, 404], [
        (a.path, a.status, a.body) for a in answers
    ]
    prefix = ApiKey.objects.get(client__username__startswith="secret-keeper").prefix
    secret_part = key[len(prefix) + 1 :]

    dump = subprocess.run(  # noqa: S603 (fixed arguments)
        ["pg_dump", "--no-owner", "--data-only", "--dbname", database_url()],  # noqa: S607 (PostgreSQL's client, from PATH)
        capture_output=True,
        check=True,
        text=True,
    ).stdout
    log = server.log_text()
    records, _ = parse_log(log)
    assert prefix in dump and any(r.get("key") == prefix for r in records)  # the searches can find
    for text, where in ((dump, "database dump"), (log, "server log")):
        assert key not in text, where
        assert secret_part not in text, where
        assert secret_part[:16] not in text, where
    # Nor in Redis: names and string values of this run's keys.
    store = redis.Redis.from_url(settings.CACHES["default"]["LOCATION"])
    for name in store.scan_iter(f"{settings.CACHES['default']['KEY_PREFIX']}*"):
        value = store.get(name) if store.type(name) == b"string" else b""
        assert secret_part.encode() not in name + value
