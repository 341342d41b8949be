"""The ledger defends itself: each rule of TransactionLog.Meta.constraints is
enforced by PostgreSQL, so code that skips transfers/services.py (a create(),
an update(), raw SQL) is refused all the same, and a log that moved money
cannot be deleted from under the balances it explains."""

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.models import F, ProtectedError

from corrections.tests.people import reversed_with_four_eyes
from reconciliation.services import ledger_discrepancies
from transfers.models import TransactionLog, TransactionStatus, TransactionType
from transfers.services import transfer_create
from transfers.tests.factories import ApiUserFactory
from wallets.models import Wallet, WalletKind
from wallets.tests.factories import WalletFactory
from wallets.tests.test_constraints import violates

pytestmark = pytest.mark.django_db

SOME_MOMENT = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def log_fields() -> dict:
    """The fields of a valid PENDING transfer log, for create() to tamper with."""
    return {
        "client": ApiUserFactory(),
        "idempotency_key": f"key-{uuid.uuid4()}",
        "movement_fingerprint": "0" * 64,
        "type": TransactionType.TRANSFER,
        "source_wallet": WalletFactory(),
        "destination_wallet": WalletFactory(),
        "amount": Decimal("10.00"),
        "currency": "NGN",
    }


def raw_insert_log(fields: dict, **columns) -> None:
    """INSERT a log in plain SQL, as a script or another service might: no
    model, no save(), no default. `columns` override the valid row."""
    row = {
        "id": uuid.uuid4(),
        "client_id": fields["client"].pk,
        "idempotency_key": fields["idempotency_key"],
        "movement_fingerprint": fields["movement_fingerprint"],
        "source_wallet_id": fields["source_wallet"].pk,
        "destination_wallet_id": fields["destination_wallet"].pk,
        "amount": fields["amount"],
        "currency": fields["currency"],
        "type": fields["type"],
        "status": TransactionStatus.PENDING,
        "reference": "TXN-RAWINSERT01",
        "error_code": "",
        "error_message": "",
        "completed_at": None,
        **columns,
    }
    names = ", ".join(row)
    values = ", ".join(["%s"] * len(row))
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO transaction_logs ({names}, metadata, created_at, updated_at)"  # noqa: S608 (our own names)
            f" VALUES ({values}, '{{}}'::jsonb, now(), now())",
            list(row.values()),
        )


# Each breaks exactly one rule of a valid PENDING log (PostgreSQL would report
# only one of several broken CHECKs, in name order).
BROKEN_RULES = [
    pytest.param({"amount": Decimal("0.00")}, "transfers_transactionlog_amount_positive", id="zero-amount"),
    pytest.param({"amount": Decimal("-0.01")}, "transfers_transactionlog_amount_positive", id="negative-amount"),
    pytest.param({"reference": "TXN-abcdefghjk"}, "transfers_transactionlog_reference_format", id="lower-case-ref"),
    pytest.param({"reference": "TXN-ABCDEFGHJ"}, "transfers_transactionlog_reference_format", id="ref-of-9"),
    pytest.param({"reference": "REF-ABCDEFGHJK"}, "transfers_transactionlog_reference_format", id="other-prefix"),
    pytest.param({"reference": "TXN-ABCDE-FGHJK"}, "transfers_transactionlog_reference_format", id="ref-with-dash"),
    pytest.param({"reference": ""}, "transfers_transactionlog_reference_format", id="empty-ref"),
    pytest.param({"status": "DONE"}, "transfers_transactionlog_status_valid", id="unknown-status"),
    pytest.param({"status": "pending"}, "transfers_transactionlog_status_valid", id="lower-case-status"),
    pytest.param({"type": "REFUND"}, "transfers_transactionlog_type_valid", id="unknown-type"),
    pytest.param({"type": "transfer"}, "transfers_transactionlog_type_valid", id="lower-case-type"),
    pytest.param({"idempotency_key": ""}, "transfers_transactionlog_idempotency_key_present", id="empty-key"),
    pytest.param({"status": "FAILED"}, "transfers_transactionlog_failed_has_reason", id="failed-without-reason"),
    pytest.param(
        {"status": "FAILED", "error_code": "insufficient_balance"},
        "transfers_transactionlog_failed_has_reason",
        id="failed-without-message",
    ),
    pytest.param(
        {"status": "FAILED", "error_message": "Insufficient balance."},
        "transfers_transactionlog_failed_has_reason",
        id="failed-without-code",
    ),
    pytest.param(
        {"status": "COMPLETED"}, "transfers_transactionlog_completed_at_iff_moved", id="completed-without-time"
    ),
    pytest.param({"status": "REVERSED"}, "transfers_transactionlog_completed_at_iff_moved", id="reversed-without-time"),
    pytest.param(
        {"completed_at": SOME_MOMENT}, "transfers_transactionlog_completed_at_iff_moved", id="pending-with-time"
    ),
    pytest.param(
        {"status": "FAILED", "error_code": "wallet_inactive", "error_message": "Frozen.", "completed_at": SOME_MOMENT},
        "transfers_transactionlog_completed_at_iff_moved",
        id="failed-with-time",
    ),
]


@pytest.mark.parametrize(("broken", "constraint"), BROKEN_RULES)
def test_create_breaking_a_rule_is_refused(log_fields, broken, constraint):
    with violates(constraint):
        TransactionLog.objects.create(**{**log_fields, **broken})


@pytest.mark.parametrize(("broken", "constraint"), BROKEN_RULES)
def test_update_breaking_a_rule_is_refused(log_fields, broken, constraint):
    log = TransactionLog.objects.create(**log_fields)
    with violates(constraint):
        TransactionLog.objects.filter(pk=log.pk).update(**broken)
    log.refresh_from_db()
    assert (log.status, log.amount) == (TransactionStatus.PENDING, Decimal("10.00"))


@pytest.mark.parametrize(("broken", "constraint"), BROKEN_RULES)
def test_raw_insert_breaking_a_rule_is_refused(log_fields, broken, constraint):
    with violates(constraint):
        raw_insert_log(log_fields, **broken)
    assert not TransactionLog.objects.exists()


@pytest.mark.parametrize(
    "state",
    [
        pytest.param({}, id="pending"),
        pytest.param({"status": "COMPLETED", "completed_at": SOME_MOMENT}, id="completed"),
        pytest.param({"status": "REVERSED", "completed_at": SOME_MOMENT}, id="reversed"),
        pytest.param(
            {"status": "FAILED", "error_code": "insufficient_balance", "error_message": "Insufficient balance."},
            id="failed",
        ),
        pytest.param({"reference": "TXN-20260101ABCDEFGHJK"}, id="dated-reference"),
        pytest.param({"amount": Decimal("0.01")}, id="one-cent"),
    ],
)
def test_a_log_that_keeps_every_rule_is_accepted(log_fields, state):
    # The rules are no stricter than the contract: every legal state is storable.
    log = TransactionLog.objects.create(**{**log_fields, **state})
    log.refresh_from_db()
    assert {field: getattr(log, field) for field in state} == state


# --- source != destination --------------------------------------------------------------------


def test_log_from_a_wallet_to_itself_is_refused(log_fields):
    with violates("transfers_transactionlog_distinct_wallets"):
        TransactionLog.objects.create(**{**log_fields, "destination_wallet": log_fields["source_wallet"]})


def test_redirecting_a_log_to_its_own_source_is_refused(log_fields):
    log = TransactionLog.objects.create(**log_fields)
    with violates("transfers_transactionlog_distinct_wallets"):
        TransactionLog.objects.filter(pk=log.pk).update(destination_wallet=F("source_wallet"))


def test_raw_insert_of_a_log_from_a_wallet_to_itself_is_refused(log_fields):
    with violates("transfers_transactionlog_distinct_wallets"):
        raw_insert_log(log_fields, destination_wallet_id=log_fields["source_wallet"].pk)


# --- uniqueness -----------------------------------------------------------------------------


def test_second_log_for_a_client_and_key_is_refused(log_fields):
    TransactionLog.objects.create(**log_fields)
    with violates("transfers_transactionlog_unique_client_key"):
        TransactionLog.objects.create(**log_fields)


def test_renaming_a_log_to_a_key_its_client_already_used_is_refused(log_fields):
    TransactionLog.objects.create(**log_fields)
    other = TransactionLog.objects.create(**{**log_fields, "idempotency_key": "other"})
    with violates("transfers_transactionlog_unique_client_key"):
        TransactionLog.objects.filter(pk=other.pk).update(idempotency_key=log_fields["idempotency_key"])


def test_another_client_may_use_the_same_key(log_fields):
    # Keys are scoped to the client that chose them.
    TransactionLog.objects.create(**log_fields)
    TransactionLog.objects.create(**{**log_fields, "client": ApiUserFactory()})
    assert TransactionLog.objects.filter(idempotency_key=log_fields["idempotency_key"]).count() == 2


def test_second_log_with_a_reference_is_refused(log_fields):
    first = TransactionLog.objects.create(**log_fields)
    with violates("transfers_transactionlog_unique_reference"):
        TransactionLog.objects.create(**{**log_fields, "idempotency_key": "other", "reference": first.reference})


def test_copying_a_reference_onto_another_log_is_refused(log_fields):
    first = TransactionLog.objects.create(**log_fields)
    other = TransactionLog.objects.create(**{**log_fields, "idempotency_key": "other"})
    with violates("transfers_transactionlog_unique_reference"):
        TransactionLog.objects.filter(pk=other.pk).update(reference=first.reference)


def test_raw_insert_of_a_duplicate_reference_is_refused(log_fields):
    raw_insert_log(log_fields, reference="TXN-DUPLICATE01")
    with violates("transfers_transactionlog_unique_reference"):
        raw_insert_log(log_fields, idempotency_key="other", reference="TXN-DUPLICATE01")


def test_second_compensating_log_for_one_original_is_refused(log_fields):
    # A log is reversed at most once, whatever the code path (reversal_of is
    # one-to-one, a partial unique index on the logs that have it).
    original = TransactionLog.objects.create(**log_fields)
    reversal = {"reversal_of": original, "source_wallet": log_fields["destination_wallet"]}
    reversal["destination_wallet"] = log_fields["source_wallet"]
    TransactionLog.objects.create(**{**log_fields, **reversal, "idempotency_key": "reversal-1"})
    with violates("transfers_transactionlog_one_reversal_each"):
        TransactionLog.objects.create(**{**log_fields, **reversal, "idempotency_key": "reversal-2"})


def test_pointing_a_second_log_at_a_reversed_one_is_refused(log_fields):
    original = TransactionLog.objects.create(**log_fields)
    first = TransactionLog.objects.create(**{**log_fields, "idempotency_key": "reversal-1", "reversal_of": original})
    other = TransactionLog.objects.create(**{**log_fields, "idempotency_key": "other"})
    assert original.reversed_by == first
    with violates("transfers_transactionlog_one_reversal_each"):
        TransactionLog.objects.filter(pk=other.pk).update(reversal_of=original)


# --- logs the service wrote ------------------------------------------------------------------


def service_transfer(source: Wallet, destination: Wallet, amount: str) -> TransactionLog:
    """A transfer made and settled by the service, as a client would make it."""
    return transfer_create(
        client=source.owner,
        source_wallet_id=source.pk,
        destination_wallet_id=destination.pk,
        amount=Decimal(amount),
        idempotency_key=f"key-{uuid.uuid4()}",
        metadata={},
    ).log


@pytest.fixture
def completed_transfer(funded_wallet) -> TransactionLog:
    return service_transfer(funded_wallet("100.00"), funded_wallet("0"), "40.00")


def test_a_completed_log_cannot_be_put_back_to_pending(completed_transfer):
    # Re-driving it would move the money a second time.
    with violates("transfers_transactionlog_completed_at_iff_moved"):
        TransactionLog.objects.filter(pk=completed_transfer.pk).update(status=TransactionStatus.PENDING)
    assert ledger_discrepancies() == []


def test_a_completed_log_cannot_be_marked_failed_without_a_reason(completed_transfer):
    with violates("transfers_transactionlog_failed_has_reason"):
        TransactionLog.objects.filter(pk=completed_transfer.pk).update(
            status=TransactionStatus.FAILED, completed_at=None
        )


def test_overdrawing_the_receiver_by_hand_is_refused(completed_transfer):
    # The CHECK is the backstop behind the service's balance rule.
    with violates("wallets_wallet_customer_balance_non_negative"):
        Wallet.objects.filter(pk=completed_transfer.destination_wallet_id).update(
            balance=F("balance") - Decimal("40.01")
        )
    assert ledger_discrepancies() == []


def test_deposits_take_the_settlement_wallet_below_zero(funded_wallet):
    # Only the settlement wallet may be negative: it is minus what customers hold.
    funded_wallet("100.00")
    funded_wallet("250.50")
    settlement = Wallet.objects.get(kind=WalletKind.SETTLEMENT, currency="NGN")
    assert settlement.balance == Decimal("-350.50")
    assert ledger_discrepancies() == []


# --- PROTECT: a log outlives what it points at ------------------------------------------------


@pytest.mark.parametrize("end", ["source_wallet", "destination_wallet"])
def test_a_wallet_with_logs_cannot_be_deleted(completed_transfer, end):
    wallet = getattr(completed_transfer, end)
    with pytest.raises(ProtectedError), transaction.atomic():
        wallet.delete()
    assert Wallet.objects.filter(pk=wallet.pk).exists()


def test_a_wallet_with_only_a_failed_log_cannot_be_deleted(funded_wallet):
    # A FAILED log moved nothing, but it is still the client's answer for its key.
    source = funded_wallet("0")
    log = service_transfer(source, funded_wallet("0"), "1.00")
    assert log.status == TransactionStatus.FAILED
    with pytest.raises(ProtectedError), transaction.atomic():
        source.delete()


def test_a_settlement_wallet_with_logs_cannot_be_deleted(funded_wallet):
    funded_wallet("10.00")
    with pytest.raises(ProtectedError), transaction.atomic():
        Wallet.objects.filter(kind=WalletKind.SETTLEMENT).delete()


def test_deleting_a_wallet_with_logs_in_raw_sql_is_refused(completed_transfer):
    # PROTECT is Django's; underneath, the foreign key refuses too (checked at
    # commit, so made immediate here to see it inside the test's transaction).
    # The wallet's daily totals go first: their foreign key would otherwise
    # refuse too, and which one PostgreSQL reports depends on the order of
    # its triggers' names (their oids, which migrating back and forth moves).
    wallet = completed_transfer.destination_wallet_id
    with pytest.raises(IntegrityError) as refused, transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute("DELETE FROM wallet_daily_totals WHERE wallet_id = %s", [wallet])
        cursor.execute("DELETE FROM wallets WHERE id = %s", [wallet])
    assert refused.value.__cause__.diag.constraint_name.startswith("transaction_logs_destination_wallet_id_")


def test_an_api_client_with_logs_cannot_be_deleted(completed_transfer):
    with pytest.raises(ProtectedError), transaction.atomic():
        completed_transfer.client.delete()


def test_a_reversed_log_cannot_be_deleted(completed_transfer):
    # The compensating log points at it: deleting it would orphan the reversal.
    compensation = reversed_with_four_eyes(completed_transfer.pk, "customer dispute")
    with pytest.raises(ProtectedError), transaction.atomic():
        TransactionLog.objects.filter(pk=completed_transfer.pk).delete()
    assert compensation.reversal_of_id == completed_transfer.pk
    assert ledger_discrepancies() == []
