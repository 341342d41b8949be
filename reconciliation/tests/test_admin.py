"""Re-driving PENDING transactions and verifying the ledger from the admin,
through its own views (django.test.Client on the real PostgreSQL)."""

import uuid
from decimal import Decimal

import pytest
from django.contrib.admin.models import LogEntry
from django.test import Client
from django.urls import reverse

from transfers.models import TransactionLog, TransactionStatus, TransactionType
from transfers.tests.factories import ApiUserFactory
from wallets.models import Wallet
from wallets.tests.test_admin import staff_client

# The Support and Finance groups of migration 0003, put back if a transactional test flushed them.
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("migrated_groups")]

CHANGELIST = reverse("admin:transfers_transactionlog_changelist")
VERIFY_LEDGER = reverse("admin:transfers_transactionlog_verify_ledger")


@pytest.fixture
def support(db) -> Client:
    return staff_client("Support")


def stuck_transfer(source, destination, amount="40.00") -> TransactionLog:
    """A log as a crash between recording it and settling it leaves it:
    PENDING, no money moved."""
    return TransactionLog.objects.create(
        client=ApiUserFactory(),
        idempotency_key=f"stuck-{uuid.uuid4()}",
        movement_fingerprint="-",
        source_wallet=source,
        destination_wallet=destination,
        amount=Decimal(amount),
        currency=source.currency,
        type=TransactionType.TRANSFER,
    )


def redrive(client: Client, *logs):
    return client.post(
        CHANGELIST, {"action": "redrive_pending", "_selected_action": [log.pk for log in logs], "index": 0}, follow=True
    )


def test_redriving_settles_the_selected_pending_transactions_and_records_it(support, funded_wallet):
    source, destination = funded_wallet("100.00"), funded_wallet("0")
    stuck = stuck_transfer(source, destination, "40.00")

    response = redrive(support, stuck)

    stuck.refresh_from_db()
    assert stuck.status == TransactionStatus.COMPLETED
    assert Wallet.objects.get(pk=source.pk).balance == Decimal("60.00")
    assert Wallet.objects.get(pk=destination.pk).balance == Decimal("40.00")
    assert "Re-drove 1 PENDING transaction(s): 1 completed, 0 failed, 0 skipped." in response.content.decode()
    entry = LogEntry.objects.get(object_id=str(stuck.pk))
    assert entry.user == support.user
    assert entry.get_change_message() == "Re-drove a PENDING transaction: COMPLETED"


def test_a_redriven_transaction_that_breaks_a_rule_fails_with_its_reason(support, funded_wallet):
    source, destination = funded_wallet("10.00"), funded_wallet("0")
    stuck = stuck_transfer(source, destination, "40.00")

    response = redrive(support, stuck)

    stuck.refresh_from_db()
    assert (stuck.status, stuck.error_code) == (TransactionStatus.FAILED, "insufficient_balance")
    assert f"{stuck.reference} failed: Insufficient balance." in response.content.decode()
    assert Wallet.objects.get(pk=source.pk).balance == Decimal("10.00")


def test_redriving_leaves_transactions_that_are_not_pending_alone(support, funded_wallet):
    source = funded_wallet("100.00")
    deposit = TransactionLog.objects.get(destination_wallet=source)
    stuck = stuck_transfer(source, funded_wallet("0"), "1.00")

    only_done = redrive(support, deposit)
    assert "None of the selected transactions is PENDING: nothing re-driven." in only_done.content.decode()
    mixed = redrive(support, deposit, stuck)

    assert "Re-drove 1 PENDING transaction(s): 1 completed" in mixed.content.decode()
    assert TransactionLog.objects.get(pk=deposit.pk).updated_at == deposit.updated_at
    assert Wallet.objects.get(pk=source.pk).balance == Decimal("99.00")


def test_redriving_needs_the_reconcile_permission(funded_wallet):
    viewer = staff_client(permissions=("view_transactionlog",))
    stuck = stuck_transfer(funded_wallet("100.00"), funded_wallet("0"))

    assert "redrive_pending" not in viewer.get(CHANGELIST).content.decode()
    redrive(viewer, stuck)

    assert TransactionLog.objects.get(pk=stuck.pk).status == TransactionStatus.PENDING


def test_the_ledger_verification_page_says_the_books_balance(support, funded_wallet):
    funded_wallet("100.00")

    assert f'href="{VERIFY_LEDGER}"' in support.get(CHANGELIST).content.decode()
    response = support.get(VERIFY_LEDGER)

    assert response.status_code == 200
    assert response.context["discrepancies"] == []
    assert "The books balance: no discrepancies." in response.content.decode()


def test_the_ledger_verification_page_lists_each_discrepancy_with_a_link_to_the_wallet(support, funded_wallet):
    wallet = funded_wallet("100.00")
    Wallet.objects.filter(pk=wallet.pk).update(balance=Decimal("90.00"))  # a bug outside the service

    page = support.get(VERIFY_LEDGER).content.decode()

    assert "2 discrepancies found" in page
    assert "conservation" in page
    assert "balance 90.00 but the ledger says 100.00" in page
    assert f'href="{reverse("admin:wallets_wallet_change", args=[wallet.pk])}"' in page


def test_the_ledger_verification_page_needs_the_reconcile_permission(db):
    viewer = staff_client(permissions=("view_transactionlog",))

    assert viewer.get(VERIFY_LEDGER).status_code == 403
    assert f'href="{VERIFY_LEDGER}"' not in viewer.get(CHANGELIST).content.decode()


def test_a_ledger_broken_everywhere_lists_the_first_discrepancies_and_says_how_many(
    support, funded_wallet, monkeypatch
):
    monkeypatch.setattr("reconciliation.admin.MAX_DISCREPANCIES_SHOWN", 2)
    wallets = [funded_wallet("100.00") for _ in range(3)]
    Wallet.objects.filter(pk__in=[w.pk for w in wallets]).update(balance=Decimal("90.00"))

    page = support.get(VERIFY_LEDGER).content.decode()

    assert "4 discrepancies found" in page  # three wallets and the NGN total
    assert "The first 2 are listed" in page
    assert page.count("<tr><td>") == 2
