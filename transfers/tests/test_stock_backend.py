"""The money path needs nothing of this project's database backend
(wallet_project/db/base.py): with Django's own PostgreSQL backend a transfer,
a deposit, a withdrawal and a batch settle as they do here, through the same
engine (wallet_project.db.base.statement_cursor falls back to cursor())."""

from decimal import Decimal

import pytest
from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.backends.postgresql.base import DatabaseWrapper as StockDatabaseWrapper

from events.models import Event
from transfers.models import BatchStatus, Payout, TransactionStatus
from transfers.services import batch_create, deposit_create, transfer_create, withdrawal_create
from wallets.models import Wallet

# transaction=True: the stock connection is a second connection, which must
# see what the fixtures committed and commit what it does.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def stock_backend():
    """The default alias served by Django's stock PostgreSQL backend for the test."""
    settings_dict = {**connection.settings_dict, "ENGINE": "django.db.backends.postgresql"}
    stock = StockDatabaseWrapper(settings_dict, alias=DEFAULT_DB_ALIAS)
    ours = connections[DEFAULT_DB_ALIAS]
    connections[DEFAULT_DB_ALIAS] = stock
    try:
        yield stock
    finally:
        stock.close()
        connections[DEFAULT_DB_ALIAS] = ours


def balances(*wallets) -> list[Decimal]:
    return [Wallet.objects.get(pk=wallet.pk).balance for wallet in wallets]


def test_a_transfer_a_deposit_and_a_withdrawal_settle_on_djangos_stock_backend(stock_backend, funded_wallet):
    source, destination = funded_wallet("100.00"), funded_wallet("0")
    client = source.owner
    assert not hasattr(connection, "statement_cursor")  # the stock backend serves

    transferred = transfer_create(
        client=client, source_wallet_id=source.pk, destination_wallet_id=destination.pk, amount=Decimal("30.00"),
        idempotency_key="stock-transfer", metadata={"on": "stock"},
    )  # fmt: skip
    deposited = deposit_create(
        client=client, wallet_id=destination.pk, amount=Decimal("5.00"), idempotency_key="stock-deposit", metadata={}
    )
    withdrawn = withdrawal_create(
        client=client, wallet_id=source.pk, amount=Decimal("10.00"), idempotency_key="stock-withdrawal", metadata={}
    )
    replayed = transfer_create(
        client=client, source_wallet_id=source.pk, destination_wallet_id=destination.pk, amount=Decimal("30.00"),
        idempotency_key="stock-transfer", metadata={"on": "stock"},
    )  # fmt: skip

    assert [r.log.status for r in (transferred, deposited, withdrawn)] == [TransactionStatus.COMPLETED] * 3
    assert (replayed.replayed, replayed.log.pk) == (True, transferred.log.pk)
    assert balances(source, destination) == [Decimal("60.00"), Decimal("35.00")]
    assert Event.objects.filter(data__id=str(transferred.log.pk), type="transfer.completed").exists()


def test_a_batch_settles_on_djangos_stock_backend(stock_backend, funded_wallet):
    pool, first, second = funded_wallet("100.00"), funded_wallet("0"), funded_wallet("0", is_active=False)

    result = batch_create(
        client=pool.owner,
        idempotency_key="stock-batch",
        source_wallet_id=pool.pk,
        atomic=False,
        payouts=(Payout(first.pk, Decimal("40.00"), "stock-1", {}), Payout(second.pk, Decimal("1.00"), "stock-2", {})),
    )

    assert result.batch.status == BatchStatus.PARTIALLY_COMPLETED
    assert [p.status for p in result.payouts] == [TransactionStatus.COMPLETED, TransactionStatus.FAILED]
    assert [p.error_code for p in result.payouts] == ["", "wallet_inactive"]
    assert balances(pool, first, second) == [Decimal("60.00"), Decimal("40.00"), Decimal("0.00")]
