"""verify_ledger: silent on books that only the service moved, loud on books
that something else touched.

The discrepancies are planted with raw SQL, the way a hand-edit in psql, a
bad migration or a bug outside transfers/services.py would plant them; only
what the CHECK constraints allow can be planted (a negative customer balance
cannot: wallets_wallet_customer_balance_non_negative refuses it).
"""

from decimal import Decimal
from io import StringIO
from types import SimpleNamespace

import pytest
from django.core.management import call_command
from django.db import connection

from reconciliation.services import ledger_discrepancies
from transfers import services
from transfers.models import Movement, TransactionLog, TransactionStatus, TransactionType
from wallets.models import Wallet, WalletKind

# ledger_discrepancies opens its own REPEATABLE READ transaction: it must run
# outside a test transaction, as it does in production.
# The contract holds straight to PostgreSQL and through PgBouncer alike.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.through_pgbouncer]


@pytest.fixture
def books(funded_wallet):
    """Two currencies, moved only through the service: deposits, a transfer,
    a withdrawal, a FAILED transfer and a PENDING log a crash left behind."""
    a, b = funded_wallet("100.00"), funded_wallet("50.00")
    client = a.owner
    funded_wallet("20.00", currency="USD")

    def transfer(key: str, amount: str):
        return services.transfer_create(
            client=client,
            source_wallet_id=a.pk,
            destination_wallet_id=b.pk,
            amount=Decimal(amount),
            idempotency_key=key,
            metadata={},
        ).log

    paid = transfer("paid", "30.00")
    services.withdrawal_create(
        client=client, wallet_id=b.pk, amount=Decimal("10.00"), idempotency_key="out", metadata={}
    )
    assert transfer("too-much", "1000.00").status == TransactionStatus.FAILED
    services._record_pending(
        client=client,
        idempotency_key="crashed",
        fingerprint="0" * 64,
        movement=Movement(TransactionType.TRANSFER, Decimal("5.00"), {}, a.pk, b.pk),
    )
    return SimpleNamespace(
        client=client,
        a=a,
        b=b,
        usd_settlement=Wallet.objects.get(kind=WalletKind.SETTLEMENT, currency="USD"),
        paid=paid,
    )


def sql(statement: str, params: list) -> None:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)


def raise_a_customer_balance(books):
    sql("UPDATE wallets SET balance = balance + 1 WHERE id = %s", [books.a.pk])
    return {("conservation", "NGN"), ("ledger_agreement", str(books.a.pk))}


def move_money_between_customers_outside_the_ledger(books):
    # Conservation still holds: only the ledger can tell.
    sql(
        "UPDATE wallets SET balance = balance + CASE WHEN id = %s THEN -5 ELSE 5 END WHERE id IN (%s, %s)",
        [books.a.pk, books.a.pk, books.b.pk],
    )
    return {("ledger_agreement", str(books.a.pk)), ("ledger_agreement", str(books.b.pk))}


def insert_a_completed_log_that_moved_nothing(books):
    sql(
        """
        INSERT INTO transaction_logs (id, client_id, idempotency_key, movement_fingerprint, source_wallet_id,
            destination_wallet_id, amount, currency, type, status, reference, metadata, error_code,
            error_message, created_at, updated_at, completed_at)
        VALUES (gen_random_uuid(), %s, 'planted', repeat('0', 64), %s, %s, 7.00, 'NGN', 'TRANSFER',
            'COMPLETED', 'TXN-PLANTED0001', '{}', '', '', now(), now(), now())
        """,
        [books.client.pk, books.a.pk, books.b.pk],
    )
    return {("ledger_agreement", str(books.a.pk)), ("ledger_agreement", str(books.b.pk))}


def change_a_settled_amount(books):
    sql("UPDATE transaction_logs SET amount = amount + 1 WHERE id = %s", [books.paid.pk])
    return {("ledger_agreement", str(books.a.pk)), ("ledger_agreement", str(books.b.pk))}


def mark_a_completed_log_failed(books):
    sql(
        "UPDATE transaction_logs SET status = 'FAILED', completed_at = NULL, error_code = 'x', error_message = 'x' "
        "WHERE id = %s",
        [books.paid.pk],
    )
    return {("ledger_agreement", str(books.a.pk)), ("ledger_agreement", str(books.b.pk))}


def lower_a_settlement_balance(books):
    sql("UPDATE wallets SET balance = balance - 3 WHERE id = %s", [books.usd_settlement.pk])
    return {("conservation", "USD"), ("ledger_agreement", str(books.usd_settlement.pk))}


def test_verify_ledger_is_silent_on_books_moved_only_by_the_service(books):
    out = StringIO()

    call_command("verify_ledger", stdout=out)

    assert out.getvalue().startswith("The books balance: no discrepancies")
    assert TransactionLog.objects.filter(status=TransactionStatus.PENDING).count() == 1


@pytest.mark.parametrize(
    "plant",
    [
        raise_a_customer_balance,
        move_money_between_customers_outside_the_ledger,
        insert_a_completed_log_that_moved_nothing,
        change_a_settled_amount,
        mark_a_completed_log_failed,
        lower_a_settlement_balance,
    ],
)
def test_verify_ledger_names_every_planted_discrepancy_and_exits_1(books, plant):
    expected = plant(books)
    out, err = StringIO(), StringIO()

    with pytest.raises(SystemExit) as exit_:
        call_command("verify_ledger", stdout=out, stderr=err)

    assert exit_.value.code == 1
    assert {(d.invariant, d.subject) for d in ledger_discrepancies()} == expected
    lines = out.getvalue().splitlines()
    assert sorted(tuple(line.split()[:2]) for line in lines) == sorted(expected)
    assert f"{len(expected)} discrepancies found" in err.getvalue()
