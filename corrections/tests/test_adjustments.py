"""Manual adjustments: a customer wallet credited from, or debited to, its
currency's suspense wallet, through the money engine's correction posting
(transfers.engine.settle_correction, the reversal's), so the same rules
hold: balance, client exposure, the ledger's range, at most once."""

from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction

from corrections import services
from corrections.models import CorrectionStatus
from corrections.tests.people import approved, staff
from events.models import Event
from reconciliation.services import ledger_discrepancies
from transfers import services as transfers
from transfers.models import ClientExposure, TransactionType
from transfers.services import AdjustmentDirection
from wallets.models import FreezeReason, Wallet, WalletKind
from wallets.services import wallet_set_active

pytestmark = pytest.mark.django_db


def adjusted(wallet, direction: str, amount: str):
    correction = services.adjustment_request(
        wallet_id=wallet.pk, direction=AdjustmentDirection(direction), amount=Decimal(amount),
        reason="fee charged twice", ticket="SUP-1", requested_by=staff("Finance"),
    )  # fmt: skip
    correction = approved(correction)
    correction.refresh_from_db()
    return correction


def exposure(wallet) -> Decimal:
    return ClientExposure.objects.get(client=wallet.owner, currency=wallet.currency).amount


def test_a_credit_comes_from_the_suspense_wallet_and_counts_in_the_clients_exposure(funded_wallet):
    wallet = funded_wallet("10.00")
    assert exposure(wallet) == Decimal("10.00")

    correction = adjusted(wallet, "CREDIT", "5.25")

    log = correction.result_log
    suspense = Wallet.objects.get(kind=WalletKind.SUSPENSE, currency="NGN")
    assert (log.type, log.source_wallet_id, log.amount) == (TransactionType.DEPOSIT, suspense.pk, Decimal("5.25"))
    assert (Wallet.objects.get(pk=wallet.pk).balance, suspense.balance) == (Decimal("15.25"), Decimal("-5.25"))
    assert exposure(wallet) == Decimal("15.25")
    (event,) = Event.objects.filter(client=wallet.owner, type="deposit.completed", data__id=str(log.pk))
    assert event.data["sourceWalletKind"] == "SUSPENSE"
    assert ledger_discrepancies() == []


def test_a_debit_goes_to_the_suspense_wallet(funded_wallet):
    wallet = funded_wallet("10.00")

    log = adjusted(wallet, "DEBIT", "4.00").result_log

    assert log.type == TransactionType.WITHDRAWAL
    assert Wallet.objects.get(pk=wallet.pk).balance == Decimal("6.00")
    assert Wallet.objects.get(kind=WalletKind.SUSPENSE, currency="NGN").balance == Decimal("4.00")
    assert exposure(wallet) == Decimal("6.00")
    assert ledger_discrepancies() == []


def test_a_debit_the_wallet_cannot_cover_fails_at_approval_and_moves_nothing(funded_wallet):
    wallet = funded_wallet("10.00")

    correction = adjusted(wallet, "DEBIT", "10.01")

    assert correction.status == CorrectionStatus.FAILED
    assert correction.decision_note.startswith("insufficient_balance: ")
    assert Wallet.objects.get(pk=wallet.pk).balance == Decimal("10.00")


def test_a_credit_past_the_clients_exposure_limit_fails_at_approval(funded_wallet, settings):
    settings.CLIENT_EXPOSURE_LIMIT = Decimal("12.00")
    wallet = funded_wallet("10.00")

    correction = adjusted(wallet, "CREDIT", "2.01")

    assert correction.status == CorrectionStatus.FAILED
    assert correction.decision_note.startswith("limit_exceeded: Client exposure limit")
    assert Wallet.objects.get(pk=wallet.pk).balance == Decimal("10.00")
    assert exposure(wallet) == Decimal("10.00")


def test_a_frozen_wallet_can_still_be_corrected(funded_wallet):
    wallet = funded_wallet("10.00")
    wallet_set_active(wallet=wallet, is_active=False, reason=FreezeReason.FRAUD)

    assert adjusted(wallet, "DEBIT", "10.00").status == CorrectionStatus.APPLIED
    assert Wallet.objects.get(pk=wallet.pk).balance == Decimal("0.00")


def test_an_adjustment_is_posted_at_most_once_per_correction(funded_wallet):
    wallet = funded_wallet("10.00")
    correction = adjusted(wallet, "CREDIT", "1.00")
    finance = correction.requested_by

    # Past the request's row lock and status, the engine itself refuses a second posting.
    with pytest.raises(IntegrityError), transaction.atomic():
        transfers.adjustment_post(
            correction_id=correction.pk, wallet_id=wallet.pk, direction=AdjustmentDirection.CREDIT,
            amount=Decimal("1.00"), reason="again", ticket="SUP-1", requested_by=finance, approved_by=None,
        )  # fmt: skip
    assert Wallet.objects.get(pk=wallet.pk).balance == Decimal("11.00")


def test_only_customer_wallets_are_adjusted_and_amounts_are_cents(funded_wallet):
    wallet = funded_wallet("10.00")
    settlement = Wallet.objects.get(kind=WalletKind.SETTLEMENT, currency="NGN")
    finance = staff("Finance")

    with pytest.raises(Exception, match="not found"):
        services.adjustment_request(
            wallet_id=settlement.pk, direction=AdjustmentDirection.CREDIT, amount=Decimal("1"), reason="x",
            ticket="T", requested_by=finance,
        )  # fmt: skip
    for amount in ("0", "-1", "0.001"):
        with pytest.raises(ValueError):
            services.adjustment_request(
                wallet_id=wallet.pk, direction=AdjustmentDirection.CREDIT, amount=Decimal(amount), reason="x",
                ticket="T", requested_by=finance,
            )  # fmt: skip
    with pytest.raises(ValueError, match="ticket"):
        services.adjustment_request(
            wallet_id=wallet.pk, direction=AdjustmentDirection.CREDIT, amount=Decimal("1"), reason="x",
            ticket="  ", requested_by=finance,
        )  # fmt: skip


def test_below_the_threshold_finance_adjusts_alone(funded_wallet, settings):
    settings.CORRECTION_SINGLE_APPROVAL_BELOW = {"NGN": Decimal("5.00")}
    wallet = funded_wallet("10.00")

    correction = services.adjustment_request(
        wallet_id=wallet.pk, direction=AdjustmentDirection.CREDIT, amount=Decimal("4.99"), reason="x",
        ticket="T", requested_by=staff("Finance"),
    )  # fmt: skip

    assert (correction.status, correction.applied_alone) == (CorrectionStatus.APPLIED, True)
    assert correction.result_log.metadata["approvedBy"] is None
    assert Wallet.objects.get(pk=wallet.pk).balance == Decimal("14.99")


def test_an_adjustment_needs_the_adjustment_permission(funded_wallet):
    from corrections.exceptions import NotPermitted

    with pytest.raises(NotPermitted):
        services.adjustment_request(
            wallet_id=funded_wallet("1.00").pk, direction=AdjustmentDirection.CREDIT, amount=Decimal("1"),
            reason="x", ticket="T", requested_by=staff("Support"),
        )  # fmt: skip
