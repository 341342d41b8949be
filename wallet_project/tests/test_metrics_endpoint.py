"""GET /metrics: behind a bearer token, in Prometheus's text format, and each
figure moves when what it counts happens.

In process there is no PROMETHEUS_MULTIPROC_DIR, so the counters are this
process's default registry: they keep counting across tests, and a test
compares a scrape before with one after. The reconciliation and ledger
figures come from Redis (under this run's cache prefix), the PENDING ones
from PostgreSQL, as they do in production.
"""

import copy
import secrets
import time
from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from reconciliation.tests.faults import free_port
from transfers import locks, services
from transfers.models import Movement, TransactionLog, TransactionType
from wallet_project.tests.test_rate_limits import clock  # noqa: F401 (a fixture)

pytestmark = pytest.mark.django_db

TOKEN = "s3cret-scraper-token"


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def increase(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return (value(after, name, **labels) or 0.0) - (value(before, name, **labels) or 0.0)


@pytest.fixture
def scrape(settings):
    """scrape() -> every sample of one authorised GET /metrics."""
    settings.METRICS_TOKEN = TOKEN

    def get() -> Samples:
        response = Client().get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert response.status_code == 200, response.content
        return parse(response.content.decode())

    return get


def transfer(api, source, destination, amount="10.00", key="key-1"):
    body = {"sourceWalletId": str(source.pk), "destinationWalletId": str(destination.pk), "amount": amount}
    return api.post("/api/transfer", body, format="json", headers={"Idempotency-Key": key})


def pending_log(source, destination, *, age: timedelta) -> TransactionLog:
    """A PENDING log as a crash after step 3 leaves it, `age` old."""
    log, created = services._record_pending(
        client=source.owner,
        idempotency_key="crashed",
        fingerprint="0" * 64,
        movement=Movement(TransactionType.TRANSFER, Decimal("5.00"), {}, source.pk, destination.pk),
    )
    assert created
    TransactionLog.objects.filter(pk=log.pk).update(created_at=timezone.now() - age)
    return log


# --- access -----------------------------------------------------------------------------


def test_without_a_configured_token_the_endpoint_does_not_exist(settings):
    settings.METRICS_TOKEN = ""

    assert Client().get("/metrics").status_code == 404
    assert Client().get("/metrics", headers={"Authorization": "Bearer "}).status_code == 404


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong", f"Token {TOKEN}", f"Bearer {TOKEN}x", f"bearer {TOKEN}", TOKEN],
    ids=["missing", "wrong", "other-scheme", "longer", "lower-case-scheme", "bare"],
)
def test_without_the_token_it_is_401_in_json(settings, authorization):
    settings.METRICS_TOKEN = TOKEN
    headers = {"Authorization": authorization} if authorization else {}

    response = Client().get("/metrics", headers=headers)

    assert response.status_code == 401
    assert response["Content-Type"] == "application/json"
    assert response.json() == {
        "success": False,
        "message": "A valid bearer token is required.",
        "code": "not_authenticated",
    }
    assert response["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert b"wallet_" not in response.content


def test_guessing_the_token_is_throttled_per_address_like_the_apis_keys(settings, clock):  # noqa: F811 (the fixture)
    """A wrong token counts as a failed authentication of its address, a
    missing one as a request without a key (wallet_project/throttling.py):
    past either limit 429, and the right token still works from there."""
    settings.METRICS_TOKEN = TOKEN
    rest_framework = copy.deepcopy(settings.REST_FRAMEWORK)
    rest_framework["DEFAULT_THROTTLE_RATES"].update(auth_failures="3/min", no_key="2/min")
    settings.REST_FRAMEWORK = rest_framework
    address = f"2001:db8::{secrets.token_hex(2)}"

    def scrape(authorization=None):
        headers = {"Authorization": authorization} if authorization else {}
        return Client(REMOTE_ADDR=address).get("/metrics", headers=headers)

    assert [scrape(f"Bearer {secrets.token_urlsafe(8)}").status_code for _ in range(4)] == [401, 401, 401, 429]
    assert [scrape().status_code for _ in range(3)] == [401, 401, 429]
    throttled = scrape("Bearer wrong")
    assert throttled.json()["code"] == "throttled" and int(throttled["Retry-After"]) >= 1
    assert scrape(f"Bearer {TOKEN}").status_code == 200
    # Another address has its own counts (an address of this test alone: the counters outlive a test).
    assert Client(REMOTE_ADDR=f"2001:db8::{secrets.token_hex(2)}:1").get("/metrics").status_code == 401


def test_with_the_token_the_metrics_are_served_in_prometheus_text_format(settings):
    settings.METRICS_TOKEN = TOKEN

    response = Client().get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    names = {family.name for family in text_string_to_metric_families(response.content.decode())}
    assert {
        "wallet_http_requests",
        "wallet_transfers",
        "wallet_dependency_up",
        "wallet_pending_transfers",
        "wallet_reconciliation_runs",
    } <= names


# --- what the processes did -------------------------------------------------------------


def test_a_transfer_counts_once_as_completed_and_once_as_a_request(scrape, treasury_api, funded_wallet):
    source, destination = funded_wallet("100.00"), funded_wallet("0")
    before = scrape()

    assert transfer(treasury_api, source, destination).status_code == 201

    after = scrape()
    completed = {"type": "TRANSFER", "outcome": "completed", "reason": ""}
    assert increase(before, after, "wallet_transfers_total", **completed) == 1
    request = {"method": "POST", "view": "transfer-create"}
    assert increase(before, after, "wallet_http_requests_total", **request, status="201") == 1
    assert increase(before, after, "wallet_http_request_duration_seconds_count", **request) == 1
    assert increase(before, after, "wallet_transfer_lock_wait_seconds_count") == 1
    assert increase(before, after, "wallet_transfer_replays_total", type="TRANSFER") == 0
    # The scrape before is itself counted, once it has been answered.
    assert increase(before, after, "wallet_http_requests_total", method="GET", view="metrics", status="200") == 1


def test_deposits_and_withdrawals_count_under_their_own_type(scrape, treasury_api, funded_wallet):
    wallet = funded_wallet("100.00")
    before = scrape()

    for action, key in (("deposit", "in"), ("withdraw", "out"), ("withdraw", "out-2")):
        response = treasury_api.post(
            f"/api/wallets/{wallet.pk}/{action}", {"amount": "1.00"}, format="json", headers={"Idempotency-Key": key}
        )
        assert response.status_code == 201

    after = scrape()
    assert increase(before, after, "wallet_transfers_total", type="DEPOSIT", outcome="completed", reason="") == 1
    assert increase(before, after, "wallet_transfers_total", type="WITHDRAWAL", outcome="completed", reason="") == 2


def test_a_replay_counts_as_a_replay_not_as_a_transfer(scrape, treasury_api, funded_wallet):
    source, destination = funded_wallet("100.00"), funded_wallet("0")
    transfer(treasury_api, source, destination)
    before = scrape()

    assert transfer(treasury_api, source, destination).status_code == 200

    after = scrape()
    assert increase(before, after, "wallet_transfer_replays_total", type="TRANSFER") == 1
    assert increase(before, after, "wallet_transfers_total", type="TRANSFER", outcome="completed", reason="") == 0
    assert (
        increase(before, after, "wallet_http_requests_total", method="POST", view="transfer-create", status="200") == 1
    )


def test_a_failed_transfer_counts_as_failed_with_its_reason(scrape, treasury_api, funded_wallet):
    source, destination = funded_wallet("5.00"), funded_wallet("0")
    before = scrape()

    response = transfer(treasury_api, source, destination, amount="10.00")

    assert (response.status_code, response.json()["code"]) == (422, "insufficient_balance")
    after = scrape()
    failed = {"type": "TRANSFER", "outcome": "failed", "reason": "insufficient_balance"}
    assert increase(before, after, "wallet_transfers_total", **failed) == 1
    assert increase(before, after, "wallet_transfers_total", type="TRANSFER", outcome="completed", reason="") == 0
    # Its replay is a replay, not a second failure.
    assert transfer(treasury_api, source, destination, amount="10.00").status_code == 422
    again = scrape()
    assert increase(after, again, "wallet_transfers_total", **failed) == 0
    assert increase(after, again, "wallet_transfer_replays_total", type="TRANSFER") == 1


def test_key_conflicts_count_with_their_code(scrape, treasury_api, funded_wallet):
    source, destination = funded_wallet("100.00"), funded_wallet("0")
    transfer(treasury_api, source, destination, key="used")
    before = scrape()

    assert transfer(treasury_api, source, destination, amount="11.00", key="used").status_code == 422
    with locks.idempotency_lock(treasury_api.user.pk, "busy"):
        assert transfer(treasury_api, source, destination, key="busy").status_code == 409

    after = scrape()
    conflict = "wallet_transfer_key_conflicts_total"
    assert increase(before, after, conflict, type="TRANSFER", code="idempotency_key_reused") == 1
    assert increase(before, after, conflict, type="TRANSFER", code="idempotency_key_in_use") == 1
    assert increase(before, after, "wallet_transfers_total", type="TRANSFER", outcome="completed", reason="") == 0


# --- the state of the service -------------------------------------------------------


def test_pending_logs_are_counted_with_the_age_of_the_oldest(scrape, funded_wallet):
    source, destination = funded_wallet("100.00"), funded_wallet("0")
    before = scrape()
    assert (value(before, "wallet_pending_transfers"), value(before, "wallet_pending_oldest_age_seconds")) == (0, 0)

    pending_log(source, destination, age=timedelta(minutes=10))

    after = scrape()
    assert value(after, "wallet_pending_transfers") == 1
    assert 600 <= value(after, "wallet_pending_oldest_age_seconds") < 660
    assert value(after, "wallet_reconcile_pending_after_seconds") == 300


def test_a_reconcile_run_is_counted_ok_with_what_it_resolved_and_when(scrape, funded_wallet):
    source, destination = funded_wallet("100.00"), funded_wallet("0")
    pending_log(source, destination, age=timedelta(minutes=10))
    before = scrape()
    started = time.time()

    call_command("reconcile", stdout=StringIO())

    after = scrape()
    assert increase(before, after, "wallet_reconciliation_runs_total", result="ok") == 1
    assert increase(before, after, "wallet_reconciliation_runs_total", result="error") == 0
    assert increase(before, after, "wallet_reconciled_transfers_total", outcome="COMPLETED") == 1
    assert started <= value(after, "wallet_reconciliation_last_run_timestamp_seconds") <= time.time()
    assert value(after, "wallet_pending_transfers") == 0


def test_a_run_with_a_log_it_could_not_settle_is_counted_as_an_error(scrape, funded_wallet, monkeypatch):
    source, destination = funded_wallet("100.00"), funded_wallet("0")
    pending_log(source, destination, age=timedelta(minutes=10))

    def settle_fails(**kwargs):
        raise ValueError("something no one foresaw")

    monkeypatch.setattr("reconciliation.services.transaction_settle", settle_fails)
    before = scrape()

    with pytest.raises(CommandError, match="could not be settled"):
        call_command("reconcile", stdout=StringIO())

    after = scrape()
    assert increase(before, after, "wallet_reconciliation_runs_total", result="error") == 1
    assert increase(before, after, "wallet_reconciliation_runs_total", result="ok") == 0
    assert increase(before, after, "wallet_reconciled_transfers_total", outcome="ERROR") == 1
    assert value(after, "wallet_pending_transfers") == 1


def test_a_dry_run_is_not_a_run(scrape, funded_wallet):
    source, destination = funded_wallet("100.00"), funded_wallet("0")
    pending_log(source, destination, age=timedelta(minutes=10))
    before = scrape()

    call_command("reconcile", "--dry-run", stdout=StringIO())

    after = scrape()
    assert increase(before, after, "wallet_reconciliation_runs_total", result="ok") == 0
    assert value(after, "wallet_reconciliation_last_run_timestamp_seconds") == value(
        before, "wallet_reconciliation_last_run_timestamp_seconds"
    )


# ledger_discrepancies opens its own REPEATABLE READ transaction: outside a
# test transaction, as in production.
@pytest.mark.django_db(transaction=True)
def test_verify_ledger_sets_the_discrepancy_count_and_when_it_ran(scrape, funded_wallet):
    wallet = funded_wallet("100.00")
    started = time.time()
    call_command("verify_ledger", stdout=StringIO())
    clean = scrape()
    assert value(clean, "wallet_ledger_discrepancies") == 0
    assert started <= value(clean, "wallet_ledger_last_verify_timestamp_seconds") <= time.time()

    # A hand-edit in psql: the NGN books no longer sum to zero, and the
    # wallet's balance no longer matches its ledger.
    with connection.cursor() as cursor:
        cursor.execute("UPDATE wallets SET balance = balance + 1 WHERE id = %s", [wallet.pk])
    with pytest.raises(SystemExit) as stopped:
        call_command("verify_ledger", stdout=StringIO(), stderr=StringIO())

    assert stopped.value.code == 1
    broken = scrape()
    assert value(broken, "wallet_ledger_discrepancies") == 2
    assert value(broken, "wallet_ledger_last_verify_timestamp_seconds") >= value(
        clean, "wallet_ledger_last_verify_timestamp_seconds"
    )


# --- dependencies -----------------------------------------------------------------------


def test_with_redis_unreachable_the_scrape_answers_and_says_so(scrape, settings, funded_wallet):
    source, destination = funded_wallet("100.00"), funded_wallet("0")
    pending_log(source, destination, age=timedelta(minutes=10))
    assert value(scrape(), "wallet_dependency_up", component="redis") == 1
    caches = copy.deepcopy(settings.CACHES)
    caches["default"]["LOCATION"] = f"redis://127.0.0.1:{free_port()}/0"
    settings.CACHES = caches

    samples = scrape()

    assert value(samples, "wallet_dependency_up", component="redis") == 0
    assert value(samples, "wallet_dependency_up", component="database") == 1
    # What lives in PostgreSQL is still there; what lives in Redis is left out.
    assert value(samples, "wallet_pending_transfers") == 1
    assert not any(name.startswith("wallet_reconciliation_runs") for name, _ in samples)


def test_settlement_balances_and_the_largest_client_exposure_are_served_with_their_bounds(
    scrape, settings, treasury_api, funded_wallet
):
    settings.SETTLEMENT_ALERT_MAGNITUDE = Decimal("5000.00")
    settings.CLIENT_EXPOSURE_LIMIT = Decimal("7000.00")
    wallet = funded_wallet("300.00")
    funded_wallet("200.00", currency="USD")
    treasury_api.post(
        f"/api/wallets/{wallet.pk}/withdraw", {"amount": "100.00"}, format="json", headers={"Idempotency-Key": "w"}
    )

    samples = scrape()

    assert value(samples, "wallet_settlement_balance", currency="NGN") == -200.0
    assert value(samples, "wallet_settlement_balance", currency="USD") == -200.0
    assert value(samples, "wallet_client_exposure_largest", currency="NGN") == 200.0
    assert value(samples, "wallet_settlement_alert_magnitude") == 5000.0
    assert value(samples, "wallet_client_exposure_limit") == 7000.0
