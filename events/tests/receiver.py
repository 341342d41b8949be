"""A real webhook receiver for the tests: an HTTP server on loopback that
verifies every delivery with the Standard Webhooks library, as a client's
receiver would, and misbehaves on request (500, a timeout, a dropped
connection, 410, a redirect, an answer dripped a byte at a time) for a
scripted number of requests."""

import json
import select
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from events import webhooks
from events.models import EventType, WebhookDelivery

# What the receiver does with a request.
OK, ERROR, TIMEOUT, DROP, GONE, REDIRECT, DRIP = "ok", "500", "timeout", "drop", "410", "redirect", "drip"
# A 200 sent whole, one byte every drip_seconds by DRIP.
DRIPPED_ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


@dataclass
class Delivery:
    webhook_id: str
    behaviour: str
    verified: bool
    body: dict | None
    path: str
    # time.monotonic() when the request arrived and when the receiver was done with it.
    started: float = 0.0
    ended: float = 0.0
    # DRIP: the sender hung up before the whole answer was sent.
    cut: bool = False


@dataclass
class Receiver:
    script: list[str] = field(default_factory=list)
    # The signing secrets of the endpoints that point here (subscribe adds each).
    secrets: list[str] = field(default_factory=list)
    # How long a TIMEOUT request stalls (above the service's timeout).
    stall_seconds: float = 1.5
    # How long an OK answer takes (to widen races between workers).
    ok_delay: float = 0.0
    # DRIP: the pause between two bytes of the answer.
    drip_seconds: float = 0.2
    requests: list[Delivery] = field(default_factory=list)

    def __post_init__(self):
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                receiver._handle(self)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        started = time.monotonic()
        body = handler.rfile.read(int(handler.headers.get("Content-Length", 0)))
        with self._lock:
            behaviour = self.script.pop(0) if self.script else OK
        verified = any(self._verifies(secret, body, dict(handler.headers.items())) for secret in self.secrets)
        parsed = json.loads(body) if body else None
        delivery = Delivery(handler.headers.get("webhook-id"), behaviour, verified, parsed, handler.path, started)
        with self._lock:
            self.requests.append(delivery)
        try:
            self._respond(handler, behaviour, verified, delivery)
        finally:
            delivery.ended = time.monotonic()

    def _respond(self, handler: BaseHTTPRequestHandler, behaviour: str, verified: bool, delivery: Delivery) -> None:
        if not verified:
            return self._answer(handler, 400)
        if behaviour == TIMEOUT:
            time.sleep(self.stall_seconds)
            return self._answer(handler, 200)  # too late: the sender gave up
        if behaviour == DROP:
            handler.close_connection = True
            handler.connection.close()
            return None
        if behaviour == REDIRECT:
            handler.send_response(307)
            handler.send_header("Location", "/elsewhere")
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return None
        if behaviour == DRIP:
            handler.close_connection = True
            try:
                for byte in DRIPPED_ANSWER:
                    handler.wfile.write(bytes([byte]))
                    handler.wfile.flush()
                    # Between two bytes, notice at once a sender that hung up (end of file).
                    readable, _, _ = select.select([handler.connection], [], [], self.drip_seconds)
                    if readable and not handler.connection.recv(1, socket.MSG_PEEK):
                        raise ConnectionAbortedError
            except OSError:  # the sender hung up
                delivery.cut = True
            return None
        if behaviour == OK and self.ok_delay:
            time.sleep(self.ok_delay)
        return self._answer(handler, {OK: 200, ERROR: 500, GONE: 410}[behaviour])

    @staticmethod
    def _verifies(secret: str, body: bytes, headers: dict[str, str]) -> bool:
        try:
            Webhook(secret).verify(body, headers)
        except WebhookVerificationError:
            return False
        return True

    @staticmethod
    def _answer(handler: BaseHTTPRequestHandler, status: int) -> None:
        handler.send_response(status)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    def accepted_ids(self) -> list[str]:
        """webhook-ids of the deliveries answered 2xx, in arrival order."""
        with self._lock:
            return [r.webhook_id for r in self.requests if r.behaviour == OK and r.verified]


# --- driving delivery from a test, as the Celery task does --------------------------------


def subscribe(api, receiver: Receiver, types: list[str] | None = None, path: str = "") -> dict:
    """POST /api/webhook-endpoints for `receiver` (all types by default); the
    receiver learns the secret, as a client would store it (several endpoints
    may point at one receiver, told apart by a `path` added to the URL)."""
    types = types or list(EventType.values)
    response = api.post("/api/webhook-endpoints", {"url": receiver.url + path, "eventTypes": types}, format="json")
    assert response.status_code == 201, response.json()
    endpoint = response.json()["data"]
    receiver.secrets.append(endpoint["secret"])
    return endpoint


# How long a test waits for events to be fanned out and delivered: events
# wait behind any writing transaction older than theirs, server-wide, and
# under load other test runs hold theirs for minutes. A wait ends as soon as
# its condition holds: this bounds only a test that would fail anyway.
WAIT_SECONDS = 300


def pump(until, seconds: float = WAIT_SECONDS) -> None:
    """Run what the Celery task runs until `until()` holds."""
    deadline = time.monotonic() + seconds
    while not until():
        assert time.monotonic() < deadline, "deliveries did not finish in time"
        webhooks.fan_out()
        webhooks.deliver_due(budget_seconds=1)
        time.sleep(0.02)


def fan_out_all(count: int) -> None:
    """Fan out until `count` deliveries exist (events wait behind any writing
    transaction older than theirs, and this PostgreSQL server is shared with
    other test runs whose test transactions stay open for a whole test)."""
    deadline = time.monotonic() + WAIT_SECONDS
    while WebhookDelivery.objects.count() < count:
        assert time.monotonic() < deadline, "events were not fanned out in time"
        webhooks.fan_out()
        time.sleep(0.02)
