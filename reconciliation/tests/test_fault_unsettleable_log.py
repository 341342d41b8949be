"""A log whose money the ledger cannot hold: a balance past NUMERIC(20,2).

The API accepts any amount up to 999999999999999999.99, the largest
NUMERIC(20,2), and every deposit takes the settlement wallet further below
zero. Left to PostgreSQL, the settle step's UPDATE would fail with "numeric
field overflow": a 500 on every retry, a log PENDING for good, and a poison
pill for reconciliation, which works oldest first. It must be a business-rule
failure instead: 422, a FAILED log, replayed the same.
"""

import uuid
from datetime import timedelta
from decimal import Decimal

import pytest

from reconciliation.services import logs_reconcile, stale_pending_logs
from reconciliation.tests.faults import assert_books_balance, balances, post_money
from transfers import services
from transfers.models import Movement, TransactionLog, TransactionStatus, TransactionType
from wallets.models import MAX_AMOUNT, Wallet, WalletKind
from wallets.tests.factories import WalletFactory

# The contract holds straight to PostgreSQL and through PgBouncer alike.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.through_pgbouncer]


@pytest.fixture(autouse=True)
def no_client_exposure_limit(settings):
    """The ledger's own bound is under test: here one client fills the
    settlement wallet, which its exposure limit would otherwise stop first
    (transfers/tests/test_client_exposure.py)."""
    settings.CLIENT_EXPOSURE_LIMIT = MAX_AMOUNT


def fill_settlement_wallet(funded_wallet) -> Wallet:
    """Deposit until the NGN settlement wallet stands at -999999999999999999.99:
    no further deposit of any amount can be booked."""
    funded_wallet("1.00")
    settlement = Wallet.objects.get(kind=WalletKind.SETTLEMENT, currency="NGN")
    funded_wallet(MAX_AMOUNT + settlement.balance)
    settlement.refresh_from_db()
    assert settlement.balance == -MAX_AMOUNT
    return settlement


def test_deposit_that_would_overflow_a_balance_is_refused_and_not_left_pending(funded_wallet, treasury_api):
    fill_settlement_wallet(funded_wallet)
    wallet = WalletFactory(owner=treasury_api.user)
    path, payload, key = f"/api/wallets/{wallet.pk}/deposit", {"amount": "0.01"}, f"overflow-{uuid.uuid4()}"

    first, retry = post_money(treasury_api, path, payload, key), post_money(treasury_api, path, payload, key)

    assert (first.status_code, retry.status_code) == (422, 422), (first.json(), retry.json())
    assert first.json()["code"] == retry.json()["code"]
    assert TransactionLog.objects.get(idempotency_key=key).status == TransactionStatus.FAILED
    assert balances(wallet) == [0]
    assert_books_balance()


def test_one_log_that_cannot_settle_does_not_stop_reconciliation_of_the_others(funded_wallet):
    source, destination = funded_wallet("10.00"), funded_wallet("0")
    settlement = fill_settlement_wallet(funded_wallet)
    client = source.owner
    # What two crashes after step 3 leave behind, oldest first: a deposit the
    # ledger cannot hold, then an ordinary transfer.
    stuck = [
        ("unbookable", TransactionType.DEPOSIT, settlement, WalletFactory(owner=client)),
        ("ordinary", TransactionType.TRANSFER, source, destination),
    ]
    for key, type, debited, credited in stuck:
        services._record_pending(
            client=client,
            idempotency_key=key,
            fingerprint="0" * 64,
            movement=Movement(type, Decimal("0.01"), {}, debited.pk, credited.pk),
        )

    outcomes = logs_reconcile(logs=stale_pending_logs(older_than=timedelta(0)))

    assert [outcome.outcome for outcome in outcomes] == [TransactionStatus.FAILED, TransactionStatus.COMPLETED]
    assert balances(source, destination) == [Decimal("9.99"), Decimal("0.01")]
    assert_books_balance()
