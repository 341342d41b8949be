"""transaction_reverse: a compensating movement, at most once."""

import threading
from decimal import Decimal

import pytest
from django.db import connection

from reconciliation.services import ledger_discrepancies
from transfers import services
from transfers.exceptions import InsufficientBalance, ReversalNotAllowed
from transfers.models import TransactionLog, TransactionStatus, TransactionType
from transfers.tests.factories import ApiUserFactory
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
    staff = ApiUserFactory(is_staff=True)

    compensation = services.transaction_reverse(log_id=original.pk, reason="sent to the wrong user", reversed_by=staff)

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

    compensation = services.transaction_reverse(
        log_id=deposit.pk, reason="duplicate funding", reversed_by=ApiUserFactory()
    )

    assert compensation.type == TransactionType.WITHDRAWAL
    assert Wallet.objects.get(pk=wallet.pk).balance == Decimal("0.00")
    assert ledger_discrepancies() == []


@pytest.mark.django_db
def test_a_log_is_reversed_at_most_once(funded_wallet):
    original = completed_transfer(funded_wallet("100.00"), funded_wallet("0"))
    services.transaction_reverse(log_id=original.pk, reason="first", reversed_by=ApiUserFactory())

    with pytest.raises(ReversalNotAllowed):
        services.transaction_reverse(log_id=original.pk, reason="second", reversed_by=ApiUserFactory())
    assert TransactionLog.objects.filter(reversal_of=original).count() == 1


@pytest.mark.django_db
def test_a_reversal_cannot_itself_be_reversed(funded_wallet):
    original = completed_transfer(funded_wallet("100.00"), funded_wallet("0"))
    compensation = services.transaction_reverse(log_id=original.pk, reason="first", reversed_by=ApiUserFactory())

    with pytest.raises(ReversalNotAllowed, match="itself a reversal"):
        services.transaction_reverse(log_id=compensation.pk, reason="undo the undo", reversed_by=ApiUserFactory())
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

    with pytest.raises(InsufficientBalance):
        services.transaction_reverse(log_id=original.pk, reason="too late", reversed_by=ApiUserFactory())

    original.refresh_from_db()
    assert original.status == TransactionStatus.COMPLETED
    assert Wallet.objects.get(pk=destination.pk).balance == Decimal("10.00")


@pytest.mark.django_db
def test_a_failed_or_pending_log_cannot_be_reversed(funded_wallet):
    source, destination = funded_wallet("5.00"), funded_wallet("0")
    failed = completed_transfer(source, destination, amount="50.00")
    assert failed.status == TransactionStatus.FAILED

    with pytest.raises(ReversalNotAllowed):
        services.transaction_reverse(log_id=failed.pk, reason="no", reversed_by=ApiUserFactory())


@pytest.mark.django_db(transaction=True)
def test_concurrent_reversals_of_one_log_reverse_it_once(funded_wallet):
    original = completed_transfer(funded_wallet("100.00"), funded_wallet("0"))
    staff = [ApiUserFactory() for _ in range(6)]
    barrier = threading.Barrier(len(staff))
    outcomes: list[str] = []

    def reverse(user):
        try:
            barrier.wait()
            services.transaction_reverse(log_id=original.pk, reason="race", reversed_by=user)
            outcomes.append("reversed")
        except ReversalNotAllowed:
            outcomes.append("refused")
        finally:
            connection.close()

    threads = [threading.Thread(target=reverse, args=(user,)) for user in staff]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes) == ["refused"] * 5 + ["reversed"]
    assert TransactionLog.objects.filter(reversal_of=original).count() == 1
    assert ledger_discrepancies() == []
