"""Reads that tolerate lag come from the streaming replica; what decides
whether money moves reads the primary; a replica that is down or behind the
bound sends reads to the primary, with no error to the client and a metric
that says so (docs/operations.md "Running it", wallet_project/db/routers.py).

Against a real hot standby of the test database (conftest.py's `replica`:
pg_basebackup of the local PostgreSQL, streaming), whose replay a test can
pause to make it fall behind, or stop.
"""

import time
import uuid
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connections
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from prometheus_client import REGISTRY

from reconciliation.tests.faults import interrupt_at, post_money, terminate_own_backend
from wallet_project.db.routers import REPLICA
from wallets.tests.test_admin import staff_client

pytestmark = [
    pytest.mark.django_db(transaction=True, databases=["default", REPLICA]),
    pytest.mark.usefixtures("replica_alias"),
]


def reads(served_by: str, reason: str = "") -> float:
    return REGISTRY.get_sample_value("wallet_replica_reads_total", {"served_by": served_by, "reason": reason}) or 0.0


def transfer(api, source, destination, amount="10.00", key=None):
    key = key or f"k-{uuid.uuid4()}"
    payload = {"sourceWalletId": str(source.pk), "destinationWalletId": str(destination.pk), "amount": amount}
    response = api.post("/api/transfer", payload, format="json", headers={"Idempotency-Key": key})
    assert response.status_code in (200, 201), response.json()
    return key, response.json()["data"]["reference"]


def history(api, wallet) -> list[str]:
    response = api.get(f"/api/wallets/{wallet.pk}/transactions")
    assert response.status_code == 200, response.json()
    return [log["reference"] for log in response.json()["data"]["results"]]


def statements_on(alias: str, action) -> list[str]:
    with CaptureQueriesContext(connections[alias]) as captured:
        action()
    return [query["sql"] for query in captured.captured_queries]


def test_history_is_read_from_the_replica_once_it_has_replayed(replica, treasury_api, funded_wallet):
    source, destination = funded_wallet("100.00"), funded_wallet("0")
    _, reference = transfer(treasury_api, source, destination)
    replica.wait_for_replay()
    served_before = reads("replica")

    on_primary = statements_on("default", lambda: statements_on(REPLICA, lambda: history(treasury_api, destination)))
    seen = history(treasury_api, destination)

    assert seen == [reference]
    assert not any("transaction_logs" in sql for sql in on_primary)
    assert reads("replica") == served_before + 2


def test_history_within_the_lag_bound_may_lack_what_the_replica_has_not_replayed(
    replica, settings, treasury_api, funded_wallet
):
    settings.DATABASE_REPLICA_MAX_LAG_SECONDS = 3600
    source, destination = funded_wallet("100.00"), funded_wallet("0")
    _, first = transfer(treasury_api, source, destination)
    replica.wait_for_replay()
    replica.pause_replay()

    _, second = transfer(treasury_api, source, destination)

    assert history(treasury_api, destination) == [first]  # the replica's view: lag the contract tolerates
    replica.resume_replay()
    replica.wait_for_replay()
    assert history(treasury_api, destination) == [second, first]


def test_lookups_of_a_transfer_the_replica_lacks_go_to_the_primary(replica, settings, treasury_api, funded_wallet):
    settings.DATABASE_REPLICA_MAX_LAG_SECONDS = 3600
    source, destination = funded_wallet("100.00"), funded_wallet("0")
    replica.wait_for_replay()
    replica.pause_replay()
    key, reference = transfer(treasury_api, source, destination)
    from_primary = reads("primary", "not_on_replica")

    by_key = treasury_api.get(f"/api/transfer/{key}")
    by_reference = treasury_api.get(f"/api/transfer/reference/{reference}")

    assert by_key.status_code == 200, by_key.json()
    assert by_key.json()["data"]["reference"] == reference
    assert by_reference.status_code == 200, by_reference.json()
    assert by_reference.json()["data"]["status"] == "COMPLETED"
    assert reads("primary", "not_on_replica") == from_primary + 2


def test_lookup_of_a_transaction_pending_on_the_replica_reads_the_primary(
    replica, settings, monkeypatch, treasury_api, funded_wallet
):
    """A copy still PENDING may be settling on the primary: not final, not served."""
    settings.DATABASE_REPLICA_MAX_LAG_SECONDS = 3600
    source, destination = funded_wallet("100.00"), funded_wallet("0")
    payload = {"sourceWalletId": str(source.pk), "destinationWalletId": str(destination.pk), "amount": "10.00"}
    key = f"k-{uuid.uuid4()}"
    # The connection dies after the PENDING log: the replica gets it PENDING.
    interrupt_at("after_pending_log", terminate_own_backend, patch=monkeypatch.setattr)
    assert post_money(treasury_api, "/api/transfer", payload, key).status_code == 503
    replica.wait_for_replay()
    replica.pause_replay()
    assert post_money(treasury_api, "/api/transfer", payload, key).status_code == 201  # settled on the primary only
    stale = reads("primary", "not_on_replica")

    response = treasury_api.get(f"/api/transfer/{key}")

    assert response.json()["data"]["status"] == "COMPLETED"
    assert reads("primary", "not_on_replica") == stale + 1


def test_money_requests_and_verify_ledger_never_read_the_replica(replica, treasury_api, funded_wallet):
    source, destination = funded_wallet("100.00"), funded_wallet("0")
    replica.wait_for_replay()

    def money_and_books():
        key, _ = transfer(treasury_api, source, destination)
        transfer(treasury_api, source, destination, key=key)  # the replay: the idempotency lookup
        withdrawal = treasury_api.post(
            f"/api/wallets/{source.pk}/withdraw", {"amount": "1.00"}, format="json",
            headers={"Idempotency-Key": f"w-{uuid.uuid4()}"},
        )  # fmt: skip
        assert withdrawal.status_code == 201, withdrawal.json()
        call_command("verify_ledger", stdout=StringIO())

    assert statements_on(REPLICA, money_and_books) == []


def test_replica_beyond_the_lag_bound_sends_reads_to_the_primary_and_says_so(
    replica, settings, treasury_api, funded_wallet
):
    settings.DATABASE_REPLICA_MAX_LAG_SECONDS = 0.5
    source, destination = funded_wallet("100.00"), funded_wallet("0")
    replica.wait_for_replay()
    replica.pause_replay()
    _, reference = transfer(treasury_api, source, destination)
    time.sleep(1.0)  # the unreplayed transfer is now older than the bound
    lagging = reads("primary", "replica_lagging")

    on_replica = statements_on(REPLICA, lambda: history(treasury_api, destination))

    assert history(treasury_api, destination) == [reference]
    assert not any("transaction_logs" in sql for sql in on_replica)
    assert reads("primary", "replica_lagging") == lagging + 2
    assert REGISTRY.get_sample_value("wallet_replica_lag_seconds") > 0.5


def test_stopped_replica_sends_reads_to_the_primary_with_no_error(replica, settings, treasury_api, funded_wallet):
    source, destination = funded_wallet("100.00"), funded_wallet("0")
    _, reference = transfer(treasury_api, source, destination)
    replica.stop()
    down = reads("primary", "replica_down")

    seen = history(treasury_api, destination)

    assert seen == [reference]
    assert reads("primary", "replica_down") == down + 1
    settings.METRICS_TOKEN = "scraper"
    scraped = Client().get("/metrics", headers={"Authorization": "Bearer scraper"}).content.decode()
    assert f'wallet_replica_reads_total{{reason="replica_down",served_by="primary"}} {down + 1}' in scraped


def test_replica_that_fails_mid_read_is_left_for_the_primary(replica, settings, treasury_api, funded_wallet):
    """Stopped between the health check and the read: that read, and the
    ones after it until the next check, go to the primary."""
    source, destination = funded_wallet("100.00"), funded_wallet("0")
    _, reference = transfer(treasury_api, source, destination)
    replica.wait_for_replay()
    assert history(treasury_api, destination) == [reference]  # checked, and connected to the replica
    settings.DATABASE_REPLICA_CHECK_SECONDS = 3600
    replica.stop()
    failed = reads("primary", "replica_failed")

    assert history(treasury_api, destination) == [reference]
    assert history(treasury_api, destination) == [reference]
    assert reads("primary", "replica_failed") == failed + 2


def test_admin_lists_read_the_replica_and_admin_actions_the_primary(replica, funded_wallet, migrated_groups):
    wallet = funded_wallet("10.00")
    replica.wait_for_replay()
    support = staff_client("Support")
    changelist = reverse("admin:wallets_wallet_changelist")

    listed = statements_on(REPLICA, lambda: support.get(changelist))
    freeze = {"action": "freeze_wallets", "_selected_action": [str(wallet.pk)], "apply": "Freeze", "reason": "test"}
    acted = statements_on(REPLICA, lambda: support.post(changelist, freeze))

    assert any('"wallets"' in sql for sql in listed)
    assert acted == []
    wallet.refresh_from_db()
    assert not wallet.is_active
