"""The connection dies at each stage of a movement under a tier limit
(docs/limits.md): the running daily totals move exactly when the balance
does, and a retry or reconciliation finishes the movement once, checked
against the cap as it then stands."""

import uuid
from decimal import Decimal

import pytest
from django.utils import timezone

from reconciliation.tests.faults import (
    assert_books_balance,
    balances,
    interrupt_at,
    post_money,
    reconcile_now,
    terminate_own_backend,
)
from transfers.models import TransactionLog, TransactionStatus, WalletDailyTotal, business_day
from transfers.tests.limit_helpers import put_in, tier_with

pytestmark = pytest.mark.django_db(transaction=True)

STAGES = ["after_pending_log", "inside_settle", "after_settle_commit"]


def debits_today(wallet) -> Decimal:
    row = WalletDailyTotal.objects.filter(wallet=wallet, day=business_day(timezone.now())).first()
    return row.debits if row else Decimal(0)


@pytest.mark.parametrize("recovery", ["client_retry", "reconcile_command"])
@pytest.mark.parametrize("stage", STAGES)
def test_the_daily_totals_move_exactly_with_the_balance_when_the_connection_dies(
    stage, recovery, monkeypatch, treasury_api, funded_wallet
):
    source, destination = funded_wallet("1000.00"), funded_wallet("0")
    put_in(source, tier_with(max_daily_debits="100.00"))
    payload = {"sourceWalletId": str(source.pk), "destinationWalletId": str(destination.pk), "amount": "60.00"}
    key = f"limit-crash-{uuid.uuid4()}"
    interrupt_at(stage, terminate_own_backend, patch=monkeypatch.setattr)

    post_money(treasury_api, "/api/transfer", payload, key)

    moved = balances(source)[0] == Decimal("940.00")
    assert debits_today(source) == (Decimal("60.00") if moved else Decimal(0))
    if recovery == "reconcile_command":
        reconcile_now()
    post_money(treasury_api, "/api/transfer", payload, key)
    # A second movement past the cap is refused on the totals the first left.
    over = post_money(treasury_api, "/api/transfer", {**payload, "amount": "40.01"}, f"{key}-over")

    assert TransactionLog.objects.get(idempotency_key=key).status == TransactionStatus.COMPLETED
    assert over.status_code == 422 and over.json()["code"] == "limit_exceeded"
    assert balances(source, destination) == [Decimal("940.00"), Decimal("60.00")]
    assert debits_today(source) == Decimal("60.00")
    assert_books_balance()
