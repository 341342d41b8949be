"""A reversal: a compensating movement, at most once. Started as support
starts one now, through four eyes (corrections.tests.people: a Finance
request, an Approver's approval), which applies it with transaction_reverse."""

from decimal import Decimal

import pytest

from corrections import services as corrections
from corrections.exceptions import NotCorrectable
from corrections.tests.people import ReversalFailed, approve_at_once, reversed_with_four_eyes, staff
from reconciliation.services import ledger_discrepancies
from transfers import services
from transfers.models import TransactionLog, TransactionStatus, TransactionType
from wallets.models import Wallet


def completed_transfer(source, destination, amount="40.00"):
    return services.transfer_create(
        client=source.owner,
        source_wallet_id=source.pk,
        destination_wallet_id=destination.pk,
        amount=Decimal(amount),
        idempotency_key="to-reverse",
        metadata={},
    ).log


@pytest.mark.django_db
def test_reversal_moves_the_money_back_and_marks_the_original_reversed(funded_wallet):
    source, destination = funded_wallet("100.00"), funded_wallet("0")
    original = completed_transfer(source, destination)

    compensation = reversed_with_four_eyes(original.pk, "sent to the wrong user")

    original.refresh_from_db()
    assert original.status == TransactionStatus.REVERSED
    assert compensation.reversal_of_id == original.pk
    assert (compensation.source_wallet_id, compensation.destination_wallet_id) == (destination.pk, source.pk)
    assert compensation.status == TransactionStatus.COMPLETED
    assert compensation.metadata["reason"] == "sent to the wrong user"
    assert Wallet.objects.get(pk=source.pk).balance == Decimal("100.00")
    assert Wallet.objects.get(pk=destination.pk).balance == Decimal("0.00")
    assert ledger_discrepancies() == []


@pytest.mark.django_db
def test_a_deposit_is_reversed_by_a_withdrawal_to_settlement(funded_wallet):
    wallet = funded_wallet("25.00")
    deposit = TransactionLog.objects.get(destination_wallet=wallet, type=TransactionType.DEPOSIT)

    compensation = reversed_with_four_eyes(deposit.pk, "duplicate funding")

    assert compensation.type == TransactionType.WITHDRAWAL
    assert Wallet.objects.get(pk=wallet.pk).balance == Decimal("0.00")
    assert ledger_discrepancies() == []


@pytest.mark.django_db
def test_a_log_is_reversed_at_most_once(funded_wallet):
    original = completed_transfer(funded_wallet("100.00"), funded_wallet("0"))
    reversed_with_four_eyes(original.pk, "first")

    with pytest.raises(NotCorrectable, match="only COMPLETED can be reversed"):
        reversed_with_four_eyes(original.pk, "second")
    assert TransactionLog.objects.filter(reversal_of=original).count() == 1


@pytest.mark.django_db
def test_a_reversal_cannot_itself_be_reversed(funded_wallet):
    original = completed_transfer(funded_wallet("100.00"), funded_wallet("0"))
    compensation = reversed_with_four_eyes(original.pk, "first")

    with pytest.raises(NotCorrectable, match="itself a reversal"):
        reversed_with_four_eyes(compensation.pk, "undo the undo")
    compensation.refresh_from_db()
    assert compensation.status == TransactionStatus.COMPLETED


@pytest.mark.django_db
def test_a_reversal_the_receiver_cannot_cover_is_refused_and_changes_nothing(funded_wallet):
    source, destination, third = funded_wallet("100.00"), funded_wallet("0"), funded_wallet("0")
    original = completed_transfer(source, destination)
    services.transfer_create(
        client=destination.owner,
        source_wallet_id=destination.pk,
        destination_wallet_id=third.pk,
        amount=Decimal("30.00"),
        idempotency_key="spent",
        metadata={},
    )

    with pytest.raises(ReversalFailed, match="^insufficient_balance: "):
        reversed_with_four_eyes(original.pk, "too late")

    original.refresh_from_db()
    assert original.status == TransactionStatus.COMPLETED
    assert Wallet.objects.get(pk=destination.pk).balance == Decimal("10.00")


@pytest.mark.django_db
def test_a_failed_or_pending_log_cannot_be_reversed(funded_wallet):
    source, destination = funded_wallet("5.00"), funded_wallet("0")
    failed = completed_transfer(source, destination, amount="50.00")
    assert failed.status == TransactionStatus.FAILED

    with pytest.raises(NotCorrectable):
        reversed_with_four_eyes(failed.pk, "no")


@pytest.mark.django_db(transaction=True)
def test_concurrent_approvals_of_one_reversal_reverse_it_once(funded_wallet, migrated_groups):
    original = completed_transfer(funded_wallet("100.00"), funded_wallet("0"))
    correction = corrections.reversal_request(log_id=original.pk, reason="race", requested_by=staff("Finance"))

    outcomes = approve_at_once(correction, [staff("Approver") for _ in range(6)])

    assert outcomes == ["already decided"] * 5 + ["applied"]
    assert TransactionLog.objects.filter(reversal_of=original).count() == 1
    assert ledger_discrepancies() == []
