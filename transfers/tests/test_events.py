"""The outbox (docs/api.md, "Events and webhooks"): every settle, failure,
reversal, freeze and unfreeze records its events in the transaction of the
change, one copy per owning client, each showing what tenancy allows."""

import uuid
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from rest_framework.test import APIRequestFactory

from conftest import make_api_client
from corrections.tests.people import reversed_with_four_eyes
from events.models import Event, EventType
from transfers import services
from transfers.models import TransactionLog
from transfers.selectors import with_reversal_links
from transfers.serializers import DETAIL_FIELD_NAMES, TransactionDetailSerializer
from wallets.serializers import WalletSerializer
from wallets.services import wallet_set_active
from wallets.tests.factories import WalletFactory

pytestmark = pytest.mark.django_db


def as_api_shows(log: TransactionLog, viewer) -> dict:
    """The transaction as GET /api/transfer/reference/{ref} shows it to `viewer`."""
    request = APIRequestFactory().get("/")
    request.user = viewer
    shown = with_reversal_links(TransactionLog.objects.filter(pk=log.pk)).get()
    return dict(TransactionDetailSerializer(shown, context={"request": request}).data)


def events_of(client, type_=None) -> list[Event]:
    events = Event.objects.filter(client=client).order_by("txid", "seq")
    return list(events.filter(type=type_) if type_ else events)


def test_a_completed_transfer_records_one_event_per_owner_showing_the_transaction_as_the_api_does(funded_wallet):
    payer = make_api_client("Disbursement client").user
    source = funded_wallet("100.00", owner=payer)
    payee_owner = make_api_client("Transfer client").user
    destination = WalletFactory(owner=payee_owner)

    result = services.transfer_create(
        client=payer, source_wallet_id=source.pk, destination_wallet_id=destination.pk, amount=Decimal("12.34"),
        idempotency_key="loan-1", metadata={"loan": "L-1"},
    )  # fmt: skip

    payer_event, payee_event = events_of(payer, "transfer.completed"), events_of(payee_owner, "transfer.completed")
    assert len(payer_event) == len(payee_event) == 1
    # Each copy is exactly what the API shows that client: the payee does not see the payer's key or metadata.
    assert payer_event[0].data == as_api_shows(result.log, payer)
    assert payee_event[0].data == as_api_shows(result.log, payee_owner)
    assert payer_event[0].data["idempotencyKey"] == "loan-1" and payer_event[0].data["metadata"] == {"loan": "L-1"}
    assert payee_event[0].data["idempotencyKey"] is None and payee_event[0].data["metadata"] is None
    assert payer_event[0].txid == payee_event[0].txid  # written by the settle transaction


def test_a_payee_that_may_read_every_transaction_sees_the_key_in_its_event_as_in_its_history(funded_wallet):
    payer = make_api_client("Disbursement client").user
    source = funded_wallet("100.00", owner=payer)
    payee_owner = make_api_client("Transfer client").user
    payee_owner.groups.add(Group.objects.get(name="Auditor"))  # transfers.view_all_transfers
    payee_owner = type(payee_owner).objects.get(pk=payee_owner.pk)  # no cached permissions
    destination = WalletFactory(owner=payee_owner)

    result = services.transfer_create(
        client=payer, source_wallet_id=source.pk, destination_wallet_id=destination.pk, amount=Decimal("5"),
        idempotency_key="seen-by-an-auditor", metadata={"loan": "L-2"},
    )  # fmt: skip

    (payee_event,) = events_of(payee_owner, "transfer.completed")
    assert payee_event.data == as_api_shows(result.log, payee_owner)
    assert payee_event.data["idempotencyKey"] == "seen-by-an-auditor"
    assert payee_event.data["metadata"] == {"loan": "L-2"}


def test_the_api_and_the_events_show_the_same_fields_from_one_list(funded_wallet, wallet_owner):
    source, destination = funded_wallet("50.00"), WalletFactory(owner=wallet_owner)
    result = services.transfer_create(
        client=wallet_owner, source_wallet_id=source.pk, destination_wallet_id=destination.pk, amount=Decimal("1"),
        idempotency_key="listed", metadata={},
    )  # fmt: skip

    (event,) = events_of(wallet_owner, "transfer.completed")
    assert set(event.data) == set(DETAIL_FIELD_NAMES)  # jsonb keeps its own key order
    assert list(as_api_shows(result.log, wallet_owner)) == DETAIL_FIELD_NAMES


def test_a_transfer_between_one_clients_wallets_records_one_event(funded_wallet, wallet_owner):
    source, destination = funded_wallet("50.00"), WalletFactory(owner=wallet_owner)
    services.transfer_create(
        client=wallet_owner, source_wallet_id=source.pk, destination_wallet_id=destination.pk, amount=Decimal("1"),
        idempotency_key="own", metadata={},
    )  # fmt: skip
    assert len(events_of(wallet_owner, "transfer.completed")) == 1


def test_a_broken_business_rule_records_the_failed_event(funded_wallet, wallet_owner):
    source, destination = funded_wallet("5.00"), WalletFactory(owner=wallet_owner)
    result = services.transfer_create(
        client=wallet_owner, source_wallet_id=source.pk, destination_wallet_id=destination.pk, amount=Decimal("9"),
        idempotency_key="too-much", metadata={},
    )  # fmt: skip
    (event,) = events_of(wallet_owner, "transfer.failed")
    assert event.data == as_api_shows(result.log, wallet_owner)
    assert event.data["errorCode"] == "insufficient_balance" and event.data["completedAt"] is None


def test_deposits_and_withdrawals_record_their_own_types(funded_wallet, wallet_owner):
    wallet = funded_wallet("10.00")  # a deposit
    services.withdrawal_create(
        client=wallet_owner, wallet_id=wallet.pk, amount=Decimal("3"), idempotency_key="w1", metadata={}
    )
    services.withdrawal_create(
        client=wallet_owner, wallet_id=wallet.pk, amount=Decimal("300"), idempotency_key="w2", metadata={}
    )
    assert [e.type for e in events_of(wallet_owner)] == [
        "deposit.completed", "withdrawal.completed", "withdrawal.failed",
    ]  # fmt: skip


def test_a_replay_records_nothing_more(funded_wallet, wallet_owner):
    source, destination = funded_wallet("50.00"), WalletFactory(owner=wallet_owner)
    for _ in range(3):
        services.transfer_create(
            client=wallet_owner, source_wallet_id=source.pk, destination_wallet_id=destination.pk,
            amount=Decimal("1"), idempotency_key="same", metadata={},
        )  # fmt: skip
    assert len(events_of(wallet_owner, "transfer.completed")) == 1


def test_a_reversal_records_transfer_reversed_for_each_owner(funded_wallet, admin_user):
    payer = make_api_client("Disbursement client").user
    payee_owner = make_api_client("Transfer client").user
    source, destination = funded_wallet("20.00", owner=payer), WalletFactory(owner=payee_owner)
    result = services.transfer_create(
        client=payer, source_wallet_id=source.pk, destination_wallet_id=destination.pk, amount=Decimal("7"),
        idempotency_key="to-undo", metadata={"k": 1},
    )  # fmt: skip
    reversed_with_four_eyes(result.log.pk, "paid twice")

    (payer_event,) = events_of(payer, "transfer.reversed")
    (payee_event,) = events_of(payee_owner, "transfer.reversed")
    assert payer_event.data == as_api_shows(result.log, payer)
    assert payee_event.data == as_api_shows(result.log, payee_owner)
    assert payer_event.data["status"] == "REVERSED" and payee_event.data["metadata"] is None


def test_a_reversal_and_its_compensation_name_each_other_in_their_events_as_in_lookups(funded_wallet):
    payer = make_api_client("Disbursement client").user
    payee_owner = make_api_client("Transfer client").user
    source, destination = funded_wallet("20.00", owner=payer), WalletFactory(owner=payee_owner)
    original = services.transfer_create(
        client=payer, source_wallet_id=source.pk, destination_wallet_id=destination.pk, amount=Decimal("7"),
        idempotency_key="to-undo", metadata={},
    ).log  # fmt: skip

    compensation = reversed_with_four_eyes(original.pk, "paid twice")

    for owner in (payer, payee_owner):
        (reversed_event,) = events_of(owner, "transfer.reversed")
        (compensation_event,) = [
            e for e in events_of(owner, "transfer.completed") if e.data["id"] == str(compensation.pk)
        ]
        assert (reversed_event.data["reversalOf"], reversed_event.data["reversedBy"]) == (None, str(compensation.pk))
        assert (compensation_event.data["reversalOf"], compensation_event.data["reversedBy"]) == (
            str(original.pk),
            None,
        )
        assert reversed_event.data == as_api_shows(original, owner)
        assert compensation_event.data == as_api_shows(compensation, owner)
        assert reversed_event.txid == compensation_event.txid  # one transaction


def test_a_reversed_deposit_is_transfer_reversed_and_its_withdrawal_is_told_to_the_owner(funded_wallet, wallet_owner):
    wallet = funded_wallet("25.00")
    deposit = TransactionLog.objects.get(destination_wallet=wallet, type="DEPOSIT")

    compensation = reversed_with_four_eyes(deposit.pk, "duplicate funding")

    types = [(e.type, e.data["id"]) for e in events_of(wallet_owner)]
    assert types[-2:] == [("withdrawal.completed", str(compensation.pk)), ("transfer.reversed", str(deposit.pk))]


def test_freezing_and_unfreezing_record_events_for_the_owner_only_on_a_change(wallet_owner):
    wallet = WalletFactory(owner=wallet_owner)
    wallet_set_active(wallet=wallet, is_active=False)
    wallet_set_active(wallet=wallet, is_active=False)  # no change, no event
    wallet_set_active(wallet=wallet, is_active=True)
    events = events_of(wallet_owner)
    assert [e.type for e in events] == [EventType.WALLET_FROZEN, EventType.WALLET_UNFROZEN]
    assert events[0].data["isActive"] is False and events[0].data["id"] == str(wallet.pk)
    wallet.refresh_from_db()
    assert events[1].data == dict(WalletSerializer(wallet).data)


@pytest.mark.django_db(transaction=True)
def test_record_events_refuses_to_run_outside_the_changes_transaction(wallet_owner):
    from events.outbox import record_events

    with pytest.raises(RuntimeError):
        record_events(type="batch.finished", data_by_client={wallet_owner.pk: {"id": str(uuid.uuid4())}})
