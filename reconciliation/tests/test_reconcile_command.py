"""manage.py reconcile, for a person on call: what it changes, what it shows."""

from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from reconciliation.services import ledger_discrepancies, logs_reconcile, stale_pending_logs
from transfers import services
from transfers.models import TransactionLog, TransactionStatus
from wallets.models import Wallet

pytestmark = pytest.mark.django_db


@pytest.fixture
def stuck(funded_wallet, monkeypatch):
    """stuck(amount, age) -> a PENDING log, as a crash after the PENDING commit leaves it."""
    source, destination = funded_wallet("100.00"), funded_wallet("0")
    client = source.owner

    def make(amount="10.00", age=timedelta(minutes=10)):
        with monkeypatch.context() as patch:
            patch.setattr(services, "transaction_settle", lambda **kwargs: (_ for _ in ()).throw(SystemError()))
            with pytest.raises(SystemError):
                services.transfer_create(
                    client=client,
                    source_wallet_id=source.pk,
                    destination_wallet_id=destination.pk,
                    amount=Decimal(amount),
                    idempotency_key=f"stuck-{TransactionLog.objects.count()}",
                    metadata={},
                )
        log = TransactionLog.objects.latest("created_at")
        TransactionLog.objects.filter(pk=log.pk).update(created_at=timezone.now() - age)
        return log

    make.source, make.destination = source, destination
    return make


def run(*args) -> str:
    out = StringIO()
    call_command("reconcile", *args, stdout=out)
    return out.getvalue()


def test_reconcile_settles_stale_pending_logs_and_prints_a_table(stuck):
    first, second = stuck("10.00"), stuck("200.00")  # the second is more than the source holds

    output = run()

    assert TransactionLog.objects.get(pk=first.pk).status == TransactionStatus.COMPLETED
    failed = TransactionLog.objects.get(pk=second.pk)
    assert (failed.status, failed.error_code) == (TransactionStatus.FAILED, "insufficient_balance")
    assert first.reference in output and second.reference in output
    assert "Summary: COMPLETED 1, FAILED 1" in output
    assert Wallet.objects.get(pk=stuck.source.pk).balance == Decimal("90.00")
    assert ledger_discrepancies() == []


def test_young_pending_logs_are_left_to_their_client_unless_asked(stuck):
    young = stuck(age=timedelta(seconds=5))

    assert "No PENDING transactions" in run()
    assert TransactionLog.objects.get(pk=young.pk).status == TransactionStatus.PENDING

    run("--older-than", "0")
    assert TransactionLog.objects.get(pk=young.pk).status == TransactionStatus.COMPLETED


@pytest.mark.parametrize(
    "seconds", ["-5", "\uff11\uff10", "+5", " 5", "5.0"], ids=["negative", "fullwidth", "plus", "space", "point"]
)
def test_an_age_the_api_would_not_read_as_a_whole_number_of_seconds_is_a_command_error(stuck, seconds):
    """int() read each (-5 re-drove PENDING logs still in their clients'
    hands, as --older-than 0 does, and "\uff11\uff10" was 10); the option
    now reads a whole number as the API does, 0 or more."""
    young = stuck(age=timedelta(seconds=5))

    with pytest.raises(CommandError, match="--older-than"):
        run("--older-than", seconds)

    assert TransactionLog.objects.get(pk=young.pk).status == TransactionStatus.PENDING


def test_dry_run_lists_and_changes_nothing(stuck):
    log = stuck()

    output = run("--dry-run")

    assert "Would re-drive 1" in output and log.reference in output
    assert TransactionLog.objects.get(pk=log.pk).status == TransactionStatus.PENDING
    assert Wallet.objects.get(pk=stuck.source.pk).balance == Decimal("100.00")


@pytest.mark.parametrize("by", ["reference", "id"])
def test_one_transaction_by_reference_or_id_whatever_its_age(stuck, by):
    target, other = stuck(age=timedelta(seconds=1)), stuck()

    run("--transaction", target.reference if by == "reference" else str(target.pk))

    assert TransactionLog.objects.get(pk=target.pk).status == TransactionStatus.COMPLETED
    assert TransactionLog.objects.get(pk=other.pk).status == TransactionStatus.PENDING


@pytest.mark.parametrize(
    "spelling",
    [
        lambda pk: f"{{{pk}}}",
        lambda pk: f"urn:uuid:{pk}",
        lambda pk: pk.hex,
        lambda pk: f" {pk}",
        lambda pk: "txn-20260101abcdefghjk",
    ],
    ids=["braces", "urn", "no-hyphens", "space", "lower-case-reference"],
)
def test_an_id_the_api_would_not_read_is_a_command_error_and_settles_nothing(stuck, spelling):
    """uuid.UUID read each of the first four as the log's id (the API reads
    only the canonical text); the command now names what it takes."""
    log = stuck()

    with pytest.raises(CommandError, match="neither a transaction id .* nor a reference"):
        run("--transaction", spelling(log.pk))

    assert TransactionLog.objects.get(pk=log.pk).status == TransactionStatus.PENDING


def test_a_finished_or_unknown_transaction_is_said_plainly(stuck):
    log = stuck()
    run("--transaction", log.reference)

    assert "is COMPLETED: nothing to do" in run("--transaction", log.reference)
    with pytest.raises(CommandError, match="No transaction"):
        run("--transaction", "TXN-20260101NOSUCHREF")


def test_one_log_that_cannot_be_settled_does_not_block_the_others(stuck, monkeypatch):
    bad, good = stuck(age=timedelta(minutes=20)), stuck(age=timedelta(minutes=10))  # bad is first: oldest
    settle = services.transaction_settle

    def settle_except_bad(*, log_id, skip_locked=False):
        if log_id == bad.pk:
            raise ValueError("something no one foresaw")
        return settle(log_id=log_id, skip_locked=skip_locked)

    monkeypatch.setattr("reconciliation.services.transaction_settle", settle_except_bad)

    outcomes = {o.reference: o for o in logs_reconcile(logs=stale_pending_logs())}
    assert outcomes[bad.reference].outcome == "ERROR"
    assert "something no one foresaw" in outcomes[bad.reference].detail
    assert outcomes[good.reference].outcome == "COMPLETED"

    with pytest.raises(CommandError, match="could not be settled"):
        run()
    assert TransactionLog.objects.get(pk=bad.pk).status == TransactionStatus.PENDING
