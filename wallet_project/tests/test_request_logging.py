"""The log lines on-call reads: one per request, one per money movement, each
with the request id (X-Request-ID, kept or made by wallet_project/middleware.py), and nothing
a client would not want in a log (its token, its metadata).

The lines are caught by a handler built from settings.LOGGING's own formatter
and request-id filter, so what is checked is what the console handler writes.
"""

import io
import json
import logging
import logging.config
import re
import uuid

import pytest
from django.conf import settings
from django.test import Client, RequestFactory

from corrections.tests import people
from corrections.tests.people import reversed_with_four_eyes
from transfers.tests.test_reversal import completed_transfer

pytestmark = pytest.mark.django_db

HEX_ID = re.compile(r"^[0-9a-f]{32}$")


class LogLines:
    """What a console handler configured as in settings.LOGGING writes."""

    def __init__(self, stream: io.StringIO):
        self.stream = stream

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    def records(self, event: str | None = None, **fields) -> list[dict]:
        """The JSON lines of one event (all: None) with these field values."""
        records = [json.loads(line) for line in self.text.splitlines()]
        return [
            r
            for r in records
            if (event is None or r.get("event") == event) and all(r.get(k) == v for k, v in fields.items())
        ]


def configured_handler(formatter: str) -> tuple[logging.Handler, io.StringIO]:
    """A stream handler with settings.LOGGING's `formatter` and its request-id
    filter, built by logging.config's own machinery from the same entries."""
    configurator = logging.config.DictConfigurator(settings.LOGGING)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(configurator.configure_formatter(dict(settings.LOGGING["formatters"][formatter])))
    handler.addFilter(configurator.configure_filter(dict(settings.LOGGING["filters"]["request_id"])))
    return handler, stream


@pytest.fixture
def log_as():
    """log_as("json" | "text") -> what the root logger writes from then on in that format."""
    root = logging.getLogger()
    attached = []

    def attach(formatter: str) -> LogLines:
        handler, stream = configured_handler(formatter)
        root.addHandler(handler)
        attached.append(handler)
        return LogLines(stream)

    yield attach
    for handler in attached:
        root.removeHandler(handler)


@pytest.fixture
def logs(log_as) -> LogLines:
    return log_as("json")


def token_of(api) -> str:
    return api.api_key


def transfer(api, source, destination, amount="10.00", key="key-1", metadata=None, **headers):
    body = {"sourceWalletId": str(source.pk), "destinationWalletId": str(destination.pk), "amount": amount}
    if metadata is not None:
        body["metadata"] = metadata
    return api.post("/api/transfer", body, format="json", headers={"Idempotency-Key": key, **headers})


# --- one line per request --------------------------------------------------------------


def test_a_request_logs_one_line_with_the_request_id_it_came_with(logs, treasury_api, funded_wallet):
    wallet = funded_wallet("10.00")
    request_id = str(uuid.uuid4())

    response = treasury_api.get(f"/api/wallets/{wallet.pk}", headers={"X-Request-ID": request_id})

    assert response.status_code == 200
    assert response["X-Request-ID"] == request_id
    (line,) = logs.records("request")
    fields = ("method", "path", "status", "view", "client_address", "client", "key", "request_id")
    assert {k: line[k] for k in fields} == {
        "method": "GET",
        "path": f"/api/wallets/{wallet.pk}",
        "status": 200,
        "view": "wallet-detail",
        "client_address": "127.0.0.1",
        "client": treasury_api.user.get_username(),
        # The key's non-secret prefix, never the key.
        "key": treasury_api.api_key[:11],
        "request_id": request_id,
    }
    assert treasury_api.api_key not in logs.text
    assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0
    assert (line["level"], line["logger"]) == ("INFO", "wallet.requests")
    assert line["message"].startswith(f"127.0.0.1 GET /api/wallets/{wallet.pk} 200 ")
    assert line["time"]


def test_without_a_request_id_one_is_made_returned_and_logged(logs, treasury_api, funded_wallet):
    wallet = funded_wallet("10.00")

    response = treasury_api.get(f"/api/wallets/{wallet.pk}")

    request_id = response["X-Request-ID"]
    assert HEX_ID.match(request_id)
    (line,) = logs.records("request")
    assert line["request_id"] == request_id
    # Each request its own.
    assert treasury_api.get(f"/api/wallets/{wallet.pk}")["X-Request-ID"] != request_id


@pytest.mark.parametrize(
    "given",
    [
        "lb-7f3a-00012",
        "12345",
        "Root=1-5759e988-bd862e3f1be28ec4",
        "trace:span/7+base64==",
        "a_b.c",
        "a" * 128,
    ],
    ids=["load_balancer_id", "digits", "aws_trace_id", "every_allowed_punctuation", "underscore_and_dot", "128_chars"],
)
def test_a_request_id_that_is_a_safe_token_is_kept_echoed_and_logged(logs, treasury_api, funded_wallet, given):
    wallet = funded_wallet("10.00")

    response = treasury_api.get(f"/api/wallets/{wallet.pk}", headers={"X-Request-ID": given})

    assert response["X-Request-ID"] == given
    (line,) = logs.records("request")
    assert line["request_id"] == given


@pytest.mark.parametrize(
    "given",
    [
        'x", "level": "CRITICAL',
        "a" * 129,
        "has space",
        "semi;colon",
        "quote'd",
        "<script>",
        "caf\u00e9",
        "tab\there",
        "",
    ],
    ids=["json_injection", "129_chars", "space", "semicolon", "quote", "angle_brackets", "non_ascii", "tab", "empty"],
)
def test_a_request_id_that_is_not_a_safe_token_is_replaced(logs, treasury_api, funded_wallet, given):
    wallet = funded_wallet("10.00")

    response = treasury_api.get(f"/api/wallets/{wallet.pk}", headers={"X-Request-ID": given})

    request_id = response["X-Request-ID"]
    assert HEX_ID.match(request_id)
    (line,) = logs.records("request")
    assert line["request_id"] == request_id
    if given:
        assert given not in logs.text
        assert not [r for r in logs.records() if given in json.dumps(r)]


def test_an_unauthenticated_request_is_logged_without_a_client(logs, treasury_api):
    response = Client().get("/api/wallets", headers={"Authorization": "Token not-a-real-token"})

    assert response.status_code == 401
    (line,) = logs.records("request")
    assert (line["status"], line["client"], line["key"], line["view"]) == (401, None, None, "wallet-list")
    assert "not-a-real-token" not in logs.text


@pytest.mark.parametrize(
    ("trusted_proxies", "remote", "forwarded_for", "logged"),
    [
        pytest.param(0, "203.0.113.7", "198.51.100.1", "203.0.113.7", id="no_proxy_forwarded_for_ignored"),
        pytest.param(1, "10.0.0.2", "6.6.6.6, 203.0.113.7", "203.0.113.7", id="one_proxy_client_prefix_ignored"),
        pytest.param(2, "10.0.0.3", "6.6.6.6, 2001:db8::7, 10.0.0.2", "2001:db8::7", id="two_proxies"),
    ],
)
def test_every_request_line_carries_the_client_address_django_axes_would_lock_out(
    logs, settings, treasury_api, trusted_proxies, remote, forwarded_for, logged
):
    from axes.helpers import get_client_ip_address

    settings.TRUSTED_PROXY_COUNT = trusted_proxies
    meta = {"REMOTE_ADDR": remote, "HTTP_X_FORWARDED_FOR": forwarded_for}

    # Answered by authentication, by the view and by no route at all.
    Client().get("/api/wallets", headers={"Authorization": "Token not-a-real-token"}, **meta)
    treasury_api.get("/api/wallets?userId=7d0e1c5e-8f6a-4a43-9e4f-0e8d6c1f2a10", **meta)
    Client().get("/nowhere", **meta)

    assert [line["client_address"] for line in logs.records("request")] == [logged] * 3
    assert get_client_ip_address(RequestFactory().get("/admin/login/", **meta)) == logged


def test_an_unknown_path_is_logged_as_unmatched_by_its_path(logs, treasury_api):
    assert treasury_api.get("/nowhere").status_code == 404

    (line,) = logs.records("request")
    assert (line["path"], line["status"], line["view"]) == ("/nowhere", 404, "unmatched")


def test_probes_and_scrapes_are_not_logged(logs, settings):
    settings.METRICS_TOKEN = "scraper"

    assert Client().get("/health").status_code == 200
    assert Client().get("/metrics", headers={"Authorization": "Bearer scraper"}).status_code == 200

    assert logs.records("request") == []


def test_the_text_format_is_a_readable_line_with_the_request_id(log_as, treasury_api, funded_wallet):
    lines = log_as("text")
    wallet = funded_wallet("10.00")
    request_id = str(uuid.uuid4())

    treasury_api.get(f"/api/wallets/{wallet.pk}", headers={"X-Request-ID": request_id})

    (line,) = [line for line in lines.text.splitlines() if "wallet.requests" in line]
    expected = rf"INFO \[{request_id}\] wallet\.requests 127\.0\.0\.1 GET /api/wallets/{wallet.pk} 200 \d+\.\dms$"
    assert re.search(expected, line), line


FORGERIES = [
    pytest.param("/api/transfer/x%0aforged", r"\n", id="line_feed"),
    pytest.param("/api/transfer/x%0d%0a2026-01-01 00:00:00,000 ERROR [x] forged", r"\r\n", id="crlf_and_a_whole_line"),
    pytest.param("/api/transfer/x%0bforged", r"\x0b", id="vertical_tab"),
    pytest.param("/api/transfer/x%1b%5b2Jforged", r"\x1b", id="terminal_escape"),
    pytest.param("/api/transfer/x%e2%80%a8forged", r"\u2028", id="unicode_line_separator"),
    pytest.param("/api/transfer/x%c2%85forged", r"\x85", id="next_line"),
]


@pytest.mark.parametrize(("path", "escaped"), FORGERIES)
def test_a_path_cannot_split_a_text_log_line(log_as, treasury_api, path, escaped):
    lines = log_as("text")

    treasury_api.get(path)

    text = lines.text
    assert len(text.splitlines()) == 1, text
    assert text.endswith("\n") and text.count("\n") == 1, text
    (line,) = text.splitlines()
    assert line.endswith(" 404 " + line.rsplit(" ", 1)[1]), line
    assert escaped in line, line  # what came is shown, escaped


@pytest.mark.parametrize(("path", "escaped"), FORGERIES)
def test_a_path_cannot_split_a_json_log_line(logs, treasury_api, path, escaped):
    treasury_api.get(path)

    (line,) = logs.records()
    assert line["event"] == "request" and "forged" in line["path"]


def test_a_logged_value_with_line_breaks_stays_on_one_text_line(log_as):
    """Not only the request line: any record, any value interpolated into it."""
    lines = log_as("text")

    logging.getLogger("wallet.anything").warning("key %s refused", "k1\nforged 2026 ERROR line")

    assert len(lines.text.splitlines()) == 1, lines.text
    assert "k1\\nforged" in lines.text


def test_a_traceback_keeps_its_lines_after_the_escaped_line(log_as):
    lines = log_as("text")

    try:
        raise ValueError("bad\nvalue")
    except ValueError:
        logging.getLogger("wallet.anything").exception("failed on %s", "x\ny")

    first, *traceback = lines.text.splitlines()
    assert first.endswith("failed on x\\ny"), first
    assert traceback[0] == "Traceback (most recent call last):"


# --- one line per money movement ------------------------------------------------------


def test_a_transfer_logs_one_money_movement_line_matching_its_response(logs, treasury_api, funded_wallet):
    source, destination = funded_wallet("100.00"), funded_wallet("0")
    request_id = str(uuid.uuid4())

    response = transfer(treasury_api, source, destination, "12.50", key="pay-1", **{"X-Request-ID": request_id})

    assert response.status_code == 201
    data = response.json()["data"]
    (movement,) = logs.records("money_movement", client=treasury_api.user.get_username(), type="TRANSFER")
    assert {k: movement[k] for k in movement if k not in ("time", "pid", "duration_ms", "message")} == {
        "level": "INFO",
        "logger": "wallet.transfers",
        "request_id": request_id,
        "event": "money_movement",
        "type": "TRANSFER",
        "outcome": "completed",
        "status": "COMPLETED",
        "error_code": None,
        "transaction_id": data["transactionId"],
        "reference": data["reference"],
        "amount": "12.50",
        "currency": "NGN",
        "client": treasury_api.user.get_username(),
        "idempotency_key": "pay-1",
    }
    (request,) = logs.records("request")
    assert request["request_id"] == request_id


def test_a_replay_and_a_failure_are_logged_as_such(logs, treasury_api, funded_wallet):
    source, destination = funded_wallet("5.00"), funded_wallet("0")
    first = transfer(treasury_api, source, destination, "1.00", key="ok")
    transfer(treasury_api, source, destination, "1.00", key="ok")
    failed = transfer(treasury_api, source, destination, "50.00", key="too-much")

    assert failed.status_code == 422
    lines = logs.records("money_movement", client=treasury_api.user.get_username(), type="TRANSFER")
    assert [(r["outcome"], r["idempotency_key"], r["error_code"]) for r in lines] == [
        ("completed", "ok", None),
        ("replayed", "ok", None),
        ("failed", "too-much", "insufficient_balance"),
    ]
    assert lines[1]["transaction_id"] == first.json()["data"]["transactionId"]


def test_a_replay_answered_unread_says_so_and_is_not_timed(logs, treasury_api, funded_wallet):
    """A byte-identical retry is answered from the log without its body
    being read (services.movement_replay): nothing of its own to time, so its
    line says "unread" instead of a duration; a replay written differently
    is read, compared and timed."""
    source, destination = funded_wallet("5.00"), funded_wallet("0")
    first = transfer(treasury_api, source, destination, "1.00", key="unread")
    transfer(treasury_api, source, destination, "1.00", key="unread")
    transfer(treasury_api, source, destination, "1.0", key="unread")

    assert first.status_code == 201
    lines = logs.records("money_movement", client=treasury_api.user.get_username(), idempotency_key="unread")
    assert [line["outcome"] for line in lines] == ["completed", "replayed", "replayed"]
    unread, compared = lines[1], lines[2]
    assert unread["message"].endswith(" replayed unread") and "duration_ms" not in unread
    assert re.search(r" replayed in \d+\.\dms$", compared["message"]) and compared["duration_ms"] >= 0


def test_a_key_conflict_is_logged_as_refused(logs, treasury_api, funded_wallet):
    source, destination = funded_wallet("100.00"), funded_wallet("0")
    transfer(treasury_api, source, destination, "1.00", key="k")

    assert transfer(treasury_api, source, destination, "2.00", key="k").status_code == 422

    refused = logs.records("money_movement")[-1]
    assert (refused["outcome"], refused["error_code"], refused["idempotency_key"]) == (
        "refused",
        "idempotency_key_reused",
        "k",
    )


def test_neither_the_token_nor_the_metadata_reach_the_log(logs, treasury_api, funded_wallet):
    source, destination = funded_wallet("100.00"), funded_wallet("0")
    metadata = {"note": "rent for flat 4B", "customerName": "Ada Lovelace", "phone": "+2348012345678"}

    assert transfer(treasury_api, source, destination, metadata=metadata).status_code == 201
    assert transfer(treasury_api, source, destination, metadata=metadata).status_code == 200
    assert transfer(treasury_api, source, destination, metadata={**metadata, "note": "x"}).status_code == 422

    assert len(logs.records("money_movement", client=treasury_api.user.get_username(), type="TRANSFER")) == 3
    assert len(logs.records("request")) == 3
    for secret in (token_of(treasury_api), *metadata.values()):
        assert secret not in logs.text


def test_a_reversal_logs_a_money_movement_line(logs, funded_wallet, django_capture_on_commit_callbacks):
    original = completed_transfer(funded_wallet("100.00"), funded_wallet("0"), amount="40.00")
    staff = people.staff("Approver")

    # The line is written once the reversal has committed (with its approval).
    with django_capture_on_commit_callbacks(execute=True):
        compensation = reversed_with_four_eyes(original.pk, "sent to the wrong user", approver=staff)

    line = logs.records("money_movement")[-1]
    assert {k: line[k] for k in ("type", "outcome", "transaction_id", "reference", "reversal_of", "amount")} == {
        "type": "TRANSFER",
        "outcome": "reversal",
        "transaction_id": str(compensation.pk),
        "reference": compensation.reference,
        "reversal_of": original.reference,
        "amount": "40.00",
    }
    assert (line["currency"], line["client"]) == ("NGN", staff.get_username())
