"""A batch's events (docs/api.md, "Events and webhooks"): each payout's own
transfer.completed or transfer.failed, to each owner of its wallets as that
owner may see it, and batch.finished to the client that sent the batch, all
written in the batch's settle transaction."""

import pytest

from conftest import make_api_client
from events.models import Event
from transfers.models import TransactionLog
from transfers.tests.test_batches import payout, post_batch

pytestmark = pytest.mark.django_db


def events_of(client, type_=None):
    events = Event.objects.filter(client=client).order_by("seq")
    return list(events.filter(type=type_) if type_ else events)


def test_each_payout_and_the_batch_record_their_events_for_their_owners(funded_wallet):
    lender = make_api_client("Disbursement client")
    mobile = make_api_client("Treasury client")
    pool = funded_wallet("100.00", owner=lender.user)
    own = funded_wallet("0", owner=lender.user)
    borrower = funded_wallet("0", owner=mobile.user)
    frozen = funded_wallet("0", owner=lender.user, is_active=False)
    before = {user.pk: Event.objects.filter(client=user).count() for user in (lender.user, mobile.user)}

    answer = post_batch(
        lender,
        pool,
        [
            payout(own, "10.00", "p-own"),
            payout(borrower, "20.00", "p-borrower", metadata={"loan": 7}),
            payout(frozen, "5.00", "p-frozen"),
        ],
    )

    assert answer.status_code == 201, answer.content
    lender_types = [event.type for event in events_of(lender.user)[before[lender.user.pk] :]]
    assert sorted(lender_types) == sorted(
        ["transfer.completed", "transfer.completed", "transfer.failed", "batch.finished"]
    )
    (finished,) = events_of(lender.user, "batch.finished")
    assert finished.data["batchId"] == answer.json()["data"]["batchId"]
    assert (finished.data["status"], finished.data["completedCount"], finished.data["failedCount"]) == (
        "PARTIALLY_COMPLETED",
        2,
        1,
    )
    assert finished.data["completedAmount"] == "30.00"
    # The borrower's owner sees the credit, not the lender's key or notes.
    (credit,) = events_of(mobile.user)[before[mobile.user.pk] :]
    log = TransactionLog.objects.get(idempotency_key="p-borrower")
    assert (credit.type, credit.data["id"], credit.data["amount"]) == ("transfer.completed", str(log.pk), "20.00")
    assert (credit.data["idempotencyKey"], credit.data["metadata"]) == (None, None)
    lenders_copy = next(e for e in events_of(lender.user, "transfer.completed") if e.data["id"] == str(log.pk))
    assert (lenders_copy.data["idempotencyKey"], lenders_copy.data["metadata"]) == ("p-borrower", {"loan": 7})


def test_an_atomic_batch_that_fails_records_each_payout_failed_and_the_batch_failed(funded_wallet):
    lender = make_api_client("Disbursement client")
    pool, a, b = (funded_wallet(amount, owner=lender.user) for amount in ("10.00", "0", "0"))

    answer = post_batch(lender, pool, [payout(a, "6.00"), payout(b, "6.00")], atomic=True)

    assert answer.status_code == 422
    assert sorted(e.type for e in events_of(lender.user) if e.type != "deposit.completed") == [
        "batch.finished",
        "transfer.failed",
        "transfer.failed",
    ]
    (finished,) = events_of(lender.user, "batch.finished")
    assert (finished.data["status"], finished.data["errorCode"], finished.data["failedPayoutIndex"]) == (
        "FAILED",
        "insufficient_balance",
        1,
    )


def test_a_replayed_batch_records_no_second_event(funded_wallet):
    lender = make_api_client("Disbursement client")
    pool, a = funded_wallet("10.00", owner=lender.user), funded_wallet("0", owner=lender.user)
    payouts = [payout(a, "1.00", "once")]

    first = post_batch(lender, pool, payouts, key="batch-once")
    count = Event.objects.filter(client=lender.user).count()
    again = post_batch(lender, pool, payouts, key="batch-once")

    assert (first.status_code, again.status_code) == (201, 200)
    assert Event.objects.filter(client=lender.user).count() == count


def test_the_batch_finished_event_is_the_batch_as_its_answer_shows_it(funded_wallet):
    """One rendering (transfers.serializers.batch_json): the event's data is the
    answer's batch without its message and payouts, field for field, Z times."""
    lender = make_api_client("Disbursement client")
    pool = funded_wallet("100.00", owner=lender.user)
    own = funded_wallet("0", owner=lender.user)
    frozen = funded_wallet("0", owner=lender.user, is_active=False)

    answer = post_batch(lender, pool, [payout(own, "10.00", "e-own"), payout(frozen, "5.00", "e-frozen")])

    assert answer.status_code == 201, answer.content
    shown = answer.json()["data"]
    (finished,) = events_of(lender.user, "batch.finished")
    assert finished.data == {name: value for name, value in shown.items() if name not in ("message", "payouts")}
    assert finished.data["createdAt"].endswith("Z") and finished.data["finishedAt"].endswith("Z")
