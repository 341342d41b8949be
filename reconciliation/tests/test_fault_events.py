"""Events under real faults: an event exists if and only if its change
committed (the connection killed between the change and the commit, then
after it), the changes nobody answered a client for (reconciliation, an
admin's reversal or freeze) reach the client's webhook, and a Celery worker
SIGKILLed mid-delivery leaves the event to be delivered later, once more at
most."""

import os
import signal
import time
import uuid
from decimal import Decimal

import pytest
from django.conf import settings
from django.db import OperationalError, close_old_connections
from django.urls import reverse

from conftest import make_api_client
from corrections.models import Correction
from corrections.services import reversal_request
from corrections.tests.people import approved, staff
from events.models import DeliveryStatus, Event, WebhookDelivery
from events.tests.receiver import TIMEOUT, pump, subscribe
from reconciliation.tests.faults import (
    balances,
    interrupt_at,
    post_money,
    terminate_own_backend,
)
from reconciliation.tests.test_fault_celery_beat import leave_stuck_transfers, worker_with_beat
from transfers import engine, services
from transfers.models import TransactionLog, TransactionStatus
from wallets import services as wallet_services
from wallets.models import Wallet
from wallets.tests.test_admin import confirmed, staff_client

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("migrated_groups")]


def events_about(object_id) -> list[Event]:
    return list(Event.objects.filter(data__id=str(object_id)).order_by("txid", "seq"))


def kill_after_statement(monkeypatch, module, statement: str) -> None:
    """Terminate this connection's backend right after `statement` ran in
    the service (the change and its events written, not committed)."""
    original = module._run

    def run(sql, params):
        original(sql, params)
        if sql is statement:
            terminate_own_backend()

    monkeypatch.setattr(module, "_run", run)


# --- the same transaction, shown ----------------------------------------------------


def test_connection_killed_after_the_settle_statement_before_commit_leaves_neither_money_nor_event(
    monkeypatch, treasury_api, funded_wallet
):
    source, destination = funded_wallet("100.00"), funded_wallet("0")
    kill_after_statement(monkeypatch, engine, engine.SETTLE)
    payload = {"sourceWalletId": str(source.pk), "destinationWalletId": str(destination.pk), "amount": "30.00"}

    assert post_money(treasury_api, "/api/transfer", payload, "killed").status_code == 503

    log = TransactionLog.objects.get(idempotency_key="killed")
    assert log.status == TransactionStatus.PENDING
    assert balances(source, destination) == [Decimal("100.00"), 0]
    assert events_about(log.pk) == []


def test_connection_killed_after_the_settle_commit_leaves_both_money_and_event(
    monkeypatch, treasury_api, funded_wallet
):
    source, destination = funded_wallet("100.00"), funded_wallet("0")
    interrupt_at("after_settle_commit", terminate_own_backend, patch=monkeypatch.setattr)
    payload = {"sourceWalletId": str(source.pk), "destinationWalletId": str(destination.pk), "amount": "30.00"}

    assert post_money(treasury_api, "/api/transfer", payload, "committed").status_code == 201

    log = TransactionLog.objects.get(idempotency_key="committed")
    assert log.status == TransactionStatus.COMPLETED
    assert balances(source, destination) == [Decimal("70.00"), Decimal("30.00")]
    assert [e.type for e in events_about(log.pk)] == ["transfer.completed"]


def test_connection_killed_after_the_failure_statement_before_commit_leaves_neither_failure_nor_event(
    monkeypatch, treasury_api, funded_wallet
):
    source, destination = funded_wallet("10.00"), funded_wallet("0")
    kill_after_statement(monkeypatch, engine, engine.SETTLE)
    payload = {"sourceWalletId": str(source.pk), "destinationWalletId": str(destination.pk), "amount": "30.00"}

    assert post_money(treasury_api, "/api/transfer", payload, "killed-fail").status_code == 503

    log = TransactionLog.objects.get(idempotency_key="killed-fail")
    assert log.status == TransactionStatus.PENDING and events_about(log.pk) == []


def test_connection_killed_inside_a_reversal_leaves_neither_reversal_nor_event(monkeypatch, funded_wallet):
    source, destination = funded_wallet("100.00"), funded_wallet("0")
    original = services.transfer_create(
        client=source.owner, source_wallet_id=source.pk, destination_wallet_id=destination.pk, amount=Decimal("40"),
        idempotency_key="to-reverse", metadata={},
    ).log  # fmt: skip
    correction = reversal_request(log_id=original.pk, reason="wrong user", requested_by=staff("Finance"))
    approver = staff("Approver")
    kill_after_statement(monkeypatch, engine, engine.SETTLE)

    with pytest.raises(OperationalError):
        approved(correction, approver)
    close_old_connections()
    monkeypatch.undo()

    original.refresh_from_db()
    assert original.status == TransactionStatus.COMPLETED
    assert not TransactionLog.objects.filter(reversal_of=original).exists()
    assert [e.type for e in events_about(original.pk)] == ["transfer.completed"]
    # The approval rolled back whole: the request still waits, its audit says only who asked.
    assert list(correction.audit.values_list("action", flat=True)) == ["REQUESTED"]

    approved(correction, approver)
    assert [e.type for e in events_about(original.pk)] == ["transfer.completed", "transfer.reversed"]


def test_connection_killed_inside_a_freeze_leaves_the_wallet_active_and_no_event(monkeypatch, wallet_owner):
    wallet = Wallet.objects.create(owner=wallet_owner, user_id=uuid.uuid4(), currency="NGN")
    original = wallet_services.record_events

    def record_then_die(**kwargs):
        events = original(**kwargs)
        terminate_own_backend()
        return events

    monkeypatch.setattr(wallet_services, "record_events", record_then_die)
    with pytest.raises(OperationalError):
        wallet_services.wallet_set_active(wallet=wallet, is_active=False)
    close_old_connections()
    monkeypatch.undo()

    assert Wallet.objects.get(pk=wallet.pk).is_active is True
    assert events_about(wallet.pk) == []


def test_connection_killed_after_a_freeze_commits_leaves_both(monkeypatch, wallet_owner):
    wallet = Wallet.objects.create(owner=wallet_owner, user_id=uuid.uuid4(), currency="NGN")
    wallet_services.wallet_set_active(wallet=wallet, is_active=False)
    terminate_own_backend()
    close_old_connections()

    assert Wallet.objects.get(pk=wallet.pk).is_active is False
    assert [e.type for e in events_about(wallet.pk)] == ["wallet.frozen"]


# --- what no response told the client -----------------------------------------------


def test_an_admin_freeze_and_an_admin_reversal_reach_the_clients_webhook(
    fast_webhooks, receiver, wallet_owner, funded_wallet
):
    api = make_api_client("Treasury client", user=wallet_owner)
    subscribe(api, receiver, types=["transfer.reversed", "wallet.frozen"])
    source, destination = funded_wallet("100.00"), funded_wallet("0")
    original = services.transfer_create(
        client=wallet_owner, source_wallet_id=source.pk, destination_wallet_id=destination.pk, amount=Decimal("25"),
        idempotency_key="paid-twice", metadata={},
    ).log  # fmt: skip

    finance = staff_client("Finance")
    reversed_ = finance.post(
        reverse("admin:transfers_transactionlog_reverse", args=[original.pk]), {"reason": "paid twice"}
    )
    assert reversed_.status_code == 302
    pending = Correction.objects.get(transaction=original)
    approved_ = staff_client("Approver").post(
        reverse("admin:corrections_correction_approve", args=[pending.pk]), {"fingerprint": pending.fingerprint}
    )
    assert approved_.status_code == 302
    frozen = finance.post(reverse("admin:wallets_wallet_freeze", args=[destination.pk]), confirmed())
    assert frozen.status_code == 302

    pump(lambda: len(receiver.accepted_ids()) == 2)
    bodies = {r.body["type"]: r.body for r in receiver.requests if r.behaviour == "ok"}
    assert bodies["transfer.reversed"]["data"]["id"] == str(original.pk)
    assert bodies["transfer.reversed"]["data"]["status"] == "REVERSED"
    assert bodies["wallet.frozen"]["data"] == {**bodies["wallet.frozen"]["data"], "id": str(destination.pk)}
    assert bodies["wallet.frozen"]["data"]["isActive"] is False


def celery_env(**more: str) -> dict[str, str]:
    return {
        "DJANGO_SECRET_KEY": settings.SECRET_KEY,  # the endpoint secrets are encrypted under it
        "WEBHOOK_ALLOW_LOOPBACK": "true",
        "WEBHOOK_DELIVER_EVERY_SECONDS": "0.5",
        "WEBHOOK_RETRY_BASE_SECONDS": "0.2",
        "WEBHOOK_RETRY_CAP_SECONDS": "1",
        **more,
    }


def test_a_transfer_finished_by_reconciliation_reaches_the_webhook_through_celery(
    monkeypatch, treasury_api, funded_wallet, receiver, tmp_path, settings
):
    settings.WEBHOOK_ALLOW_LOOPBACK = True  # to register the receiver; the worker gets it from celery_env
    subscribe(treasury_api, receiver, types=["transfer.completed"])
    source, destination = funded_wallet("100.00"), funded_wallet("0")
    (stuck,) = leave_stuck_transfers(monkeypatch, treasury_api, source, destination, {"crashed": "10.00"})
    assert events_about(stuck.pk) == []  # no response, no event: nothing committed
    log_path = tmp_path / "worker.log"

    with worker_with_beat(log_path, **celery_env()) as worker:
        deadline = time.monotonic() + 60
        while not receiver.accepted_ids():
            assert worker.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.2)

    (event,) = events_about(stuck.pk)
    assert receiver.accepted_ids() == [str(event.pk)]
    body = receiver.requests[-1].body
    assert body["type"] == "transfer.completed" and body["data"]["status"] == "COMPLETED"
    assert body["data"]["idempotencyKey"] == "crashed"


def test_a_worker_killed_mid_delivery_leaves_the_event_delivered_later_once_more_at_most(
    treasury_api, wallet_owner, receiver, tmp_path, settings
):
    settings.WEBHOOK_ALLOW_LOOPBACK = True  # to register the receiver; the worker gets it from celery_env
    subscribe(treasury_api, receiver, types=["wallet.frozen"])
    # The first request hangs (the receiver stalls); the worker is killed while it waits.
    receiver.script, receiver.stall_seconds = [TIMEOUT], 20
    wallet = Wallet.objects.create(owner=wallet_owner, user_id=uuid.uuid4(), currency="NGN")
    wallet_services.wallet_set_active(wallet=wallet, is_active=False)
    (event,) = events_about(wallet.pk)
    # A lease of 2 + 10 = 12 s: the time a lost worker's delivery waits.
    env = celery_env(WEBHOOK_TIMEOUT_SECONDS="2")

    with worker_with_beat(tmp_path / "killed.log", **env) as worker:
        deadline = time.monotonic() + 60
        while not receiver.requests:
            assert time.monotonic() < deadline, (tmp_path / "killed.log").read_text()
            time.sleep(0.05)
        os.killpg(worker.pid, signal.SIGKILL)
        assert worker.wait(10) == -signal.SIGKILL
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == DeliveryStatus.PENDING and delivery.attempts == 1 and delivery.lease is not None

    log_path = tmp_path / "worker.log"
    with worker_with_beat(log_path, **env) as worker:
        deadline = time.monotonic() + 60
        while not receiver.accepted_ids():
            assert worker.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.2)
        time.sleep(1)  # anything more would come now

    assert [r.webhook_id for r in receiver.requests] == [str(event.pk)] * 2
    assert all(r.verified for r in receiver.requests)
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.DELIVERED and delivery.attempts == 2
