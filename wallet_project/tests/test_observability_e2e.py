"""What on-call sees, proved against the service as production runs it.

`bin/web` (Granian, several worker processes) serves the test database over
real HTTP; transfers, replays and refusals arrive on fresh connections from
several threads, so they land on different workers. Then the evidence is read
back the way on-call reads it: the JSON log lines (one request line and one
money line per request id, nothing secret in them), one /metrics scrape that
must add up every worker, a real Prometheus scraping the service with the
alert rules loaded, and a real Celery worker whose log lines carry the
request id of the request that queued its task.

The server and the traffic are set up once for the module (starting the
processes is what costs); each test checks one property of that traffic, and
the Celery test uses only the server.
"""

import http.client
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
import urllib.parse
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import django_guid
import pytest
import redis
import yaml
from django.conf import settings
from django.core.management import call_command
from prometheus_client.parser import text_string_to_metric_families

from conftest import make_api_client
from reconciliation.tasks import verify_ledger
from reconciliation.tests.faults import database_env, free_port, stop_process
from transfers.models import TransactionLog
from transfers.services import deposit_create
from transfers.tests.concurrency import token_of
from wallet_project.celery import app as celery_app
from wallets.tests.factories import WalletFactory

# The test database must exist for the server to use. The tests themselves
# never query it: the traffic's wallets are committed at module scope (the
# server's processes see only committed rows) and flushed when it ends.
pytestmark = pytest.mark.django_db

BASE_DIR = Path(settings.BASE_DIR)
PROMETHEUS_CONFIG_DIR = BASE_DIR / "ops" / "prometheus"
PROMETHEUS = shutil.which("prometheus")

WEB_WORKERS = 2
TRANSFERS = 40
REPLAYS = 3
# Fresh connections from this many threads at once: enough that every worker
# accepts some of them, few enough for a 2-core machine.
CLIENT_THREADS = 8
# Far above any healthy run on a busy 2-core machine: a hang fails, a slow run passes.
START_TIMEOUT = 60.0
REQUEST_TIMEOUT = 30.0

# A Redis database for the broker (as the crash tests use), and a queue name
# of this run's own in it: no other worker takes this test's task.
BROKER_URL = os.environ.get("CRASH_TESTS_BROKER_URL", "redis://127.0.0.1:6379/13")

# Request ids: a load balancer's (kept), and one that is not a safe token (replaced).
LOAD_BALANCER_ID = "lb-7f3a-00012"
UNSAFE_ID = 'lb 7f3a "00012"'
PROCESS_REQUEST_ID = "lb-from-the-process-environment"
# A line feed, then a JSON line of the client's, then a Unicode line separator.
FORGING_PATH = "/api/transfer/x%0A%7B%22level%22%3A%22ERROR%22%2C%22forged%22%3Atrue%7D%E2%80%A8%7B%22forged%22%3A1%7D"

# The fields every JSON line carries (settings.LOGGING).
JSON_LINE_FIELDS = {"time", "level", "logger", "pid", "request_id", "message"}


# --- the web server, started as production starts it ----------------------------------


@dataclass
class Answer:
    """One HTTP exchange: what was sent with which request id, and what came back."""

    request_id: str
    method: str
    path: str
    status: int
    headers: http.client.HTTPMessage
    body: bytes
    # For a money request: the outcome its money_movement line must report,
    # and what it asked for.
    outcome: str | None = None
    idempotency_key: str | None = None
    amount: str | None = None

    def json(self) -> dict:
        return json.loads(self.body)


@dataclass
class WebServer:
    port: int
    process: subprocess.Popen
    log_path: Path
    metrics_token: str
    multiproc_dir: Path

    def request(
        self, method: str, path: str, *, headers: dict | None = None, body: bytes | None = None, **expected
    ) -> Answer:
        """One request on a connection of its own (Connection: close), so the
        next one may be accepted by another worker."""
        headers = {"Connection": "close", **(headers or {})}
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=REQUEST_TIMEOUT)
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            return Answer(
                request_id=headers.get("X-Request-ID", ""),
                method=method,
                path=path,
                status=response.status,
                headers=response.headers,
                body=response.read(),
                **expected,
            )
        finally:
            connection.close()

    def scrape(self, token: str | None) -> Answer:
        return self.request("GET", "/metrics", headers={"Authorization": f"Bearer {token}"} if token else {})

    def log_text(self) -> str:
        return self.log_path.read_text()

    def worker_pids(self) -> set[int]:
        """The processes Granian forked: the children of the Granian process,
        which bin/web runs beside nginx (its edge), wherever in bin/web's tree."""
        tree = descendants(self.process.pid)
        granian = {pid for pid, ppid in tree.items() if ppid == self.process.pid and runs(pid, "granian")}
        return {pid for pid, ppid in tree.items() if ppid in granian}


def parent_pids() -> dict[int, int]:
    """pid -> parent pid of every process visible in /proc."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat[stat.rindex(")") + 2 :].split()[1])
    return parents


def descendants(root: int) -> dict[int, int]:
    """Every process below `root`, at any depth: pid -> parent pid."""
    parents = parent_pids()
    below: dict[int, int] = {}
    frontier = {root}
    while frontier:
        frontier = {pid for pid, ppid in parents.items() if ppid in frontier and pid not in below}
        below.update((pid, parents[pid]) for pid in frontier)
    return below


def runs(pid: int, program: str) -> bool:
    """Whether process `pid` runs `program`: its executable or script is
    named so (Granian: python .../bin/granian), or, for nginx, which retitles
    its processes, its title says so ("nginx: master process ...")."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return False
    if argv[0].startswith(f"{program}: "):
        return True
    return any(Path(arg).name == program for arg in argv[:2])


def wait_for(condition: Callable[[], object], *, what: str, timeout: float, log: Path | None = None):
    """Poll until `condition()` is truthy and return it; fail naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            tail = f"\n--- {log} ---\n{log.read_text()[-5000:]}" if log and log.exists() else ""
            pytest.fail(f"{what}: not within {timeout:.0f}s{tail}")
        time.sleep(0.1)


def health_is_ok(server: WebServer) -> bool:
    assert server.process.poll() is None, f"bin/web exited ({server.process.returncode}):\n{server.log_text()}"
    try:
        return server.request("GET", "/health").status == 200
    except OSError:
        return False


def service_env(**overrides: str) -> dict[str, str]:
    """A production start's environment (DEBUG off, a real secret key, JSON
    logs) on the test database and this run's Redis key prefix."""
    cache = settings.CACHES["default"]
    env = {
        **os.environ,
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        **database_env(),
        "REDIS_URL": cache["LOCATION"],
        # The same keys as this test process: the web workers read what the
        # Celery worker records (reconciliation/records.py).
        "CACHE_KEY_PREFIX": cache["KEY_PREFIX"],
        "CELERY_BROKER_URL": BROKER_URL,
        "LOG_FORMAT": "json",
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
        "PYTHONUNBUFFERED": "1",
        # collectstatic has not run in a test checkout (it has in production):
        # whitenoise's warning about it would be the one non-JSON Python line.
        "PYTHONWARNINGS": "ignore:No directory at:UserWarning",
        **overrides,
    }
    env.pop("DJANGO_ENV", None)
    return env


@contextmanager
def running_web(directory: Path, env: dict[str, str], *, workers: int | None = None) -> Iterator[WebServer]:
    """bin/web with `env` (service_env's, with HOST and PORT), its output in
    directory/web.log, once /health answers (and `workers` Granian workers
    have started, when given); stopped when the block ends. The one way the
    suite starts the real server."""
    log_path = directory / "web.log"
    # O_APPEND: the workers share the file, and each line is one append.
    with open(log_path, "ab") as log:
        process = subprocess.Popen(  # noqa: S603 (our own script)
            [str(BASE_DIR / "bin" / "web")],
            cwd=BASE_DIR,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = WebServer(
        int(env["PORT"]), process, log_path, env.get("METRICS_TOKEN", ""), Path(env["PROMETHEUS_MULTIPROC_DIR"])
    )
    try:
        wait_for(lambda: health_is_ok(server), what="GET /health answering 200", timeout=START_TIMEOUT, log=log_path)
        if workers:
            # /health answers as soon as one worker is up; a spread needs all.
            wait_for(
                lambda: server.log_text().count("Started worker-") >= workers,
                what=f"{workers} Granian workers started",
                timeout=START_TIMEOUT,
                log=log_path,
            )
        yield server
    finally:
        stop_process(process)


@pytest.fixture(scope="module")
def web_server(django_db_setup, tmp_path_factory) -> Iterator[WebServer]:
    """bin/web with WEB_WORKERS Granian workers on a free port, its output in a file."""
    directory = tmp_path_factory.mktemp("web")
    port = free_port()
    metrics_token = secrets.token_urlsafe(32)
    env = service_env(
        HOST="127.0.0.1",
        PORT=str(port),
        WEB_CONCURRENCY=str(WEB_WORKERS),
        METRICS_TOKEN=metrics_token,
        PROMETHEUS_MULTIPROC_DIR=str(directory / "metrics"),
        # Far above this traffic: the limits have tests of their own.
        THROTTLE_RATE_TRANSFERS="1000000/min",
        THROTTLE_RATE_REPLAYS="1000000/min",
        THROTTLE_RATE_READS="1000000/min",
        # A variable named as a header's CGI key: Granian copies the process
        # environment into every environ, and wallet_project/wsgi.py takes it
        # out again (test_the_process_environment_is_not_request_data).
        HTTP_X_REQUEST_ID=PROCESS_REQUEST_ID,
    )
    with running_web(directory, env, workers=WEB_WORKERS) as server:
        yield server


# --- the traffic -------------------------------------------------------------------------


@dataclass
class Traffic:
    server: WebServer
    token: str
    client_name: str
    metadata_secret: str
    admin_password: str
    transfers: list[Answer]
    replays: list[Answer]
    insufficient_balance: Answer
    key_reused: Answer
    load_balancer_request_id: Answer
    unsafe_request_id: Answer
    forged_line: Answer
    admin_login: list[Answer]
    log_lines: list[dict] = field(default_factory=list)
    other_lines: list[str] = field(default_factory=list)

    @property
    def money_requests(self) -> list[Answer]:
        return [*self.transfers, *self.replays, self.insufficient_balance, self.key_reused]

    @property
    def all_requests(self) -> list[Answer]:
        return [
            *self.money_requests,
            self.load_balancer_request_id,
            self.unsafe_request_id,
            self.forged_line,
            *self.admin_login,
        ]


def funded_wallet(amount: str, owner):
    """A customer wallet of `owner` holding `amount`, put there by its
    owner's real deposit (as the conftest fixture does, at module scope)."""
    wallet = WalletFactory(owner=owner)
    if Decimal(amount):
        deposit_create(
            client=owner,
            wallet_id=wallet.pk,
            amount=Decimal(amount),
            idempotency_key=f"fund-{uuid.uuid4()}",
            metadata={},
        )
    return wallet


def post_transfer(
    server: WebServer, token: str, source, destination, amount: str, key: str, metadata: dict, outcome: str
) -> Answer:
    body = {
        "sourceWalletId": str(source.pk),
        "destinationWalletId": str(destination.pk),
        "amount": amount,
        "metadata": metadata,
    }
    return server.request(
        "POST",
        "/api/transfer",
        headers={
            "Authorization": f"Token {token}",
            "Content-Type": "application/json",
            "Idempotency-Key": key,
            "X-Request-ID": str(uuid.uuid4()),
        },
        body=json.dumps(body).encode(),
        outcome=outcome,
        idempotency_key=key,
        amount=amount,
    )


def failed_admin_login(server: WebServer, password: str) -> list[Answer]:
    """A wrong password through the admin's login form, CSRF token and all, so
    that django-axes records the failure (and logs it)."""
    form = server.request("GET", "/admin/login/", headers={"X-Request-ID": str(uuid.uuid4())})
    cookie = form.headers["Set-Cookie"].split(";", 1)[0]
    csrf = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', form.body).group(1).decode()
    login = server.request(
        "POST",
        "/admin/login/",
        headers={
            "X-Request-ID": str(uuid.uuid4()),
            "Cookie": cookie,
            "Content-Type": "application/x-www-form-urlencoded",
        },
        body=urllib.parse.urlencode(
            {"username": "on-call", "password": password, "csrfmiddlewaretoken": csrf, "next": "/admin/"}
        ).encode(),
    )
    return [form, login]


def parse_log(text: str) -> tuple[list[dict], list[str]]:
    """(the JSON objects, the lines that are not one)."""
    records, others = [], []
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            others.append(line)
            continue
        if isinstance(record, dict):
            records.append(record)
        else:
            others.append(line)
    return records, others


@pytest.fixture(scope="module")
def traffic(web_server, django_db_blocker) -> Iterator[Traffic]:
    """TRANSFERS transfers at once from several threads, then REPLAYS replays
    and a reused key, one transfer from an empty wallet, a load balancer's
    request id (not a UUID), an unsafe request id, a path that tries to write
    a log line of its own, and a failed admin login."""
    try:
        with django_db_blocker.unblock():
            api = make_api_client("Treasury client")
            token, client_name = token_of(api), api.user.get_username()
            # Four pairs: the transfers queue on a few wallet rows, not on one.
            pairs = [(funded_wallet("1000.00", api.user), funded_wallet("0", api.user)) for _ in range(4)]
            empty, payee = funded_wallet("0", api.user), funded_wallet("0", api.user)
            # Left alone by the traffic, for the tests that send requests of their own.
            spare_pair = (funded_wallet("100.00", api.user), funded_wallet("0", api.user))
        answered = send_traffic(web_server, token, client_name, pairs, empty, payee)
        answered.spare_pair = spare_pair
        yield answered
    finally:
        # What a transactional test's teardown does: the next tests start
        # from an empty database.
        with django_db_blocker.unblock():
            call_command("flush", interactive=False, verbosity=0)


def send_traffic(server: WebServer, token: str, client_name: str, pairs: list, empty, payee) -> Traffic:
    """The requests of the `traffic` fixture, and the log lines they caused."""
    metadata_secret = f"cvv-{secrets.token_hex(8)}"
    metadata = {"note": "loan payout", "cardSecret": metadata_secret}
    admin_password = f"pw-{secrets.token_hex(8)}"

    def transfer(index: int) -> Answer:
        amount = f"{1 + index}.{index % 100:02d}"
        source, destination = pairs[index % len(pairs)]
        return post_transfer(server, token, source, destination, amount, f"e2e-{index}", metadata, "completed")

    def replay(index: int, first: Answer) -> Answer:
        source, destination = pairs[index % len(pairs)]
        key = first.idempotency_key
        return post_transfer(server, token, source, destination, first.amount, key, metadata, "replayed")

    with ThreadPoolExecutor(CLIENT_THREADS) as pool:
        first_wave = [pool.submit(transfer, index) for index in range(TRANSFERS)]
        failing = pool.submit(post_transfer, server, token, empty, payee, "5.00", "e2e-empty", {}, "failed")
        transfers = [future.result() for future in first_wave]
        insufficient_balance = failing.result()
        # Once their first requests have answered: the same keys again.
        replays = [pool.submit(replay, index, first) for index, first in enumerate(transfers[:REPLAYS])]
        reused = pool.submit(
            post_transfer, server, token, *pairs[0], "999.99", transfers[0].idempotency_key, {}, "refused"
        )
        replays = [future.result() for future in replays]
        key_reused = reused.result()
    lookup = f"/api/transfer/{transfers[0].idempotency_key}"
    load_balancer_request_id = server.request(
        "GET", lookup, headers={"Authorization": f"Token {token}", "X-Request-ID": LOAD_BALANCER_ID}
    )
    unsafe_request_id = server.request(
        "GET", lookup, headers={"Authorization": f"Token {token}", "X-Request-ID": UNSAFE_ID}
    )
    forged_line = server.request(
        "GET", FORGING_PATH, headers={"Authorization": f"Token {token}", "X-Request-ID": str(uuid.uuid4())}
    )
    admin_login = failed_admin_login(server, admin_password)

    recorded = Traffic(
        server=server,
        token=token,
        client_name=client_name,
        metadata_secret=metadata_secret,
        admin_password=admin_password,
        transfers=transfers,
        replays=replays,
        insufficient_balance=insufficient_balance,
        key_reused=key_reused,
        load_balancer_request_id=load_balancer_request_id,
        unsafe_request_id=unsafe_request_id,
        forged_line=forged_line,
        admin_login=admin_login,
    )
    answered = [(answer.path, answer.status) for answer in recorded.all_requests]
    expected = [
        *[("/api/transfer", 201)] * TRANSFERS,
        *[("/api/transfer", 200)] * REPLAYS,
        ("/api/transfer", 422),
        ("/api/transfer", 422),
        (lookup, 200),
        (lookup, 200),
        (FORGING_PATH, 404),
        ("/admin/login/", 200),
        ("/admin/login/", 200),
    ]
    assert answered == expected, [answer.body[:300] for answer in recorded.all_requests]
    # Every request has answered, so every line it causes is written: the
    # request line is the last thing each request logs.
    wanted = {answer.headers["X-Request-ID"] for answer in recorded.all_requests}

    def all_lines_written() -> bool:
        records, _ = parse_log(server.log_text())
        return wanted <= {record.get("request_id") for record in records if record.get("event") == "request"}

    wait_for(all_lines_written, what="a request line for every request", timeout=10, log=server.log_path)
    recorded.log_lines, recorded.other_lines = parse_log(server.log_text())
    return recorded


def lines_of(traffic: Traffic, request_id: str, event: str) -> list[dict]:
    return [line for line in traffic.log_lines if line.get("request_id") == request_id and line.get("event") == event]


def samples(exposition: str) -> dict[tuple[str, frozenset], float]:
    """{(sample name, labels): value} of a Prometheus text exposition."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
    }


def sample(scraped: dict, name: str, **labels: str) -> float:
    return scraped.get((name, frozenset(labels.items())), 0.0)


# --- request ids and log lines ----------------------------------------------------------


def test_every_response_returns_the_request_id_it_was_sent(traffic):
    given = [answer for answer in traffic.all_requests if answer is not traffic.unsafe_request_id]

    assert [answer.headers["X-Request-ID"] for answer in given] == [answer.request_id for answer in given]
    assert len({answer.request_id for answer in given}) == len(given)


def test_a_load_balancers_request_id_is_kept_echoed_and_logged(traffic):
    answer = traffic.load_balancer_request_id

    assert answer.headers["X-Request-ID"] == LOAD_BALANCER_ID
    (line,) = lines_of(traffic, LOAD_BALANCER_ID, "request")
    assert (line["path"], line["status"]) == (answer.path, 200)


def test_an_unsafe_request_id_is_replaced_and_the_replacement_logged(traffic):
    answer = traffic.unsafe_request_id
    replacement = answer.headers["X-Request-ID"]

    assert re.fullmatch(r"[0-9a-f]{32}", replacement), replacement
    (line,) = lines_of(traffic, replacement, "request")
    assert (line["path"], line["status"]) == (answer.path, 200)
    # The client's text is not repeated anywhere.
    assert UNSAFE_ID not in traffic.server.log_text()


def test_a_path_cannot_write_a_log_line_of_its_own(traffic):
    """The path holds a line feed, a JSON object and a Unicode line separator:
    its request line is still one line, the path inside it as sent."""
    (line,) = lines_of(traffic, traffic.forged_line.request_id, "request")

    assert line["path"] == urllib.parse.unquote(FORGING_PATH)
    assert not [record for record in traffic.log_lines if record.get("forged")]
    assert not [text for text in traffic.other_lines if "forged" in text]
    # No line holds a break that a line reader other than "\n" would split on.
    text = traffic.server.log_text()
    assert len(text.splitlines()) == text.count("\n")


def test_each_money_request_logs_one_request_line_and_one_money_movement_line(traffic):
    for answer in traffic.money_requests:
        (request_line,) = lines_of(traffic, answer.request_id, "request")
        (money_line,) = lines_of(traffic, answer.request_id, "money_movement")
        assert request_line["logger"] == "wallet.requests"
        assert {key: request_line[key] for key in ("method", "path", "view", "status", "client")} == {
            "method": "POST",
            "path": "/api/transfer",
            "view": "transfer-create",
            "status": answer.status,
            "client": traffic.client_name,
        }
        assert request_line["duration_ms"] >= money_line.get("duration_ms", 0)

        assert money_line["logger"] == "wallet.transfers"
        assert money_line["type"] == "TRANSFER"
        assert money_line["outcome"] == answer.outcome, (money_line, answer.body)
        assert money_line["client"] == traffic.client_name
        assert money_line["idempotency_key"] == answer.idempotency_key
        if answer.outcome == "refused":
            # Nothing stored: no transaction to name.
            assert answer.json()["code"] == money_line["error_code"] == "idempotency_key_reused"
            assert "transaction_id" not in money_line
            continue
        data = answer.json()["data"]
        assert (money_line["transaction_id"], money_line["reference"]) == (data["transactionId"], data["reference"])
        assert money_line["currency"] == "NGN"
        if answer.outcome != "replayed":
            assert money_line["amount"] == answer.amount

    # A replay names the transaction its key settled the first time.
    for replay, first in zip(traffic.replays, traffic.transfers[:REPLAYS], strict=True):
        assert replay.json()["data"]["transactionId"] == first.json()["data"]["transactionId"]
        assert replay.headers["Idempotent-Replayed"] == "true"
    assert traffic.insufficient_balance.json()["code"] == "insufficient_balance"
    (failed_line,) = lines_of(traffic, traffic.insufficient_balance.request_id, "money_movement")
    assert failed_line["error_code"] == "insufficient_balance"


def test_the_log_is_json_lines_written_by_several_worker_processes(traffic):
    # Every line is JSON: Django's and the service's, and Granian's own about
    # its workers (bin/web gives it ops/granian-logging.json).
    assert traffic.other_lines == []
    for line in traffic.log_lines:
        assert line.keys() >= JSON_LINE_FIELDS, line
    assert any(
        line["logger"].startswith("_granian") and "Started worker-" in line["message"] for line in traffic.log_lines
    )

    ids = {answer.request_id for answer in traffic.money_requests}
    money_lines = [line for line in traffic.log_lines if line.get("request_id") in ids]
    pids = Counter(line["pid"] for line in money_lines if line.get("event") == "money_movement")
    assert len(pids) >= 2, f"every money request went to one worker: {pids}"
    # They are Granian's workers, not one process that changed its id.
    assert set(pids) <= traffic.server.worker_pids()


def test_no_token_password_or_metadata_reaches_the_log(traffic):
    log = traffic.server.log_text()
    # The secrets did go through the server: the metadata was stored (the
    # read answers it back), and django-axes logged the failed login.
    assert traffic.load_balancer_request_id.json()["data"]["metadata"]["cardSecret"] == traffic.metadata_secret
    login = traffic.admin_login[1]
    assert b"Please enter the correct" in login.body
    (failure,) = [line for line in traffic.log_lines if line["logger"].startswith("axes")]
    assert failure["request_id"] == login.request_id
    assert "login failure" in failure["message"]

    for secret in (traffic.token, traffic.server.metrics_token, traffic.admin_password, traffic.metadata_secret):
        assert secret not in log
    assert "cardSecret" not in log


def test_a_key_sent_where_it_does_not_belong_is_logged_without_its_secret(traffic):
    """A client that pastes its key into a path, or sends it as its request
    id (a safe token, so echoed), finds only the key's public prefix in the
    log (settings.LOG_REDACT_PATTERN)."""
    server, key = traffic.server, traffic.token
    prefix = key[: len("wk_") + 8]  # its public part (clients/api_keys.py)
    auth = {"Authorization": f"Token {key}"}

    in_path = server.request("GET", f"/api/transfer/{key}", headers=auth)
    as_id = server.request("GET", "/api/events", headers={**auth, "X-Request-ID": key})

    assert in_path.status == 404 and as_id.status == 200
    # A worker writes its request line as the answer goes out: wait for both.
    wait_for(
        lambda: (
            f"/api/transfer/{prefix}_[redacted]" in server.log_text()
            and f'"request_id":"{prefix}_[redacted]"' in server.log_text()
        ),
        what="both request lines, the key cut back to its prefix",
        timeout=REQUEST_TIMEOUT,
        log=server.log_path,
    )
    assert key not in server.log_text()


# --- metrics ------------------------------------------------------------------------------


def test_metrics_need_the_bearer_token(traffic):
    server = traffic.server

    without = server.scrape(None)
    wrong = server.scrape(secrets.token_urlsafe(32))

    assert (without.status, without.json()["code"]) == (401, "not_authenticated")
    assert without.headers["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert wrong.status == 401
    assert b"wallet_transfers_total" not in without.body + wrong.body


def test_one_scrape_adds_up_the_counters_of_every_worker(traffic):
    answer = traffic.server.scrape(traffic.server.metrics_token)
    assert answer.status == 200
    scraped = samples(answer.body.decode())

    assert sample(scraped, "wallet_transfers_total", type="TRANSFER", outcome="completed", reason="") == TRANSFERS
    assert (
        sample(scraped, "wallet_transfers_total", type="TRANSFER", outcome="failed", reason="insufficient_balance") == 1
    )
    assert sample(scraped, "wallet_transfer_replays_total", type="TRANSFER") == REPLAYS
    assert sample(scraped, "wallet_transfer_key_conflicts_total", type="TRANSFER", code="idempotency_key_reused") == 1
    assert sample(scraped, "wallet_http_requests_total", method="POST", view="transfer-create", status="201") == (
        TRANSFERS
    )
    assert sample(scraped, "wallet_http_requests_total", method="POST", view="transfer-create", status="200") == (
        REPLAYS
    )
    assert sample(scraped, "wallet_http_requests_total", method="POST", view="transfer-create", status="422") == 2
    # Every transfer that reached the settle step waited for its row locks once.
    assert sample(scraped, "wallet_transfer_lock_wait_seconds_count") == TRANSFERS + 1
    assert sample(scraped, "wallet_dependency_up", component="database") == 1
    assert sample(scraped, "wallet_dependency_up", component="redis") == 1
    assert sample(scraped, "wallet_pending_transfers") == 0

    # The total is right only if it adds up more than one process: the
    # completed transfers were settled by several workers, each with its file.
    ids = {answer.request_id for answer in traffic.transfers}
    settled_by = Counter(
        line["pid"] for line in traffic.log_lines if line.get("request_id") in ids and line["event"] == "money_movement"
    )
    assert len(settled_by) >= 2 and sum(settled_by.values()) == TRANSFERS, settled_by
    files = {path.name for path in traffic.server.multiproc_dir.glob("counter_*.db")}
    assert {f"counter_{pid}.db" for pid in settled_by} <= files


# --- a real Prometheus ----------------------------------------------------------------------


def prometheus_api(port: int, path: str, **params: str) -> dict | None:
    """GET a Prometheus API path; its data, or None while it is not answering."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", f"{path}?{urllib.parse.urlencode(params)}" if params else path)
        response = connection.getresponse()
        body = response.read()
    except OSError:
        return None
    finally:
        connection.close()
    if response.status != 200:
        return None
    return json.loads(body)["data"]


@pytest.fixture
def prometheus(traffic, tmp_path) -> Iterator[int]:
    """Prometheus with ops/prometheus/prometheus.yml, pointed at the test's
    server and token and run every second; its port."""
    if PROMETHEUS is None:
        pytest.skip("the prometheus binary is missing: run bin/ensure-test-tools (make test does)")
    config = yaml.safe_load((PROMETHEUS_CONFIG_DIR / "prometheus.yml").read_text())
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    config["rule_files"] = [str(PROMETHEUS_CONFIG_DIR / name) for name in config["rule_files"]]
    (job,) = config["scrape_configs"]
    token_file = tmp_path / "metrics_token"
    token_file.write_text(traffic.server.metrics_token)
    job["authorization"]["credentials_file"] = str(token_file)
    job["static_configs"] = [{"targets": [f"127.0.0.1:{traffic.server.port}"]}]
    config_path = tmp_path / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(config))

    port = free_port()
    log_path = tmp_path / "prometheus.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(  # noqa: S603 (the installed binary, our arguments)
            [
                PROMETHEUS,
                f"--config.file={config_path}",
                f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for(
            lambda: process.poll() is None and prometheus_api(port, "/api/v1/status/buildinfo"),
            what="Prometheus answering",
            timeout=START_TIMEOUT,
            log=log_path,
        )
        yield port
    finally:
        stop_process(process)


def test_prometheus_loads_the_alert_rules_scrapes_the_service_and_sees_every_worker(traffic, prometheus):
    rules_file = yaml.safe_load((PROMETHEUS_CONFIG_DIR / "alerts.yml").read_text())
    alert_names = [rule["alert"] for group in rules_file["groups"] for rule in group["rules"]]

    def rules_evaluated() -> list | None:
        groups = (prometheus_api(prometheus, "/api/v1/rules") or {}).get("groups", [])
        rules = [rule for group in groups for rule in group["rules"]]
        return groups if rules and all(rule["health"] != "unknown" for rule in rules) else None

    def wallet_target() -> dict | None:
        targets = (prometheus_api(prometheus, "/api/v1/targets") or {}).get("activeTargets", [])
        up = [target for target in targets if target["labels"]["job"] == "wallet" and target["health"] != "unknown"]
        return up[0] if up else None

    def completed_transfers() -> list | None:
        query = 'wallet_transfers_total{type="TRANSFER",outcome="completed"}'
        return (prometheus_api(prometheus, "/api/v1/query", query=query) or {}).get("result")

    groups = wait_for(rules_evaluated, what="every alert rule evaluated", timeout=START_TIMEOUT)
    target = wait_for(wallet_target, what="the wallet target scraped", timeout=START_TIMEOUT)
    (series,) = wait_for(completed_transfers, what="wallet_transfers_total in Prometheus", timeout=START_TIMEOUT)

    # Prometheus lists the groups by name; each group's rules in file order.
    loaded = {group["name"]: group["rules"] for group in groups}
    assert sorted(loaded) == sorted(group["name"] for group in rules_file["groups"])
    rules = [rule for group in rules_file["groups"] for rule in loaded[group["name"]]]
    assert [rule["name"] for rule in rules if rule["type"] == "alerting"] == alert_names
    assert len(alert_names) == 14
    assert [(rule["name"], rule["health"], rule.get("lastError", "")) for rule in rules] == [
        (name, "ok", "") for name in alert_names
    ]
    assert (target["health"], target["lastError"]) == ("up", "")
    assert target["scrapeUrl"] == f"http://127.0.0.1:{traffic.server.port}/metrics"
    assert float(series["value"][1]) == TRANSFERS


# --- the request id inside a Celery task --------------------------------------------------------


def test_a_celery_task_logs_with_the_request_id_it_was_queued_under(web_server, tmp_path):
    queue = f"observability-e2e-{uuid.uuid4().hex[:8]}"
    request_id = str(uuid.uuid4())
    started = time.time()

    # As a view queues a task: inside a request's id (django-guid's middleware
    # sets it), which the task message carries in its headers.
    django_guid.set_guid(request_id)
    try:
        with celery_app.connection_for_write(BROKER_URL) as broker:
            task_id = verify_ledger.apply_async(queue=queue, connection=broker).id
    finally:
        django_guid.clear_guid()

    log_path = tmp_path / "worker.log"
    command = [
        str(Path(sys.executable).with_name("celery")),
        # The Procfile's worker (prefork: the task runs in a child process), with one child.
        *("-A", "wallet_project", "worker", "--concurrency", "1", "--loglevel", "INFO", "--queues", queue),
        *("--hostname", f"{queue}@%h", "--without-gossip", "--without-mingle", "--without-heartbeat"),
    ]
    with open(log_path, "w") as log:
        worker = subprocess.Popen(  # noqa: S603 (our own celery and arguments)
            command,
            cwd=BASE_DIR,
            env=service_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:

        def task_lines() -> list[dict] | None:
            assert worker.poll() is None, f"the worker exited:\n{log_path.read_text()}"
            records, _ = parse_log(log_path.read_text())
            lines = [line for line in records if task_id in line["message"]]
            return lines if any("succeeded" in line["message"] for line in lines) else None

        lines = wait_for(task_lines, what="the task's success logged", timeout=START_TIMEOUT, log=log_path)
    finally:
        stop_process(worker)
        # The queue and the bindings kombu made for it: nothing else uses them.
        redis.Redis.from_url(BROKER_URL).delete(queue, f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}")

    (succeeded,) = [line for line in lines if "succeeded" in line["message"]]
    assert succeeded["logger"] == "celery.app.trace"
    assert succeeded["request_id"] == request_id
    assert succeeded["pid"] != worker.pid, "the task ran in the worker's child process"
    # And what the task recorded reaches the metrics of whichever web worker answers.
    scraped = samples(web_server.scrape(web_server.metrics_token).body.decode())
    assert sample(scraped, "wallet_ledger_last_verify_timestamp_seconds") >= started
    assert sample(scraped, "wallet_ledger_discrepancies") == 0


def post_spare_transfer(traffic: Traffic, headers: list[tuple[str, str]]) -> tuple[int, http.client.HTTPMessage, dict]:
    """POST 20.00 from the spare pair's source with these headers, in this
    order and as written (http.client sends a repeated name twice and an
    underscore as is), besides the token and the content headers."""
    source, destination = traffic.spare_pair
    body = json.dumps({"sourceWalletId": str(source.pk), "destinationWalletId": str(destination.pk), "amount": "20"})
    connection = http.client.HTTPConnection("127.0.0.1", traffic.server.port, timeout=REQUEST_TIMEOUT)
    try:
        connection.putrequest("POST", "/api/transfer")
        for name, value in [
            ("Authorization", f"Token {traffic.token}"),
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
            *headers,
        ]:
            connection.putheader(name, value)
        connection.endheaders(body.encode())
        response = connection.getresponse()
        return response.status, response.headers, json.loads(response.read())
    finally:
        connection.close()


def test_a_repeated_idempotency_header_is_a_400_through_the_real_server(traffic):
    """Granian joins a header sent twice into one value with a comma: the
    service reads that as a list, never as a new key (transfers/serializers.py, key_from_header).
    The last tests in the module move money the counter tests above do not
    expect."""
    source, _ = traffic.spare_pair

    first = post_spare_transfer(traffic, [("Idempotency-Key", "K")])
    twice = post_spare_transfer(traffic, [("Idempotency-Key", "K"), ("Idempotency-Key", "K")])
    other = post_spare_transfer(traffic, [("Idempotency-Key", "K"), ("Idempotency-Key", "L")])
    # Arrives as "jo,in": a well-formed string, still two headers.
    halves = post_spare_transfer(traffic, [("Idempotency-Key", '"jo'), ("Idempotency-Key", 'in"')])

    assert first[0] == 201
    assert (twice[0], twice[2]["code"]) == (400, "validation_error")
    assert (other[0], other[2]["code"]) == (400, "validation_error")
    assert (halves[0], halves[2]["code"]) == (400, "validation_error")
    source.refresh_from_db()  # committed by the server: visible in the test's transaction
    assert source.balance == Decimal("80.00")


def test_the_process_environment_is_not_request_data(traffic):
    """The server was started with HTTP_X_REQUEST_ID in its environment: a
    request that sends no X-Request-ID gets an id of its own, not that."""
    answer = traffic.server.request("GET", "/health")

    assert answer.headers["X-Request-ID"] not in ("", PROCESS_REQUEST_ID)


def test_a_header_with_an_underscore_never_reaches_django(traffic):
    """CGI names Idempotency_Key and Idempotency-Key alike (HTTP_IDEMPOTENCY_KEY):
    a header whose name holds an underscore must neither stand in for the real
    header nor override it, in either order; the same for the request id.
    bin/web's nginx edge drops them (ops/nginx.conf)."""
    alone = post_spare_transfer(traffic, [("Idempotency_Key", "under-1")])
    after = post_spare_transfer(traffic, [("Idempotency-Key", "hyphen-1"), ("Idempotency_Key", "under-2")])
    before = post_spare_transfer(traffic, [("Idempotency_Key", "under-3"), ("Idempotency-Key", "hyphen-1")])
    request_id = post_spare_transfer(
        traffic, [("Idempotency-Key", "hyphen-2"), ("X_Request_ID", "lb-from-an-underscore")]
    )
    stored = set(TransactionLog.objects.filter(idempotency_key__startswith="under-").values_list("idempotency_key"))

    # No key at all: the underscore one was not read.
    assert (alone[0], alone[2]["code"]) == (400, "validation_error")
    assert "idempotencyKey" in alone[2]["errors"]
    assert after[0] == 201
    # The same key as `after`, whatever came before it: a replay.
    assert before[0] == 200 and before[1]["Idempotent-Replayed"] == "true"
    assert before[2]["data"]["transactionId"] == after[2]["data"]["transactionId"]
    assert request_id[0] == 201
    assert request_id[1]["X-Request-ID"] != "lb-from-an-underscore"
    assert stored == set()
