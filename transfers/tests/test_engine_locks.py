"""decide is given its locked rows and takes none (docs/design.md, "The locks,
and their order"): locks.lock_limit_rows takes rows 4 and 5 of the order,
every exposure row before every client daily-debits row, whatever the mix
of movements in a posting."""

import uuid
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from transfers import engine, locks
from transfers.models import TransactionLog, TransactionType, business_day
from wallets.models import Wallet, WalletKind

pytestmark = pytest.mark.django_db


def pending(source: Wallet, destination: Wallet, amount: str, type_=TransactionType.TRANSFER) -> TransactionLog:
    return TransactionLog(
        id=uuid.uuid4(), client_id=source.owner_id or destination.owner_id, idempotency_key=str(uuid.uuid4()),
        type=type_, source_wallet_id=source.pk, destination_wallet_id=destination.pk,
        amount=Decimal(amount), currency=source.currency,
    )  # fmt: skip


def test_a_mixed_posting_locks_every_exposure_row_before_any_daily_debits_row(settings, funded_wallet, wallet_owner):
    settings.CLIENT_DAILY_DEBIT_LIMIT = {"NGN": Decimal("1000000.00")}
    payer = funded_wallet("100.00", owner=wallet_owner)
    payee = funded_wallet("0", owner=wallet_owner)
    settlement = Wallet.objects.get(kind=WalletKind.SETTLEMENT, currency="NGN")
    # A transfer (a daily debit) decided before a deposit (an exposure).
    logs = [pending(payer, payee, "10.00"), pending(settlement, payee, "5.00", TransactionType.DEPOSIT)]
    day = business_day(timezone.now())
    with transaction.atomic():
        wallets = locks.lock_wallets(payer.pk, payee.pk, settlement.pk, day=day)
        with CaptureQueriesContext(connection) as locking:
            rows = locks.lock_limit_rows(logs, wallets, day=day)
        with CaptureQueriesContext(connection) as deciding:
            posting = engine.decide(logs, wallets, rows, day=day)

    locked = [q["sql"] for q in locking.captured_queries if "FOR NO KEY UPDATE" in q["sql"]]
    # (A row made at zero on first use is locked, inserted and locked again.)
    tables = ["client_exposures" if "client_exposures" in sql else "client_daily_debits" for sql in locked]
    assert "client_daily_debits" in tables
    assert tables == sorted(tables, key=lambda table: table != "client_exposures")
    assert deciding.captured_queries == []
    assert [decision.failure for decision in posting.decisions] == [None, None]
    assert posting.totals[payer.pk].debits == Decimal("10.00") and posting.totals[payee.pk].credits == Decimal("15.00")
