"""Migration transfers/0015_balance_after on a ledger with history: the logs
settled before it keep NULL balances after and are still answered (by a
sum), its indexes are valid, and it runs again over what an interrupted run
left (a column added, an INVALID index)."""

import uuid
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from transfers import statements
from wallet_project.tests.migrating import migrate

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("transfers", "0013_batch_body_digest")]
AFTER = [("transfers", "0015_balance_after")]
INDEXES = ("idx_txlogs_source_moved", "idx_txlogs_destination_moved")


def indexes_valid() -> dict[str, bool]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE c.relname = ANY(%s)",
            [list(INDEXES)],
        )
        return dict(cursor.fetchall())


def test_old_logs_keep_null_and_are_still_answered_and_a_half_done_run_is_finished(back_to_latest):
    apps = migrate(BEFORE)
    User = apps.get_model("auth", "User")
    Wallet = apps.get_model("wallets", "Wallet")
    Log = apps.get_model("transfers", "TransactionLog")
    client = User.objects.create(username=f"old-{uuid.uuid4()}")
    wallet = Wallet.objects.create(owner=client, user_id=uuid.uuid4(), currency="NGN", balance=Decimal("7.50"))
    other = Wallet.objects.create(owner=client, user_id=uuid.uuid4(), currency="NGN", balance=Decimal("2.50"))
    old = timezone.now() - timezone.timedelta(days=2)
    for n, (source, destination, amount) in enumerate([(other, wallet, "10.00"), (wallet, other, "2.50")]):
        Log.objects.create(
            client=client,
            idempotency_key=f"k-{n}",
            movement_fingerprint="-",
            source_wallet=source,
            destination_wallet=destination,
            amount=Decimal(amount),
            currency="NGN",
            type="TRANSFER",
            status="COMPLETED",
            completed_at=old + timezone.timedelta(minutes=n),
        )
    # What an interrupted first run leaves: one column added, one index INVALID.
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE transaction_logs ADD COLUMN source_balance_after numeric(20, 2) NULL")
        cursor.execute(f"CREATE INDEX {INDEXES[0]} ON transaction_logs (source_wallet_id)")
        cursor.execute("UPDATE pg_index SET indisvalid = false WHERE indexrelid = %s::regclass", [INDEXES[0]])

    apps = migrate(AFTER)
    assert indexes_valid() == dict.fromkeys(INDEXES, True)
    Log = apps.get_model("transfers", "TransactionLog")
    assert set(Log.objects.values_list("source_balance_after", "destination_balance_after")) == {(None, None)}
    assert statements.balance_before(wallet_id=wallet.pk, before=old + timezone.timedelta(seconds=30)) == Decimal(
        "10.00"
    )
    assert statements.balance_before(wallet_id=wallet.pk, before=timezone.now()) == Decimal("7.50")
