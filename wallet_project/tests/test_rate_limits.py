"""Per-client rate limits (wallet_project/throttling.py), through the API and
against the real Redis.

The rates are made small with the `settings` fixture; time is a fake clock
put in place of the throttle's timer, so that windows start and end where a
test says. It mostly reads whole seconds, so a client that waits exactly its
(whole-second) Retry-After often lands on a window's edge: a case a real
clock rarely hits, and the one that needs care.
"""

import copy
import math
import sys
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from types import SimpleNamespace

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.urls import path
from django_redis import get_redis_connection
from rest_framework.response import Response

from conftest import make_api_client
from reconciliation.tests.faults import free_port
from transfers.checks import check_a_full_batch_fits_the_transfers_rate
from transfers.locks import Unit, idempotency_lock_name, unit_lock_key
from transfers.models import TransactionLog, TransferBatch
from wallet_project import throttling
from wallet_project.api import ApiViewSet
from wallet_project.throttling import REPLAYS, TRANSFERS, ChargedOnLookup, ClientRateThrottle, check_throttle_scopes

pytestmark = pytest.mark.django_db

MINUTE = 60
# The start of a one-minute window, years before the real clock's: these
# windows' Redis counters are this test run's alone (the key also carries
# the run's cache prefix and the client's pk).
WINDOW_START = MINUTE * 10_000_000


class Clock:
    """Stands in for ClientRateThrottle.timer. A class attribute that is a plain
    callable object, not a function, so it is not bound as a method."""

    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch) -> Clock:
    """Ten seconds into a window."""
    clock = Clock(WINDOW_START + 10)
    monkeypatch.setattr(ClientRateThrottle, "timer", clock)
    return clock


@pytest.fixture
def rates(settings):
    """rates(transfers="2/min", ...): the whole REST_FRAMEWORK setting replaced
    by a copy with those rates, so that DRF's api_settings reloads."""

    def set_rates(**changed: str) -> None:
        rest_framework = copy.deepcopy(settings.REST_FRAMEWORK)
        rest_framework["DEFAULT_THROTTLE_RATES"].update(changed)
        settings.REST_FRAMEWORK = rest_framework

    return set_rates


def transfer(api, source, destination, key: str, amount: str = "1.00"):
    body = {"sourceWalletId": str(source.pk), "destinationWalletId": str(destination.pk), "amount": amount}
    return api.post("/api/transfer", body, format="json", headers={"Idempotency-Key": key})


def deposit(api, wallet, key: str, amount: str = "1.00"):
    return api.post(
        f"/api/wallets/{wallet.pk}/deposit", {"amount": amount}, format="json", headers={"Idempotency-Key": key}
    )


def withdraw(api, wallet, key: str, amount: str = "1.00"):
    return api.post(
        f"/api/wallets/{wallet.pk}/withdraw", {"amount": amount}, format="json", headers={"Idempotency-Key": key}
    )


def balances(*wallets) -> list[Decimal]:
    return [type(w).objects.get(pk=w.pk).balance for w in wallets]


def assert_throttled(response) -> int:
    """A 429 in the contract's envelope; returns its Retry-After."""
    assert response.status_code == 429, response.content
    body = response.json()
    assert body["success"] is False
    assert body["code"] == "throttled"
    assert body["message"]
    retry_after = response.headers["Retry-After"]
    assert retry_after.isdigit() and int(retry_after) >= 1, retry_after
    return int(retry_after)


# --- the transfers scope -------------------------------------------------------------


def test_over_the_transfers_limit_is_429_and_moves_nothing_and_the_key_stays_free(
    rates, clock, treasury_api, funded_wallet
):
    rates(transfers="2/min")
    source, destination = funded_wallet("100.00"), funded_wallet("0")
    assert [transfer(treasury_api, source, destination, key).status_code for key in ("a", "b")] == [201, 201]

    retry_after = assert_throttled(transfer(treasury_api, source, destination, "c", amount="50.00"))

    assert balances(source, destination) == [Decimal("98.00"), Decimal("2.00")]
    assert not TransactionLog.objects.filter(client=treasury_api.user, idempotency_key="c").exists()
    # Once its Retry-After has passed, the same key moves the money, once.
    clock.advance(retry_after)
    response = transfer(treasury_api, source, destination, "c", amount="50.00")
    assert response.status_code == 201, response.json()
    assert "Idempotent-Replayed" not in response.headers
    assert balances(source, destination) == [Decimal("48.00"), Decimal("52.00")]


def test_opening_a_wallet_is_charged_to_transfers(rates, clock, transfer_api, funded_wallet):
    rates(transfers="1/min")
    source, destination = funded_wallet("10.00"), funded_wallet("0")
    assert transfer(transfer_api, source, destination, "a").status_code == 201

    response = transfer_api.post("/api/wallets", {"userId": str(uuid.uuid4()), "currency": "NGN"}, format="json")

    assert_throttled(response)


def test_deposits_and_withdrawals_are_charged_like_transfers(rates, clock, treasury_api, funded_wallet):
    rates(transfers="2/min")
    wallet, other = funded_wallet("100.00"), funded_wallet("0")
    assert deposit(treasury_api, wallet, "in").status_code == 201
    assert withdraw(treasury_api, wallet, "out").status_code == 201

    # The two used up the one budget, whichever kind comes next.
    assert_throttled(transfer(treasury_api, wallet, other, "t"))
    assert_throttled(deposit(treasury_api, wallet, "in-2"))
    assert_throttled(withdraw(treasury_api, wallet, "out-2"))

    assert balances(wallet, other) == [Decimal("100.00"), Decimal("0.00")]
    assert not TransactionLog.objects.filter(client=treasury_api.user, idempotency_key__in=["t", "in-2", "out-2"])


# --- replays and reads ---------------------------------------------------------------


def test_replays_are_charged_to_replays_not_to_transfers(rates, clock, treasury_api, funded_wallet):
    rates(transfers="2/min", replays="100/min")
    source, destination = funded_wallet("100.00"), funded_wallet("0")
    first = transfer(treasury_api, source, destination, "a")
    assert first.status_code == 201

    replays = [transfer(treasury_api, source, destination, "a") for _ in range(5)]
    assert [(r.status_code, r.headers["Idempotent-Replayed"]) for r in replays] == [(200, "true")] * 5
    # Five replays later the second new transfer is still within the limit...
    assert transfer(treasury_api, source, destination, "b").status_code == 201
    # ...and the third is not, while replays still are answered.
    assert_throttled(transfer(treasury_api, source, destination, "c"))
    again = transfer(treasury_api, source, destination, "a")
    assert again.status_code == 200
    assert again.json()["data"]["transactionId"] == first.json()["data"]["transactionId"]
    assert balances(source) == [Decimal("98.00")]


def test_a_tight_replays_limit_throttles_replays_while_new_transfers_pass(rates, clock, treasury_api, funded_wallet):
    rates(transfers="100/min", replays="1/min")
    source, destination = funded_wallet("100.00"), funded_wallet("0")
    assert transfer(treasury_api, source, destination, "a").status_code == 201
    assert transfer(treasury_api, source, destination, "a").status_code == 200

    assert_throttled(transfer(treasury_api, source, destination, "a"))
    assert [transfer(treasury_api, source, destination, key).status_code for key in ("b", "c")] == [201, 201]
    assert balances(source) == [Decimal("97.00")]
    assert TransactionLog.objects.filter(client=treasury_api.user, type="TRANSFER").count() == 3


def test_reads_have_their_own_scope(rates, clock, treasury_api, funded_wallet):
    rates(transfers="1/min", reads="2/min")
    source, destination = funded_wallet("100.00"), funded_wallet("0")
    assert transfer(treasury_api, source, destination, "a").status_code == 201
    assert_throttled(transfer(treasury_api, source, destination, "b"))

    # The transfers budget is spent; the reads budget is whole.
    assert treasury_api.get(f"/api/wallets/{source.pk}").status_code == 200
    assert treasury_api.get("/api/transfer/a").status_code == 200
    assert_throttled(treasury_api.get(f"/api/wallets/{source.pk}"))
    assert_throttled(treasury_api.get("/api/transfer/a"))


# --- whose budget, and for how long ----------------------------------------------


def test_limits_are_per_client(rates, clock, treasury_api, funded_wallet):
    rates(transfers="1/min")
    source, destination = funded_wallet("100.00"), funded_wallet("0")
    other_client = make_api_client("Treasury client")
    other_source, other_destination = (funded_wallet(amount, owner=other_client.user) for amount in ("100.00", "0"))
    assert transfer(treasury_api, source, destination, "a").status_code == 201
    assert_throttled(transfer(treasury_api, source, destination, "b"))

    assert transfer(other_client, other_source, other_destination, "a").status_code == 201
    assert transfer(other_client, other_source, other_destination, "b").status_code == 429
    assert balances(source, other_source) == [Decimal("99.00"), Decimal("99.00")]


def test_refused_requests_do_not_count_and_retry_after_lets_the_next_one_in(rates, clock, treasury_api, funded_wallet):
    rates(transfers="2/min")
    source, destination = funded_wallet("100.00"), funded_wallet("0")
    assert [transfer(treasury_api, source, destination, key).status_code for key in ("a", "b")] == [201, 201]

    # A client hammering the limit: none of these counts (had they, the
    # previous window would still weigh about 7 when the next one opens).
    retry_afters = [assert_throttled(transfer(treasury_api, source, destination, f"x{i}")) for i in range(5)]

    # 50 s to the next window's edge, where the two still weigh 2: just past it.
    assert retry_afters == [51] * 5
    clock.advance(retry_afters[-1] - 1)
    assert_throttled(transfer(treasury_api, source, destination, "x0"))
    clock.advance(1)
    assert transfer(treasury_api, source, destination, "x0").status_code == 201


# --- the sliding window, unit by unit ------------------------------------------------


class UnitRequest:
    """A request as the throttle sees it: only the client's pk, unique to the test."""

    def __init__(self):
        self.user = SimpleNamespace(pk=f"unit-{uuid.uuid4().hex}")


def admitted(client: UnitRequest) -> int:
    """How many transfers in a row the throttle lets in now (each with a fresh
    throttle, as each request gets one); the refused one does not count."""
    n = 0
    while ClientRateThrottle("transfers").allow_request(client, None):
        n += 1
    return n


def test_the_previous_window_counts_by_how_much_of_it_the_sliding_window_still_covers(rates, clock):
    rates(transfers="10/min")
    client = UnitRequest()
    clock.now = WINDOW_START + 30
    assert admitted(client) == 10

    # A quarter into the next window: the previous ten weigh 7.5, so three
    # more fit (2 + 7.5 < 10, 3 + 7.5 is not).
    clock.now = WINDOW_START + MINUTE + 15
    assert admitted(client) == 3
    # Three quarters in: they weigh 2.5, so up to 8 in this window in all.
    clock.now = WINDOW_START + MINUTE + 45
    assert admitted(client) == 5
    # Half into the window after: only the last window's 8 count, half of them.
    clock.now = WINDOW_START + 2 * MINUTE + 30
    assert admitted(client) == 6


def test_wait_is_when_enough_of_the_previous_window_has_slid_out(rates, clock):
    rates(transfers="10/min")
    client = UnitRequest()
    clock.now = WINDOW_START + 59
    assert admitted(client) == 10
    clock.now = WINDOW_START + MINUTE + 15
    assert admitted(client) == 3

    refused = ClientRateThrottle("transfers")
    assert not refused.allow_request(client, None)
    # 3 + 10 * (1 - t / 60) < 10 just after t = 18: three seconds from now.
    assert refused.wait() == pytest.approx(3, abs=0.01)


@pytest.mark.parametrize("limit", [1, 2, 3, 7])
@pytest.mark.parametrize("start", [0, 10, 10.5, 30, 59, 59.999])
def test_waiting_the_retry_after_always_lets_the_next_request_in(rates, clock, start, limit):
    """Whatever the moment and the history, a client that waits the whole
    seconds Retry-After says is let in: also when that lands exactly on the
    edge where the estimate equals the limit."""
    rates(transfers=f"{limit}/min")
    client = UnitRequest()
    clock.now = WINDOW_START + start
    for step in range(2 * limit + 2):
        admitted(client)
        refused = ClientRateThrottle("transfers")
        assert not refused.allow_request(client, None)
        clock.advance(max(1, math.ceil(refused.wait())))  # as the exception handler rounds it
        assert ClientRateThrottle("transfers").allow_request(client, None), (step, clock.now - WINDOW_START)


# --- Redis down ------------------------------------------------------------------------


def test_with_redis_unreachable_the_limits_are_not_enforced(rates, settings, treasury_api, funded_wallet, caplog):
    rates(transfers="1/min", reads="1/min")
    source, destination = funded_wallet("100.00"), funded_wallet("0")
    caches = copy.deepcopy(settings.CACHES)
    caches["default"]["LOCATION"] = f"redis://127.0.0.1:{free_port()}/0"
    settings.CACHES = caches

    statuses = [transfer(treasury_api, source, destination, key).status_code for key in ("a", "b", "c")]
    statuses += [transfer(treasury_api, source, destination, "a").status_code]
    statuses += [treasury_api.get(f"/api/wallets/{source.pk}").status_code for _ in range(3)]

    assert statuses == [201, 201, 201, 200, 200, 200, 200]
    assert balances(source, destination) == [Decimal("97.00"), Decimal("3.00")]
    assert "rate limit not enforced, Redis unavailable" in caplog.text


def test_a_script_connection_the_server_closed_is_replaced_before_the_charge(rates, clock, treasury_api, funded_wallet):
    # The charge runs on a connection the thread keeps (throttling._ScriptConnection):
    # one Redis closed since (a restart, a timeout, CLIENT KILL) must cost a
    # reconnection, never a request let in uncounted.
    rates(transfers="1/min")
    source, destination = funded_wallet("100.00"), funded_wallet("0")
    assert transfer(treasury_api, source, destination, "first").status_code == 201
    connection = throttling._script_connection.get()
    connection.send_command("CLIENT", "ID")
    assert get_redis_connection("default").client_kill_filter(_id=connection.read_response()) == 1

    assert transfer(treasury_api, source, destination, "second").status_code == 429
    assert throttling._script_connection.get() is connection  # reconnected, not replaced


def test_threads_charging_at_once_let_in_exactly_the_limit_each_on_its_own_connection(rates, clock):
    # Every thread charges on the connection it keeps (throttling._ScriptConnection):
    # eight of them at once, sixty requests each against a limit of 100, must
    # let in exactly 100, and no two threads may share a connection.
    rates(transfers="100/min")
    client = UnitRequest()
    start = threading.Barrier(8)

    def charge() -> tuple[int, int]:
        start.wait()
        let_in = sum(ClientRateThrottle("transfers").allow_request(client, None) for _ in range(60))
        return let_in, id(throttling._script_connection.get())

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: charge(), range(8)))

    assert sum(let_in for let_in, _ in results) == 100
    assert len({connection for _, connection in results}) == 8


def test_the_script_connection_follows_the_cache_settings(settings):
    # Tests point the cache at another Redis (test_with_redis_unreachable_...):
    # the charge must follow, not keep the old server's connection.
    before = throttling._script_connection.get()
    caches = copy.deepcopy(settings.CACHES)
    caches["default"]["LOCATION"] = f"redis://127.0.0.1:{free_port()}/0"
    settings.CACHES = caches

    after = throttling._script_connection.get()

    assert after is not before and after.port != before.port


def test_script_connections_never_use_up_the_pool_however_often_the_settings_change(settings):
    # Each change of the cache settings gives the thread a new connection:
    # taken from the pool's count, it ran out after redis-py's default of 100.
    pool = get_redis_connection("default").connection_pool
    created = pool._created_connections
    for _ in range(150):
        settings.CACHES = copy.deepcopy(settings.CACHES)
        connection = throttling._script_connection.get()
        connection.send_command("PING")
        assert connection.read_response() in (b"PONG", "PONG", True)

    assert get_redis_connection("default").connection_pool._created_connections <= created + 1


# --- requests that fail are charged too --------------------------------------------------


def test_a_malformed_money_request_is_charged_to_transfers(rates, clock, treasury_api, funded_wallet):
    rates(transfers="2/min")
    source, destination = funded_wallet("100.00"), funded_wallet("0")
    bad = {"sourceWalletId": str(source.pk), "destinationWalletId": str(destination.pk), "amount": "1.234"}

    answers = [
        treasury_api.post("/api/transfer", bad, format="json", headers={"Idempotency-Key": f"bad-{n}"}).status_code
        for n in range(2)
    ]

    assert answers == [400, 400]
    assert_throttled(transfer(treasury_api, source, destination, "good"))
    assert_throttled(treasury_api.post("/api/transfer", bad, format="json", headers={"Idempotency-Key": "bad-3"}))


@pytest.mark.parametrize("endpoint", ["transfer", "deposit", "withdraw", "hold", "batch"])
@pytest.mark.parametrize("query", ["?surprise=1", "?amount=1.00&amount=2.00"], ids=["unknown", "repeated"])
def test_a_money_request_with_a_query_it_does_not_read_is_charged_to_transfers(
    clock, treasury_api, funded_wallet, endpoint, query
):
    # Refused before the view reads its key (ApiViewSet.initial), it is still a malformed money request.
    source, destination = funded_wallet("100.00"), funded_wallet("0")
    path, body = money(endpoint, source, destination, "q", "1.00")

    assert charge_of(treasury_api, clock, path + query, body, "q") == (400, {TRANSFERS: 1})


@pytest.mark.parametrize(
    ("body", "content_type", "refused"),
    [
        ('{"amount": ', "application/json", 400),
        ("amount=1.00", "text/plain", 415),
    ],
    ids=["unparseable JSON", "unsupported media type"],
)
@pytest.mark.parametrize("path", ["/api/transfer", "/api/transfers/batch"])
def test_a_money_request_whose_body_cannot_be_read_is_charged_to_transfers(
    rates, clock, treasury_api, funded_wallet, body, content_type, refused, path
):
    rates(transfers="2/min")
    source, destination = funded_wallet("100.00"), funded_wallet("0")

    def unreadable(n: int):
        return treasury_api.generic(
            "POST", path, body, content_type=content_type, headers={"Idempotency-Key": f"bad-{n}"}
        )

    assert [unreadable(n).status_code for n in range(2)] == [refused, refused]
    assert_throttled(transfer(treasury_api, source, destination, "good"))
    assert_throttled(unreadable(3))


def test_a_reused_key_is_charged_to_replays(rates, clock, treasury_api, funded_wallet):
    rates(transfers="100/min", replays="2/min")
    source, destination = funded_wallet("100.00"), funded_wallet("0")
    assert transfer(treasury_api, source, destination, "k").status_code == 201

    reused = [transfer(treasury_api, source, destination, "k", amount="2.00").status_code for _ in range(2)]

    assert reused == [422, 422]
    assert_throttled(transfer(treasury_api, source, destination, "k", amount="2.00"))
    assert balances(source, destination) == [Decimal("99.00"), Decimal("1.00")]


# --- batches: one charge, a unit per payout ------------------------------------------------


def batch(api, source, destinations, key: str):
    body = {
        "sourceWalletId": str(source.pk),
        "atomic": False,
        "transfers": [
            {"destinationWalletId": str(d.pk), "amount": "1.00", "idempotencyKey": f"{key}-{i}"}
            for i, d in enumerate(destinations)
        ],
    }
    return api.post("/api/transfers/batch", body, format="json", headers={"Idempotency-Key": key})


def test_a_batch_is_charged_one_transfers_unit_per_payout_before_anything_is_stored(
    rates, clock, treasury_api, funded_wallet
):
    rates(transfers="5/min")
    pool, destination = funded_wallet("100.00"), funded_wallet("0")
    assert batch(treasury_api, pool, [destination] * 3, "b1").status_code == 201

    # Three units of five are spent: a batch of three does not fit, whole.
    assert_throttled(batch(treasury_api, pool, [destination] * 3, "b2"))

    assert not TransferBatch.objects.filter(idempotency_key="b2").exists()
    assert not TransactionLog.objects.filter(idempotency_key__startswith="b2-").exists()
    assert balances(pool) == [Decimal("97.00")]
    # The two units left serve two single transfers, and no more.
    assert [transfer(treasury_api, pool, destination, key).status_code for key in ("t1", "t2")] == [201, 201]
    assert_throttled(transfer(treasury_api, pool, destination, "t3"))


def test_a_batch_replay_is_charged_to_replays_by_its_payouts(rates, clock, treasury_api, funded_wallet):
    rates(transfers="3/min", replays="5/min")
    pool, destination = funded_wallet("100.00"), funded_wallet("0")
    first = batch(treasury_api, pool, [destination] * 3, "b1")
    assert first.status_code == 201

    # The transfers budget is spent, yet the replay is answered, from replays' budget...
    replay = batch(treasury_api, pool, [destination] * 3, "b1")
    assert (replay.status_code, replay.headers["Idempotent-Replayed"]) == (200, "true")
    assert replay.json()["data"]["batchId"] == first.json()["data"]["batchId"]
    # ...where three of its five units are gone: two single replays fit, a second batch replay does not.
    assert_throttled(batch(treasury_api, pool, [destination] * 3, "b1"))
    assert [transfer(treasury_api, pool, destination, "b1-0").status_code for _ in range(2)] == [200, 200]
    assert balances(pool) == [Decimal("97.00")]


def test_a_malformed_batch_is_charged_one_transfers_unit(rates, clock, treasury_api, funded_wallet):
    rates(transfers="2/min")
    pool, destination = funded_wallet("100.00"), funded_wallet("0")
    bad = {"sourceWalletId": str(pool.pk), "transfers": []}

    answers = [treasury_api.post("/api/transfers/batch", bad, format="json").status_code for _ in range(2)]

    assert answers == [400, 400]
    assert_throttled(batch(treasury_api, pool, [destination], "b1"))


# --- each money request is charged once, by its kind (transfers.views.admit) -------------------


def charged(api, clock: Clock) -> dict[str, int]:
    """The units counted in this window for the client of `api`, per scope
    of a money request, read from the throttle's Redis counters."""
    redis = get_redis_connection("default")
    window = int(clock.now // MINUTE)
    ident = {"ident": api.user.pk}
    return {
        scope: int(
            redis.get(f"{cache.make_key(ClientRateThrottle.cache_format % {'scope': scope, **ident})}:{window}") or 0
        )
        for scope in (TRANSFERS, REPLAYS)
    }


def money(endpoint: str, source, destination, key: str, amount: str) -> tuple[str, dict]:
    """The path and body of a request to one money endpoint (a batch: three payouts)."""
    pair = {"sourceWalletId": str(source.pk), "destinationWalletId": str(destination.pk), "amount": amount}
    return {
        "transfer": ("/api/transfer", pair),
        "deposit": (f"/api/wallets/{destination.pk}/deposit", {"amount": amount}),
        "withdraw": (f"/api/wallets/{source.pk}/withdraw", {"amount": amount}),
        "hold": ("/api/holds", {**pair, "expiresInSeconds": 600}),
        "batch": (
            "/api/transfers/batch",
            {
                "sourceWalletId": str(source.pk),
                "atomic": False,
                "transfers": [
                    {"destinationWalletId": str(destination.pk), "amount": amount, "idempotencyKey": f"{key}-{i}"}
                    for i in range(3)
                ],
            },
        ),
    }[endpoint]


def charge_of(api, clock: Clock, path: str, body, key: str) -> tuple[int, dict[str, int]]:
    """Send one request; its status and the units it was charged, per scope charged."""
    before = charged(api, clock)
    response = api.post(path, body, format="json", headers={"Idempotency-Key": key})
    after = charged(api, clock)
    return response.status_code, {
        scope: after[scope] - before[scope] for scope in after if after[scope] != before[scope]
    }


@pytest.mark.parametrize(
    ("endpoint", "units"), [("transfer", 1), ("deposit", 1), ("withdraw", 1), ("batch", 3), ("hold", 1)]
)
def test_each_money_request_is_charged_once_by_its_kind(clock, treasury_api, funded_wallet, endpoint, units):
    source, destination = funded_wallet("100.00"), funded_wallet("0")

    def send(key: str, amount: str = "1.00", header: str | None = None):
        path, body = money(endpoint, source, destination, key, amount)
        return charge_of(treasury_api, clock, path, body, header or key)

    # New work: its units of transfers (a batch: one per payout).
    assert send("k") == (201, {TRANSFERS: units})
    # A byte-identical retry, answered unread, and the same request written otherwise: a replay's units.
    assert send("k") == (200, {REPLAYS: units})
    assert send("k", amount="1") == (200, {REPLAYS: units})
    # The finished key for another request (422 idempotency_key_reused): a replay too.
    assert send("k", amount="2.00") == (422, {REPLAYS: units})
    # Malformed, under a free key, under the finished key, or under a key the header cannot hold:
    # one unit of transfers, whatever the key names.
    assert send("free", amount="1.234") == (400, {TRANSFERS: 1})
    assert send("k", amount="1.234") == (400, {TRANSFERS: 1})
    assert send("k", header="a, b") == (400, {TRANSFERS: 1})


@pytest.mark.parametrize(
    ("action", "body", "bad"),
    [
        ("capture", {"amount": "1.00"}, {"amount": "1.234"}),
        ("void", {}, {"surprise": 1}),
        ("extend", {"expiresInSeconds": 1200}, {"expiresInSeconds": "soon"}),
    ],
)
def test_each_end_of_a_hold_is_charged_one_transfers_unit_at_the_money_door(
    clock, treasury_api, funded_wallet, action, body, bad
):
    # Charged by transfers.views.admit as every money request (no longer by
    # DRF before the view), and as before: one unit of transfers, whatever
    # the request turns out to be (its key is looked up by the service).
    source, destination = funded_wallet("100.00"), funded_wallet("0")
    path, hold = money("hold", source, destination, "h", "5.00")
    placed = treasury_api.post(path, hold, format="json", headers={"Idempotency-Key": "h"})
    assert placed.status_code == 201, placed.json()
    hold_id = placed.json()["data"]["id"]
    end = f"/api/holds/{hold_id}/{action}"

    assert charge_of(treasury_api, clock, end, bad, "bad") == (400, {TRANSFERS: 1})
    assert charge_of(treasury_api, clock, end, body, "a, b") == (400, {TRANSFERS: 1})
    assert charge_of(treasury_api, clock, f"{end}?surprise=1", body, "q") == (400, {TRANSFERS: 1})
    assert charge_of(treasury_api, clock, f"/api/holds/{uuid.uuid4()}/{action}", body, "u") == (404, {TRANSFERS: 1})
    assert charge_of(treasury_api, clock, end, body, "e") == (200, {TRANSFERS: 1})
    assert charge_of(treasury_api, clock, end, body, "e") == (200, {TRANSFERS: 1})


@pytest.mark.parametrize("action", ["capture", "void", "extend"])
def test_an_end_of_a_hold_reads_its_key_once_at_the_door(clock, treasury_api, funded_wallet, action):
    # The key from the body when no header carries it, and a header and a
    # body key that differ refused (transfers.views.MoneyRequest), as placing.
    source, destination = funded_wallet("100.00"), funded_wallet("0")
    path, hold = money("hold", source, destination, "h", "5.00")
    hold_id = treasury_api.post(path, hold, format="json", headers={"Idempotency-Key": "h"}).json()["data"]["id"]
    end = f"/api/holds/{hold_id}/{action}"
    body = {"expiresInSeconds": 1200} if action == "extend" else {}

    differ = treasury_api.post(end, {**body, "idempotencyKey": "b"}, format="json", headers={"Idempotency-Key": "a"})
    assert differ.status_code == 400, differ.json()
    assert treasury_api.post(end, {**body, "idempotencyKey": "b"}, format="json").status_code == 200


def test_an_end_of_a_hold_over_the_limit_is_429_takes_no_lock_and_ends_nothing(
    rates, clock, treasury_api, funded_wallet
):
    source, destination = funded_wallet("100.00"), funded_wallet("0")
    path, hold = money("hold", source, destination, "h", "5.00")
    hold_id = treasury_api.post(path, hold, format="json", headers={"Idempotency-Key": "h"}).json()["data"]["id"]
    rates(transfers="1/min")

    capture = treasury_api.post(f"/api/holds/{hold_id}/capture", {}, format="json", headers={"Idempotency-Key": "c"})
    assert_throttled(capture)

    lock = cache.make_key(
        idempotency_lock_name(treasury_api.user.pk, unit_lock_key(Unit.HOLD_END, "c", hold_id=hold_id))
    )
    assert not get_redis_connection("default").exists(lock)
    assert treasury_api.get(f"/api/holds/{hold_id}").json()["data"]["status"] == "OPEN"


def placed_holds(api, source, destination, count: int) -> list[str]:
    path, hold = money("hold", source, destination, "", "5.00")
    return [
        api.post(path, hold, format="json", headers={"Idempotency-Key": f"h{i}"}).json()["data"]["id"]
        for i in range(count)
    ]


@pytest.mark.parametrize("action", ["capture", "void"])
def test_ending_a_set_of_holds_is_charged_as_ending_one(clock, treasury_api, funded_wallet, action):
    # Charged by transfers.views.admit (no longer by DRF before the view), and
    # as before: one unit of transfers, whatever the request turns out to be.
    source, destination = funded_wallet("100.00"), funded_wallet("0")
    hold_ids = placed_holds(treasury_api, source, destination, 2)
    body = {"holds": [{"holdId": hold_id} for hold_id in hold_ids]}
    path = f"/api/holds/{action}"

    assert charge_of(treasury_api, clock, path, {"holds": []}, "bad") == (400, {TRANSFERS: 1})
    assert charge_of(treasury_api, clock, path, body, "a, b") == (400, {TRANSFERS: 1})
    assert charge_of(treasury_api, clock, f"{path}?surprise=1", body, "q") == (400, {TRANSFERS: 1})
    unknown = {"holds": [{"holdId": str(uuid.uuid4())}]}
    assert charge_of(treasury_api, clock, path, unknown, "u") == (404, {TRANSFERS: 1})
    assert charge_of(treasury_api, clock, path, body, "e") == (200, {TRANSFERS: 1})
    assert charge_of(treasury_api, clock, path, body, "e") == (200, {TRANSFERS: 1})


@pytest.mark.parametrize("action", ["capture", "void"])
def test_a_set_of_holds_reads_its_key_at_the_door_as_ending_one(clock, treasury_api, funded_wallet, action):
    # Unchanged: the same reader (transfers.views.MoneyRequest) read it in the view before.
    source, destination = funded_wallet("100.00"), funded_wallet("0")
    body = {"holds": [{"holdId": hold_id} for hold_id in placed_holds(treasury_api, source, destination, 2)]}
    path = f"/api/holds/{action}"

    differ = treasury_api.post(path, {**body, "idempotencyKey": "b"}, format="json", headers={"Idempotency-Key": "a"})
    assert differ.status_code == 400 and "idempotencyKey" in differ.json()["errors"], differ.json()
    missing = treasury_api.post(path, body, format="json")
    assert missing.status_code == 400 and "idempotencyKey" in missing.json()["errors"], missing.json()
    assert treasury_api.post(path, {**body, "idempotencyKey": "b"}, format="json").status_code == 200
    again = treasury_api.post(path, body, format="json", headers={"Idempotency-Key": "b"})
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"


def test_a_set_of_holds_over_the_limit_is_429_takes_no_lock_and_ends_nothing(rates, clock, treasury_api, funded_wallet):
    source, destination = funded_wallet("100.00"), funded_wallet("0")
    hold_ids = placed_holds(treasury_api, source, destination, 2)
    rates(transfers="1/min")
    body = {"holds": [{"holdId": hold_id} for hold_id in hold_ids]}

    capture = treasury_api.post("/api/holds/capture", body, format="json", headers={"Idempotency-Key": "c"})
    assert_throttled(capture)

    lock = cache.make_key(idempotency_lock_name(treasury_api.user.pk, unit_lock_key(Unit.HOLD_END, "c")))
    assert not get_redis_connection("default").exists(lock)
    assert {treasury_api.get(f"/api/holds/{hold_id}").json()["data"]["status"] for hold_id in hold_ids} == {"OPEN"}


def test_a_request_of_several_units_waits_until_all_of_them_fit(rates, clock):
    rates(transfers="10/min")
    client = UnitRequest()
    clock.now = WINDOW_START + 59
    assert admitted(client) == 10
    clock.now = WINDOW_START + MINUTE + 30

    # Half of the previous ten still weigh: five units fit at once.
    assert ClientRateThrottle("transfers", units=5).allow_request(client, None)
    # Three more need the previous window to weigh under 3 (5 + 2 + 10 * (1 - t / 60) < 10): past 42 s.
    refused = ClientRateThrottle("transfers", units=3)
    assert not refused.allow_request(client, None)
    assert refused.wait() == pytest.approx(12, abs=0.01)
    clock.advance(math.ceil(refused.wait()))  # as the exception handler rounds it
    assert not ClientRateThrottle("transfers", units=4).allow_request(client, None)
    assert ClientRateThrottle("transfers", units=3).allow_request(client, None)


# --- every scope has a rate, checked at start-up ---------------------------------------------


def test_every_routed_views_scope_has_a_rate():
    assert check_throttle_scopes() == []


class OpenDoorViewSet(ApiViewSet):
    throttle_scopes = {"create": None, "update": ChargedOnLookup(new=TRANSFERS, replay="replay")}

    def create(self, request):
        return Response()

    def update(self, request):
        return Response()


class UndeclaredViewSet(ApiViewSet):
    throttle_scopes = {"list": "reads"}

    def list(self, request):
        return Response()

    def create(self, request):
        return Response()


urlpatterns = [path("open-door", OpenDoorViewSet.as_view({"post": "create", "put": "update"}))]
undeclared_urlpatterns = [path("undeclared", UndeclaredViewSet.as_view({"get": "list", "post": "create"}))]


def test_a_scope_without_a_rate_stops_the_service_at_start_up(settings):
    settings.ROOT_URLCONF = __name__

    errors = check_throttle_scopes()

    assert [(error.id, error.obj) for error in errors] == [("wallet.E001", OpenDoorViewSet)] * 2
    assert "['create'] names None" in errors[0].msg and "['update'] names 'replay'" in errors[1].msg
    with pytest.raises(SystemCheckError):
        call_command("check")


def test_a_rate_of_none_stops_the_service_at_start_up(settings):
    # DRF reads a rate of None as "unlimited": the scope's requests would go
    # through uncounted (docs/operations.md, "Rate limits").
    rest_framework = copy.deepcopy(settings.REST_FRAMEWORK)
    rest_framework["DEFAULT_THROTTLE_RATES"]["reads"] = None
    settings.REST_FRAMEWORK = rest_framework

    errors = check_throttle_scopes()

    assert errors and {error.id for error in errors} == {"wallet.E001"}
    assert all("'reads', which has no rate" in error.msg for error in errors)


def test_a_routed_action_without_a_scope_stops_the_service_at_start_up(settings):
    settings.ROOT_URLCONF = f"{__name__}_undeclared"
    sys.modules[settings.ROOT_URLCONF] = type(sys)("undeclared")
    sys.modules[settings.ROOT_URLCONF].urlpatterns = undeclared_urlpatterns
    try:
        (error,) = check_throttle_scopes()
    finally:
        del sys.modules[settings.ROOT_URLCONF]

    assert (error.id, error.obj) == ("wallet.E002", UndeclaredViewSet)
    assert "'create' without a throttle_scopes entry" in error.msg


def test_a_transfers_rate_below_a_full_batch_stops_the_service_at_start_up(rates, settings):
    settings.BATCH_MAX_PAYOUTS = 1000
    rates(transfers="1000/min")
    assert check_a_full_batch_fits_the_transfers_rate() == []

    rates(transfers="999/min")

    (error,) = check_a_full_batch_fits_the_transfers_rate()
    assert error.id == "transfers.E001" and "999" in error.msg


def test_only_an_action_declared_charged_on_lookup_may_charge_itself(rf):
    view = OpenDoorViewSet(action="create", request=None)

    with pytest.raises(TypeError, match="charged by DRF before it runs"):
        view.charge(rf.post("/open-door"), replay=False)
