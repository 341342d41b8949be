"""SETTLE defends the ledger itself (docs/design.md, "The settle statement's refusal"): a
posting whose logs are not all as decided (each PENDING; a reversal's
original COMPLETED) is refused whole by the statement, with an error, and
writes nothing: no balance, held, exposure, daily total, client debit, log,
event or reversal. The caller's row lock and PENDING check keep this from
happening; these tests go past them, calling apply_statement directly."""

import uuid
from decimal import Decimal

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from conftest import make_api_client
from transfers import engine, locks, services
from transfers.models import TransactionLog, TransactionType, business_day
from wallets.models import Wallet
from wallets.tests.factories import WalletFactory

pytestmark = pytest.mark.django_db

REFUSED = "settle refused"

# Every table SETTLE writes, each read whole in a stable order.
WRITTEN_BY_SETTLE = {
    "wallets": "id",
    "client_exposures": "id",
    "wallet_daily_totals": "wallet_id, day",
    "client_daily_debits": "id",
    "transaction_logs": "id",
    "events": "id",
}


def ledger() -> dict[str, list[tuple]]:
    """Every row of every table SETTLE writes, as it stands."""
    with connection.cursor() as cursor:
        state = {}
        for table, order in WRITTEN_BY_SETTLE.items():
            cursor.execute(f"SELECT * FROM {table} ORDER BY {order}")  # noqa: S608 (the constants above)
            state[table] = cursor.fetchall()
    return state


def applied_again(posting: engine.Posting) -> None:
    """apply_statement in a savepoint of the test's transaction, as a caller
    that skipped its lock and PENDING check would run it."""
    with transaction.atomic():
        engine.apply_statement(posting, timezone.now())


@pytest.fixture(params=["auto", "force_generic_plan"])
def plan(request):
    """PostgreSQL's plan for SETTLE and SETTLE_MANY: its own choice, and
    the generic plan it settles on for a statement prepared once per
    connection (the refusal is part of the plan's shape, not of the values
    given)."""
    with connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL plan_cache_mode = {request.param}")


@pytest.fixture
def client_debit_cap(settings):
    """A client daily-debits cap in NGN: SETTLE then writes the client's row too."""
    settings.CLIENT_DAILY_DEBIT_LIMIT = {"NGN": Decimal("1000000.00")}


@pytest.fixture
def decided(monkeypatch):
    """The postings the engine applies from now on, as decided, in order."""
    postings = []
    apply_statement = engine.apply_statement

    def recording(posting, now):
        postings.append(posting)
        apply_statement(posting, now)

    monkeypatch.setattr(engine, "apply_statement", recording)
    return postings


def settled_transfer(funded_wallet) -> tuple[TransactionLog, Wallet, Wallet]:
    """(log, source, destination): 7.00 moved between two wallets of one
    client, from 20.00; COMPLETED."""
    payer = make_api_client("Disbursement client").user
    source, destination = funded_wallet("20.00", owner=payer), WalletFactory(owner=payer)
    log = services.transfer_create(
        client=payer, source_wallet_id=source.pk, destination_wallet_id=destination.pk, amount=Decimal("7"),
        idempotency_key="settled-once", metadata={},
    ).log  # fmt: skip
    return log, source, destination


def test_a_settled_transfers_posting_applied_again_is_refused_and_moves_nothing(
    funded_wallet, client_debit_cap, decided, plan
):
    _, source, _ = settled_transfer(funded_wallet)
    (posting,) = decided[-1:]
    assert posting.totals and posting.client_debits  # every part of the statement is in play
    before = ledger()

    with pytest.raises(IntegrityError, match=REFUSED):
        applied_again(posting)

    assert ledger() == before
    source.refresh_from_db()
    assert source.balance == Decimal("13.00")


def test_a_posting_with_no_money_and_no_recipient_is_refused_all_the_same(funded_wallet, plan):
    """The refusal does not depend on what else the posting writes: a
    FAILED decision (no balance) for a log between wallets with no owner to
    tell (no event)."""
    log, source, destination = settled_transfer(funded_wallet)
    unowned = {wallet.pk: Wallet(pk=wallet.pk, kind=wallet.kind, owner_id=None) for wallet in (source, destination)}
    posting = engine.Posting(
        decisions=[engine.Decision(log, engine.Failure("insufficient_balance", "again"))], wallets=unowned
    )
    before = ledger()

    with pytest.raises(IntegrityError, match=REFUSED):
        applied_again(posting)

    assert ledger() == before
    log.refresh_from_db()
    assert (log.status, log.error_code) == ("COMPLETED", "")


def pending_payout(pool: Wallet, destination: Wallet, amount: str) -> TransactionLog:
    return TransactionLog.objects.create(
        id=uuid.uuid4(), client_id=pool.owner_id, idempotency_key=f"payout-{uuid.uuid4()}",
        movement_fingerprint="0" * 64, type=TransactionType.TRANSFER, source_wallet_id=pool.pk,
        destination_wallet_id=destination.pk, amount=Decimal(amount), currency=pool.currency, metadata={},
    )  # fmt: skip


def test_one_log_of_many_already_settled_refuses_the_whole_posting(funded_wallet, client_debit_cap, plan):
    pool = funded_wallet("100.00")
    payouts = [pending_payout(pool, funded_wallet("0"), amount) for amount in ("10.00", "20.00", "30.00")]
    day = business_day(timezone.now())
    wallets = locks.lock_wallets(pool.pk, *(log.destination_wallet_id for log in payouts), day=day)
    posting = engine.decide(payouts, wallets, locks.lock_limit_rows(payouts, wallets, day=day), day=day)
    assert [decision.failure for decision in posting.decisions] == [None, None, None]
    assert len(engine._legs(posting)) > 2  # sent as SETTLE_MANY
    # Settled in the meantime by someone who did not hold the lock.
    TransactionLog.objects.filter(pk=payouts[1].pk).update(status="FAILED", error_code="x", error_message="x")
    before = ledger()

    with pytest.raises(IntegrityError, match=REFUSED):
        applied_again(posting)

    assert ledger() == before
    assert list(TransactionLog.objects.filter(pk__in=[p.pk for p in payouts]).order_by("amount").values_list(
        "status", flat=True
    )) == ["PENDING", "FAILED", "PENDING"]  # fmt: skip


def test_a_reversal_of_a_log_no_longer_completed_is_refused_and_moves_nothing(funded_wallet):
    original, source, destination = settled_transfer(funded_wallet)
    # Marked REVERSED by someone who did not hold its lock.
    TransactionLog.objects.filter(pk=original.pk).update(status="REVERSED")
    compensation = TransactionLog(
        client_id=original.client_id, idempotency_key=f"reversal:{original.pk}", movement_fingerprint="0" * 64,
        type=TransactionType.TRANSFER, source_wallet_id=destination.pk, destination_wallet_id=source.pk,
        amount=original.amount, currency=original.currency, metadata={}, reversal_of=original,
    )  # fmt: skip
    before = ledger()

    with pytest.raises(IntegrityError, match=REFUSED), transaction.atomic():
        engine.settle_correction(compensation, reverses=original)

    assert ledger() == before


# --- how the service takes it: loud, never a success -------------------------------


@pytest.fixture
def settled_behind_the_engines_back(monkeypatch):
    """settled_behind_the_engines_back(): a bug in the caller, made to order
    from then on. Once the settle step has locked a PENDING log and its
    wallets, the log's row is settled under it (FAILED, in the step's own
    transaction, which holds the lock), and the step goes on deciding on
    what it read."""
    lock_log_and_wallets = locks.lock_log_and_wallets

    def locked_then_settled(log_id, **kwargs):
        log, wallets = lock_log_and_wallets(log_id, **kwargs)
        if log is not None and wallets:
            TransactionLog.objects.filter(pk=log.pk).update(status="FAILED", error_code="bug", error_message="bug")
        return log, wallets

    return lambda: monkeypatch.setattr(locks, "lock_log_and_wallets", locked_then_settled)


def test_the_api_answers_a_refused_posting_with_500_and_the_log_stays_pending(
    transfer_api, funded_wallet, settled_behind_the_engines_back
):
    source, destination = funded_wallet("20.00"), funded_wallet("0")
    body = {"sourceWalletId": str(source.pk), "destinationWalletId": str(destination.pk), "amount": "7.00"}
    before = ledger()
    settled_behind_the_engines_back()

    response = transfer_api.post("/api/transfer", body, format="json", headers={"Idempotency-Key": "refused"})

    assert response.status_code == 500 and response.json()["code"] == "internal_error"
    log = TransactionLog.objects.get(idempotency_key="refused")
    assert log.status == "PENDING"
    after = ledger()
    assert [row for row in after["transaction_logs"] if row[0] != log.pk] == before["transaction_logs"]
    assert {table: rows for table, rows in after.items() if table != "transaction_logs"} == {
        table: rows for table, rows in before.items() if table != "transaction_logs"
    }


def test_reconciliation_reports_a_refused_posting_as_an_error_and_moves_nothing(
    funded_wallet, wallet_owner, settled_behind_the_engines_back
):
    from datetime import timedelta

    from reconciliation.services import logs_reconcile, stale_pending_logs
    from transfers.models import Movement

    source, destination = funded_wallet("20.00"), funded_wallet("0")
    log, _ = services._record_pending(
        client=wallet_owner, idempotency_key="stuck", fingerprint="0" * 64,
        movement=Movement(TransactionType.TRANSFER, Decimal("7.00"), {}, source.pk, destination.pk),
    )  # fmt: skip
    before = ledger()
    settled_behind_the_engines_back()

    (outcome,) = logs_reconcile(logs=stale_pending_logs(older_than=timedelta(0)))

    assert outcome.outcome == "ERROR" and REFUSED in outcome.detail
    assert ledger() == before
    log.refresh_from_db()
    assert log.status == "PENDING"
