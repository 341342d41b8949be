"""The database connection dies at each stage of placing and of capturing a
hold (a real pg_terminate_backend, as in reconciliation/tests/faults.py), and
a second service instance (another process, the production WSGI
application) races this one over the same hold: the hold is placed once,
ends once, and the money moves at most once."""

import json
import os
import subprocess
import sys
import uuid
from decimal import Decimal

import pytest
from django.conf import settings

from reconciliation.tests.faults import (
    assert_books_balance,
    database_env,
    post_money,
    stop_process,
    terminate_own_backend,
)
from transfers import engine, holds, locks
from transfers.exceptions import HoldNotOpen
from transfers.models import Hold, HoldStatus, TransactionLog

pytestmark = pytest.mark.django_db(transaction=True)


def kill_connection_after(monkeypatch, module, name: str) -> None:
    """Terminate this thread's backend just after the next call of module.name."""
    original = getattr(module, name)
    fired = []

    def interrupted(*args, **kwargs):
        result = original(*args, **kwargs)
        if not fired:
            fired.append(True)
            terminate_own_backend()
        return result

    monkeypatch.setattr(module, name, interrupted)


def held(wallet) -> tuple[Decimal, Decimal]:
    wallet.refresh_from_db()
    return wallet.balance, wallet.held


# stage: (where the connection dies, what the interrupted request answers)
PLACE_STAGES = {
    # The wallets are locked inside the placing transaction; nothing is committed.
    "inside_place": ((locks, "lock_wallets"), 503),
    # The hold and its reservation are committed; nothing after needs the database.
    "after_place_commit": ((engine, "place_hold"), 201),
}


@pytest.mark.parametrize("stage", list(PLACE_STAGES))
def test_a_hold_whose_connection_is_killed_is_placed_exactly_once(stage, monkeypatch, treasury_api, funded_wallet):
    source, destination = funded_wallet("100.00"), funded_wallet("0")
    (module, name), answered = PLACE_STAGES[stage]
    payload = {
        "sourceWalletId": str(source.pk),
        "destinationWalletId": str(destination.pk),
        "amount": "40.00",
        "expiresInSeconds": 600,
    }
    kill_connection_after(monkeypatch, module, name)
    first = post_money(treasury_api, "/api/holds", payload, "place-1")
    assert first.status_code == answered, first.json()
    monkeypatch.undo()
    retry = post_money(treasury_api, "/api/holds", payload, "place-1")
    assert retry.status_code == (201 if answered == 503 else 200), retry.json()
    assert Hold.objects.filter(idempotency_key="place-1").count() == 1
    assert held(source) == (Decimal("100.00"), Decimal("40.00"))
    assert_books_balance()


CAPTURE_STAGES = {
    # The hold and its wallets are locked inside the capture's transaction; nothing is committed.
    "inside_capture": ((locks, "lock_wallets"), 503),
    # The capture and its TRANSFER are committed.
    "after_capture_commit": ((engine, "end_hold"), 200),
}


@pytest.mark.parametrize("stage", list(CAPTURE_STAGES))
def test_a_capture_whose_connection_is_killed_moves_the_money_exactly_once(
    stage, monkeypatch, treasury_api, funded_wallet
):
    source, destination = funded_wallet("100.00"), funded_wallet("0")
    payload = {
        "sourceWalletId": str(source.pk),
        "destinationWalletId": str(destination.pk),
        "amount": "40.00",
        "expiresInSeconds": 600,
    }
    hold_id = post_money(treasury_api, "/api/holds", payload, "place-2").json()["data"]["id"]
    (module, name), answered = CAPTURE_STAGES[stage]
    kill_connection_after(monkeypatch, module, name)
    path = f"/api/holds/{hold_id}/capture"
    first = post_money(treasury_api, path, {"amount": "25.00"}, "capture-1")
    assert first.status_code == answered, first.json()
    assert Hold.objects.get(pk=hold_id).status == (HoldStatus.OPEN if answered == 503 else HoldStatus.CAPTURED)
    monkeypatch.undo()
    retry = post_money(treasury_api, path, {"amount": "25.00"}, "capture-1")
    assert retry.status_code == 200, retry.json()
    assert (retry.headers.get("Idempotent-Replayed") == "true") == (answered == 200)
    assert TransactionLog.objects.filter(idempotency_key=f"hold:{hold_id}").count() == 1
    assert held(source) == (Decimal("75.00"), Decimal("0"))
    assert held(destination) == (Decimal("25.00"), Decimal("0"))
    assert_books_balance()


def test_two_service_instances_ending_the_same_holds_end_each_once(treasury_api, funded_wallet, tmp_path):
    """This process captures 20 holds while a second process (its own Django,
    connection and Redis: reconciliation.tests.hold_instance.py) voids the same
    20, in the same order, at the same moment: each hold ends once, and the
    money moved is exactly the captured holds'."""
    source, destination = funded_wallet("1000.00"), funded_wallet("0")
    client = treasury_api.user
    ids = [
        holds.hold_place(
            client=client,
            source_wallet_id=source.pk,
            destination_wallet_id=destination.pk,
            amount=Decimal("10.00"),
            expiry=holds.Expiry(in_seconds=600),
            metadata={},
            idempotency_key=f"two-{i}",
        ).hold.pk
        for i in range(20)
    ]
    cache = settings.CACHES["default"]
    env = {**os.environ, **database_env(), "REDIS_URL": cache["LOCATION"], "CACHE_KEY_PREFIX": cache["KEY_PREFIX"]}
    log_path = tmp_path / "instance.log"
    log = open(log_path, "w")  # noqa: SIM115 (closed with the process)
    other = subprocess.Popen(  # noqa: S603 (our own interpreter and arguments)
        [sys.executable, "-m", "reconciliation.tests.hold_instance", str(client.pk), *map(str, ids)],
        cwd=settings.BASE_DIR,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        start_new_session=True,
    )
    try:
        assert other.stdout.readline().strip() == "ready", log_path.read_text()
        other.stdin.write("go\n")
        other.stdin.flush()
        ours = []
        for hold_id in ids:
            try:
                ours.append(
                    holds.hold_capture(
                        client=client, hold_id=hold_id, amount=None, idempotency_key=str(uuid.uuid4())
                    ).hold.status
                )
            except HoldNotOpen as refusal:
                ours.append(refusal.default_code)
        theirs = json.loads(other.stdout.readline())
    finally:
        stop_process(other)
        log.close()
    for mine, its in zip(ours, theirs, strict=True):
        assert sorted([mine, its]) in (["CAPTURED", "hold_not_open"], ["VOIDED", "hold_not_open"]), (ours, theirs)
    captured = ours.count("CAPTURED")
    assert held(source) == (Decimal("1000.00") - 10 * captured, Decimal("0"))
    assert held(destination) == (Decimal(10 * captured), Decimal("0"))
    print(f"two instances: {captured} captured here, {theirs.count('VOIDED')} voided there")
    assert_books_balance()
