"""The edge bin/web puts in front of Granian (nginx, ops/nginx.conf), proved
against the real server: what nginx answers itself is the API's JSON
envelope with the right status, a body Django can still read reaches Django
(which answers its own 413), slow clients cost nginx connections and never a
Django thread, and the client address Django sees is the TCP peer, whatever
a client writes in the header the edge uses to pass it on.

The underscore headers' test lives with the traffic it uses
(test_observability_e2e.py, test_a_header_with_an_underscore_never_reaches_django).
"""

import contextlib
import json
import os
import re
import secrets
import signal
import socket
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
from axes.models import AccessAttempt
from django.conf import settings

from conftest import make_api_client
from reconciliation.tests.faults import free_port
from wallet_project.edge import ASCII_HEADERS
from wallet_project.tests.test_observability_e2e import (
    WebServer,
    descendants,
    running_web,
    runs,
    service_env,
    wait_for,
)

# The server sees only committed rows (an API client, django-axes' record):
# each test commits its own, and is flushed after it.
pytestmark = pytest.mark.django_db(transaction=True)

# Connections trickling a header line a second (bench/HISTORY.md, 2026-11-30 09:00:
# twelve took every Gunicorn thread), and how long a plain request may take
# meanwhile.
SLOW_CLIENTS = 12
SLOW_ANSWER_SECONDS = 1.0


@pytest.fixture(scope="module")
def server(django_db_setup, tmp_path_factory) -> Iterator[WebServer]:
    directory = tmp_path_factory.mktemp("web-edge")
    env = service_env(
        HOST="127.0.0.1",
        PORT=str(free_port()),
        WEB_CONCURRENCY="2",
        METRICS_TOKEN=secrets.token_urlsafe(32),
        PROMETHEUS_MULTIPROC_DIR=str(directory / "metrics"),
    )
    with running_web(directory, env, workers=2) as web:
        yield web


def raw_exchange(server: WebServer, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send these bytes as they are on a fresh connection; the status, the
    headers (lower-case names) and the body of the answer, read to the close."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, body


def assert_edge_envelope(status: int, headers: dict, body: bytes, expected_status: int, code: str) -> None:
    assert status == expected_status, body
    assert headers["content-type"] == "application/json"
    answer = json.loads(body)
    assert answer["success"] is False
    assert answer["code"] == code
    assert answer["message"]
    # nginx answered: Django would have set a request id.
    assert "x-request-id" not in headers


def test_a_body_above_what_django_reads_is_the_edges_json_413(server):
    body = b"{" + b" " * (2 * 1024 * 1024) + b"}"
    request = (
        b"POST /api/transfer HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body
    )

    assert_edge_envelope(*raw_exchange(server, request), 413, "payload_too_large")


def test_a_body_django_can_read_reaches_django_which_answers_its_own_413(server):
    """Above the API's limit, below DATA_UPLOAD_MAX_MEMORY_SIZE: the edge
    passes it, and Django's answer carries its request id."""
    size = (settings.API_MAX_BODY_BYTES + settings.DATA_UPLOAD_MAX_MEMORY_SIZE) // 2
    api = make_api_client("Transfer client")
    answer = server.request(
        "POST",
        "/api/transfer",
        headers={"Content-Type": "application/json", "Authorization": f"Token {api.api_key}"},
        body=b"{" + b" " * size + b"}",
    )

    assert answer.status == 413
    assert answer.json()["code"] == "payload_too_large"
    assert answer.headers["X-Request-ID"]


def test_an_overlong_uri_is_the_edges_json_414(server):
    request = b"GET /api/" + b"a" * 10_000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"

    assert_edge_envelope(*raw_exchange(server, request), 414, "uri_too_long")


def test_an_overlong_header_is_the_edges_json_431(server):
    request = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 10_000 + b"\r\nConnection: close\r\n\r\n"

    assert_edge_envelope(*raw_exchange(server, request), 431, "headers_too_large")


@pytest.mark.parametrize(
    "request_line",
    [b"GARBAGE", b"GET /health HTTP/1.1 trailing", b"GET /health HTTP/9.9", b"GET /he\x01lth HTTP/1.1"],
)
def test_a_malformed_request_line_is_the_edges_json_400(server, request_line):
    request = request_line + b"\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"

    assert_edge_envelope(*raw_exchange(server, request), 400, "bad_request")


# Granian hands Django "" for each (wallet_project/edge.py, ASCII_HEADERS).
UNREADABLE_VALUES = {"UTF-8": "clé-1".encode(), "Latin-1": "clé-1".encode("latin-1"), "a control byte": b"k\x01ey"}


@pytest.mark.parametrize("value", UNREADABLE_VALUES.values(), ids=UNREADABLE_VALUES.keys())
@pytest.mark.parametrize("name", ASCII_HEADERS)
def test_a_header_the_service_reads_holding_bytes_outside_ascii_is_refused_by_name(server, name, value):
    """Such an Idempotency-Key reached Django empty ("must not be blank"),
    such an Authorization as no key at all; a control byte got Granian's
    bare 400, outside the envelope."""
    api = make_api_client("Transfer client")
    authorization = f"Token {api.api_key}".encode()
    headers = {b"Authorization": authorization, b"Content-Type": b"application/json", name.encode(): value}
    request = b"POST /api/transfer HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\nConnection: close\r\n"
    request += b"".join(b"%s: %s\r\n" % item for item in headers.items()) + b"\r\n{}"

    status, answer_headers, body = raw_exchange(server, request)

    assert_edge_envelope(status, answer_headers, body, 400, "bad_request")
    message = json.loads(body)["message"]
    assert f"the {name} header holds a byte outside printable ASCII" in message
    if name == "Idempotency-Key":
        assert "idempotencyKey field" in message


@pytest.mark.parametrize("raw", [b"\xff", b"\xe9", b"\xc3\xa9"], ids=["not-utf-8", "latin-1", "utf-8"])
@pytest.mark.parametrize("where", ["path", "query"])
def test_a_request_line_holding_bytes_outside_ascii_is_the_edges_json_400_saying_to_percent_encode(server, where, raw):
    """Granian answered the first two with its bare, empty 400; UTF-8 passed,
    though the contract asks for percent-encoding."""
    api = make_api_client("Transfer client")
    target = b"/api/transfer/key-" + raw if where == "path" else b"/api/wallets?limit=" + raw
    request = (
        b"GET " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        b"Authorization: Token " + api.api_key.encode() + b"\r\n\r\n"
    )

    status, headers, body = raw_exchange(server, request)

    assert_edge_envelope(status, headers, body, 400, "bad_request")
    message = json.loads(body)["message"]
    assert "the request line holds a byte outside printable ASCII" in message and "Percent-encode" in message


@pytest.mark.parametrize("name", ["Authorization", "Host"])
def test_a_header_sent_twice_that_may_be_sent_once_is_the_edges_json_400_saying_so(server, name):
    request = (
        b"GET /api/wallets HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Token a\r\nConnection: close\r\n"
        + f"{name}: {'127.0.0.1' if name == 'Host' else 'Token b'}\r\n\r\n".encode()
    )

    status, headers, body = raw_exchange(server, request)

    assert_edge_envelope(status, headers, body, 400, "bad_request")
    assert "sent twice" in json.loads(body)["message"]


def test_the_edges_own_error_pages_are_not_a_route(server):
    answer = server.request("GET", "/_edge/error/502")

    assert answer.status == 404
    assert answer.json()["code"] == "not_found"


def trickle(sockets: list[socket.socket], stop: threading.Event) -> None:
    """A header line a second on each connection, never the blank line."""
    line = 0
    while not stop.wait(1.0):
        line += 1
        for sock in sockets:
            with contextlib.suppress(OSError):  # nginx may give up on one: the others go on
                sock.sendall(f"X-Slow-{line}: {line}\r\n".encode())


def test_slow_clients_do_not_keep_a_plain_request_waiting(server):
    sockets = []
    stop = threading.Event()
    try:
        for _ in range(SLOW_CLIENTS):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            sockets.append(sock)
        sender = threading.Thread(target=trickle, args=(sockets, stop), daemon=True)
        sender.start()
        time.sleep(2.5)  # every slow connection has sent lines since it opened
        timings = []
        for _ in range(3):
            started = time.monotonic()
            answer = server.request("GET", "/health")
            timings.append(time.monotonic() - started)
            assert answer.status == 200, answer.body
            time.sleep(0.5)
    finally:
        stop.set()
        for sock in sockets:
            sock.close()

    assert max(timings) < SLOW_ANSWER_SECONDS, timings


# More than nginx's default worker_connections (1024), which one client
# holding this many half-sent bodies exhausted: every other client was refused.
HELD_CONNECTIONS = 1100


def test_a_client_holding_a_thousand_half_sent_bodies_does_not_lock_others_out(server):
    sockets = []
    try:
        for _ in range(HELD_CONNECTIONS):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            sock.sendall(
                b"POST /api/transfer HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: application/json\r\nContent-Length: 60000\r\n\r\n{"
            )
            sockets.append(sock)
        started = time.monotonic()
        answer = server.request("GET", "/health")
        took = time.monotonic() - started
    finally:
        for sock in sockets:
            sock.close()

    assert answer.status == 200, answer.body
    assert took < SLOW_ANSWER_SECONDS, took
    # nginx wrote no line of its own about it (the log stays JSON lines).
    assert "worker_connections are not enough" not in server.log_text()


def test_django_sees_the_tcp_peer_whatever_the_client_writes_in_the_edges_header(server):
    """A failed admin login: django-axes records the client address it keyed
    the failure on. The client claims another address in the header the edge
    passes the peer in (and under its underscore twin), and in
    X-Forwarded-For (not trusted: TRUSTED_PROXY_COUNT is 0); Django must see
    127.0.0.1, the TCP peer, as it did without the edge."""
    form = server.request("GET", "/admin/login/")
    cookie = form.headers["Set-Cookie"].split(";", 1)[0]
    csrf = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', form.body).group(1).decode()
    username = f"edge-{secrets.token_hex(4)}"
    login = server.request(
        "POST",
        "/admin/login/",
        headers={
            "Cookie": cookie,
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Wallet-Edge-Peer": "203.0.113.9",
            "X_Wallet_Edge_Peer": "203.0.113.10",
            "X-Forwarded-For": "198.51.100.4",
        },
        body=urllib.parse.urlencode(
            {"username": username, "password": "wrong", "csrfmiddlewaretoken": csrf, "next": "/admin/"}
        ).encode(),
    )

    assert login.status == 200  # the form again, with the error
    assert list(AccessAttempt.objects.filter(username=username).values_list("ip_address", flat=True)) == ["127.0.0.1"]


def program_pid(server: WebServer, program: str) -> int:
    """The pid of bin/web's child running `program` (nginx's master, or Granian's main process)."""
    children = [pid for pid, ppid in descendants(server.process.pid).items() if ppid == server.process.pid]
    (pid,) = [pid for pid in children if runs(pid, program)]
    return pid


def group_is_empty(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def one_worker_env(directory: Path) -> dict[str, str]:
    """A bin/web of its own (one Granian worker), for a test that stops it."""
    return service_env(
        HOST="127.0.0.1",
        PORT=str(free_port()),
        WEB_CONCURRENCY="1",
        PROMETHEUS_MULTIPROC_DIR=str(directory / "metrics"),
    )


@pytest.mark.parametrize("program", ["nginx", "granian"])
def test_when_either_program_exits_bin_web_stops_the_other_and_exits_non_zero(django_db_setup, tmp_path, program):
    """A supervisor restarts bin/web only if it exits: nginx without Granian
    would answer 502 forever, Granian without nginx would be unreachable."""
    with running_web(tmp_path, one_worker_env(tmp_path), workers=1) as server:
        os.kill(program_pid(server, program), signal.SIGTERM)
        returncode = server.process.wait(timeout=30)

        assert returncode != 0
        # The other program, and every worker, is gone too (bin/web's session).
        wait_for(lambda: group_is_empty(server.process.pid), what="every process of bin/web gone", timeout=30)


def test_sigterm_stops_both_programs_and_bin_web_exits_cleanly(django_db_setup, tmp_path):
    with running_web(tmp_path, one_worker_env(tmp_path), workers=1) as server:
        runtime = Path(re.search(r"unix:(\S+)/granian\.sock", server.log_text()).group(1))
        assert runtime.is_dir()
        # To bin/web alone, as a supervisor that signals its child does.
        server.process.send_signal(signal.SIGTERM)
        returncode = server.process.wait(timeout=30)

        assert returncode == 0, server.log_text()[-3000:]
        wait_for(lambda: group_is_empty(server.process.pid), what="every process of bin/web gone", timeout=30)
        assert not runtime.exists()  # the socket, the configuration and nginx's files


def test_trace_is_answered_by_django_as_any_method_a_route_does_not_take(server):
    """nginx refuses TRACE itself, without an Allow header; the edge hands
    the refusal to Django, which names the route's methods."""
    answer = server.request("TRACE", "/health", headers={"X-Wallet-Edge-Peer": "203.0.113.9"})

    assert answer.status == 405
    assert answer.json()["code"] == "method_not_allowed"
    assert answer.headers["Allow"]
    assert "TRACE" not in answer.headers["Allow"]
    assert answer.headers["X-Request-ID"]  # Django answered


@pytest.mark.parametrize("path", ["/api/wallets", "/api/transfer"])
def test_connect_is_refused_by_its_own_name(server, path):
    """nginx refuses CONNECT with the 405 it gives TRACE; Django's answer
    names CONNECT, as it would any method a route does not take, never the
    TRACE the edge once sent it for every such refusal. (CONNECT to
    host:port, a target nginx cannot read, is its own 400 bad_request.)"""
    api = make_api_client("Transfer client")

    answer = server.request("CONNECT", path, headers={"Authorization": f"Token {api.api_key}"})

    assert answer.status == 405
    body = answer.json()
    assert body["code"] == "method_not_allowed"
    assert "CONNECT" in body["message"] and "TRACE" not in body["message"], body
    assert answer.headers["Allow"] and "CONNECT" not in answer.headers["Allow"]
    assert answer.headers["X-Request-ID"]  # Django answered
