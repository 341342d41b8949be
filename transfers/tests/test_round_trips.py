"""Pins what one transfer and one replay cost in database and Redis round trips,
so that a later change cannot silently add some (bench/README.md has what each
one costs on this machine). Counted on the real PostgreSQL and Redis."""

from contextlib import contextmanager

import pytest
import redis.connection
from django.db import connection
from django.test.utils import CaptureQueriesContext

from clients.authentication import client_cache, credentials_changed

pytestmark = pytest.mark.django_db

# A transfer: the API key (with the client and its permissions), the idempotency lookup, the PENDING
# INSERT (wallets resolved inside it), then the settle transaction: BEGIN, lock
# the log and then both wallets in one statement, move both legs and mark
# COMPLETED in one statement, COMMIT. The wallets' lock reads their tiers and
# daily totals in the same statement (transfers/locks.py): a wallet without a
# tier, as here, costs no more.
TRANSFER_STATEMENTS = ["FROM api_keys", "FROM transaction_logs", "INSERT INTO transaction_logs"] + [
    "BEGIN",
    'FOR NO KEY UPDATE OF "transaction_logs"',
    "WITH legs AS",
    "COMMIT",
]
# One round trip: the client's rate limit (EVALSHA of the sliding-window
# script), which takes the idempotency lock too once the request is let in
# (transfers/locks.py, taken_with_charge); once the log is finished the lock
# is left to expire (IdempotencyLockHandle). The suite runs with the key cache off
# (conftest.py); in production a cached key costs neither its query nor a
# round trip: the rate limit's script reads the credentials version (below).
TRANSFER_REDIS_COMMANDS = [[b"EVALSHA"]]


def commands(round_trip: bytes | list[bytes]) -> list[bytes]:
    """The command names of one round trip, in RESP (*N, $len, NAME, ...)."""
    lines = (round_trip if isinstance(round_trip, bytes) else b"".join(round_trip)).split(b"\r\n")
    names = []
    for i, line in enumerate(lines[:-1]):
        if line.startswith(b"*"):
            names.append(lines[i + 2])
    return names


@contextmanager
def counting_redis_round_trips():
    sent = []
    original = redis.connection.AbstractConnection.send_packed_command

    def counting(self, command, check_health=True):
        sent.append(command)
        return original(self, command, check_health)

    redis.connection.AbstractConnection.send_packed_command = counting
    try:
        yield sent
    finally:
        redis.connection.AbstractConnection.send_packed_command = original


def transfer(api, source, destination, key="pinned"):
    body = {"sourceWalletId": str(source.pk), "destinationWalletId": str(destination.pk), "amount": "1.00"}
    return api.post("/api/transfer", body, format="json", headers={"Idempotency-Key": key})


# transaction=True: outside a test's transaction, BEGIN and COMMIT are real
# (inside one they would be savepoints).
@pytest.mark.django_db(transaction=True)
def test_one_transfer_costs_seven_statements_and_one_redis_round_trip(treasury_api, funded_wallet):
    source, destination = funded_wallet("10.00"), funded_wallet("0")
    # Once per Redis server, redis-py loads a script it has not seen: not
    # part of what a transfer costs.
    assert transfer(treasury_api, source, destination, key="warm-up").status_code == 201

    with CaptureQueriesContext(connection) as queries, counting_redis_round_trips() as redis_trips:
        response = transfer(treasury_api, source, destination)

    assert response.status_code == 201
    assert len(queries) == len(TRANSFER_STATEMENTS), [q["sql"][:80] for q in queries]
    for query, expected in zip(queries, TRANSFER_STATEMENTS, strict=True):
        assert expected in query["sql"], (expected, query["sql"][:200])
    # The log's lock statement takes its wallets' locks too.
    assert "FOR NO KEY UPDATE OF w" in queries[4]["sql"]
    assert [commands(trip) for trip in redis_trips] == TRANSFER_REDIS_COMMANDS


# A hold's capture: the API key, then the one transaction that ends it: BEGIN,
# lock the hold (the only read of it: whose it is, whether it is OPEN, its
# amount), lock both wallets, insert the capture's PENDING TRANSFER with the
# hold's row and its event, the transfer's SETTLE, COMMIT. No read of the hold
# before its lock (transfers/holds.py, _end): that is a retry's path.
CAPTURE_STATEMENTS = ["FROM api_keys"] + [
    "BEGIN",
    'FOR NO KEY UPDATE OF "holds"',
    "FOR NO KEY UPDATE OF w",
    "INSERT INTO transaction_logs",
    "WITH legs AS",
    "COMMIT",
]


def place_hold(api, source, destination, key):
    body = {
        "sourceWalletId": str(source.pk),
        "destinationWalletId": str(destination.pk),
        "amount": "1.00",
        "expiresInSeconds": 600,
    }
    response = api.post("/api/holds", body, format="json", headers={"Idempotency-Key": key})
    assert response.status_code == 201, response.json()
    return response.json()["data"]["id"]


@pytest.mark.django_db(transaction=True)
def test_one_capture_costs_seven_statements_and_one_redis_round_trip(treasury_api, funded_wallet):
    source, destination = funded_wallet("10.00"), funded_wallet("0")
    warm = place_hold(treasury_api, source, destination, "warm-up")
    assert (
        treasury_api.post(f"/api/holds/{warm}/capture", {}, format="json", headers={"Idempotency-Key": "w"}).status_code
        == 200
    )
    hold_id = place_hold(treasury_api, source, destination, "pinned")

    with CaptureQueriesContext(connection) as queries, counting_redis_round_trips() as redis_trips:
        response = treasury_api.post(
            f"/api/holds/{hold_id}/capture", {}, format="json", headers={"Idempotency-Key": "pinned-capture"}
        )

    assert response.status_code == 200, response.json()
    assert len(queries) == len(CAPTURE_STATEMENTS), [q["sql"][:80] for q in queries]
    for query, expected in zip(queries, CAPTURE_STATEMENTS, strict=True):
        assert expected in query["sql"], (expected, query["sql"][:200])
    # The rate limit, which takes the capture key's lock too (left to expire).
    assert [commands(trip) for trip in redis_trips] == TRANSFER_REDIS_COMMANDS


def first_time(api, unit: str, source, destination) -> tuple[str, dict]:
    """The path and body of a first-time request of each unit whose key the
    door locks with its charge (transfers.locks.unit_lock_key)."""
    if unit == "batch":
        payouts = [{"destinationWalletId": str(destination.pk), "amount": "1.00", "idempotencyKey": "p"}]
        return "/api/transfers/batch", {"sourceWalletId": str(source.pk), "atomic": True, "transfers": payouts}
    if unit == "hold":
        return "/api/holds", {
            "sourceWalletId": str(source.pk),
            "destinationWalletId": str(destination.pk),
            "amount": "1.00",
            "expiresInSeconds": 600,
        }
    hold_id = place_hold(api, source, destination, f"{unit}-hold")
    if unit == "hold end":
        return f"/api/holds/{hold_id}/void", {}
    return "/api/holds/void", {"holds": [{"holdId": hold_id}]}


# What a first-time request costs in Redis, by the unit its key names. The
# service takes the very lock its charge took (one name for both,
# transfers.locks.unit_lock_key): a name that drifted would cost a second
# lock, a round trip of its own (SET) and its release.
# - a batch, a hold placed, one hold ended: the charge, which takes the lock,
#   left to expire once the work is done (as a transfer's, pinned above);
# - a set of holds ended: the charge, and the lock's release (the service
#   releases it: a set can be refused before it, by its holds).
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("unit", "round_trips"),
    [
        ("batch", [[b"EVALSHA"]]),
        ("hold", [[b"EVALSHA"]]),
        ("hold end", [[b"EVALSHA"]]),
        ("set of holds ended", [[b"EVALSHA"], [b"EVALSHA"]]),
    ],
)
def test_a_first_time_request_of_each_unit_takes_its_lock_with_its_charge(
    treasury_api, funded_wallet, unit, round_trips
):
    source, destination = funded_wallet("10.00"), funded_wallet("0")
    path, body = first_time(treasury_api, unit, source, destination)
    # The script's first run on this Redis server loads it (transfer, above).
    assert transfer(treasury_api, source, destination, key="warm-up").status_code == 201

    with counting_redis_round_trips() as redis_trips:
        response = treasury_api.post(path, body, format="json", headers={"Idempotency-Key": "pinned"})

    assert response.status_code in (200, 201), response.json()
    assert [commands(trip) for trip in redis_trips] == round_trips


def test_a_replay_of_a_set_of_holds_ended_costs_its_charge_and_the_unused_locks_release(treasury_api, funded_wallet):
    # The door takes the key's lock with the charge before the service can
    # tell a replay (holds.holds_end_set answers it from the holds, before
    # its lock): one round trip more than when DRF charged it, which a
    # first-time set saves (above).
    source, destination = funded_wallet("10.00"), funded_wallet("0")
    path, body = first_time(treasury_api, "set of holds ended", source, destination)
    assert treasury_api.post(path, body, format="json", headers={"Idempotency-Key": "set"}).status_code == 200

    with counting_redis_round_trips() as redis_trips:
        response = treasury_api.post(path, body, format="json", headers={"Idempotency-Key": "set"})

    assert response.status_code == 200 and response.headers["Idempotent-Replayed"] == "true"
    assert [commands(trip) for trip in redis_trips] == [[b"EVALSHA"], [b"EVALSHA"]]


def test_one_replay_costs_two_statements_and_one_redis_round_trip(treasury_api, funded_wallet):
    source, destination = funded_wallet("10.00"), funded_wallet("0")
    transfer(treasury_api, source, destination)

    with CaptureQueriesContext(connection) as queries, counting_redis_round_trips() as redis_trips:
        response = transfer(treasury_api, source, destination)

    assert response.status_code == 200
    assert ["FROM api_keys" in queries[0]["sql"], "FROM transaction_logs" in queries[1]["sql"]] == [True, True]
    assert len(queries) == 2
    # The replays rate limit only: no lock.
    assert [commands(trip) for trip in redis_trips] == [[b"EVALSHA"]]


def test_with_the_key_cache_a_replay_is_one_statement_and_one_redis_round_trip(settings, treasury_api, funded_wallet):
    settings.API_AUTH_CACHE_SECONDS = 10
    client_cache.clear()
    credentials_changed()  # a running service has a credentials version
    source, destination = funded_wallet("10.00"), funded_wallet("0")
    transfer(treasury_api, source, destination)

    with CaptureQueriesContext(connection) as queries, counting_redis_round_trips() as redis_trips:
        response = transfer(treasury_api, source, destination)

    client_cache.clear()
    assert response.status_code == 200
    assert len(queries) == 1
    # The price of revocation on the next request: the cached client is used
    # only under the credentials version it was read with, which the rate
    # limit's script reads in the same round trip.
    assert [commands(trip) for trip in redis_trips] == [[b"EVALSHA"]]


def test_the_per_request_health_check_costs_no_round_trip_on_a_live_connection(monkeypatch, funded_wallet):
    from django.db.backends.postgresql.base import DatabaseWrapper as DjangoWrapper

    funded_wallet("1.00")  # the connection is open and idle
    round_trips = []
    monkeypatch.setattr(DjangoWrapper, "is_usable", lambda self: round_trips.append(1) or True)

    assert connection.is_usable() is True
    assert round_trips == []


def test_a_connection_the_server_ended_fails_the_health_check():
    import psycopg

    from wallet_project.db.base import DatabaseWrapper

    wrapper = DatabaseWrapper({**connection.settings_dict}, alias="health-check-probe")
    wrapper.connect()
    try:
        pid = wrapper.connection.info.backend_pid
        params = wrapper.get_connection_params()
        with psycopg.connect(**params, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s, 5000)", [pid])
        assert wrapper.is_usable() is False
    finally:
        wrapper.close()
