"""Tier limits and restrictions, enforced by the engine under the row locks
(docs/limits.md): which movement each cap refuses and what the refusal
says, that the running totals move exactly with the balances, the Lagos
business day, batches, and races of threads and processes against one cap."""

import datetime
import os
import subprocess
import sys
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
from django.db import connection
from django.db.models import Sum
from django.utils import timezone

from conftest import make_api_client
from reconciliation.services import ledger_discrepancies
from reconciliation.tests.faults import database_env
from transfers.models import (
    ClientDailyDebit,
    TransactionLog,
    TransactionStatus,
    TransactionType,
    WalletDailyTotal,
    business_day,
)
from transfers.services import deposit_create, transaction_reverse, transfer_create, withdrawal_create
from transfers.tests.concurrency import post_deposit, post_transfer, post_withdrawal, run_concurrently
from transfers.tests.limit_helpers import put_in, seeded_tier, tier_with
from wallets.models import Wallet
from wallets.tests.factories import WalletFactory

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
LAGOS = datetime.timezone(datetime.timedelta(hours=1))


def body(response, status: int) -> dict:
    assert response.status_code == status, response.content
    return response.json()


def today_totals(wallet: Wallet) -> tuple[Decimal, Decimal]:
    row = WalletDailyTotal.objects.filter(wallet=wallet, day=business_day(timezone.now())).first()
    return (row.debits, row.credits) if row else (Decimal(0), Decimal(0))


def moved_today(wallet: Wallet, direction: str) -> Decimal:
    """What the completed logs of today moved out of (debits) or into
    (credits) `wallet`, reversals' compensations excluded."""
    logs = TransactionLog.objects.filter(status__in=[TransactionStatus.COMPLETED, TransactionStatus.REVERSED])
    logs = logs.filter(reversal_of__isnull=True)
    side = {"debits": "source_wallet", "credits": "destination_wallet"}[direction]
    return logs.filter(**{side: wallet}).aggregate(total=Sum("amount"))["total"] or Decimal(0)


# --- the caps and what a refusal says ------------------------------------------------


def test_a_debit_past_the_daily_cap_is_422_limit_exceeded_naming_the_cap_and_the_room(treasury_api, funded_wallet):
    payer, payee = funded_wallet("5000.00"), funded_wallet("0")
    put_in(payer, tier_with(max_daily_debits="1000.00"))
    assert body(post_transfer(treasury_api.api_key, payer, payee, "700.00", "cap-1"), 201)

    refused = body(post_transfer(treasury_api.api_key, payer, payee, "300.01", "cap-2"), 422)

    assert refused["code"] == "limit_exceeded"
    assert "maxDailyDebits" in refused["message"] and "1000.00 NGN" in refused["message"]
    assert "room left: 300.00" in refused["message"]
    log = TransactionLog.objects.get(idempotency_key="cap-2")
    assert (log.status, log.error_code) == (TransactionStatus.FAILED, "limit_exceeded")
    # A replay answers the same failure; exactly the room still fits.
    again = body(post_transfer(treasury_api.api_key, payer, payee, "300.01", "cap-2"), 422)
    assert (again["code"], again["message"]) == (refused["code"], refused["message"])
    assert body(post_transfer(treasury_api.api_key, payer, payee, "300.00", "cap-3"), 201)
    assert today_totals(payer)[0] == Decimal("1000.00")


@pytest.mark.parametrize(
    ("cap", "named"),
    [("max_single_debit", "maxSingleDebit"), ("max_single_credit", "maxSingleCredit")],
)
def test_a_single_movement_past_a_single_cap_is_refused_and_one_at_the_cap_passes(
    cap, named, treasury_api, funded_wallet
):
    payer, payee = funded_wallet("5000.00"), funded_wallet("0")
    put_in(payer if cap == "max_single_debit" else payee, tier_with(**{cap: "100.00"}))

    refused = body(post_transfer(treasury_api.api_key, payer, payee, "100.01", "single-1"), 422)

    assert refused["code"] == "limit_exceeded" and named in refused["message"]
    assert body(post_transfer(treasury_api.api_key, payer, payee, "100.00", "single-2"), 201)


def test_deposits_count_against_the_daily_credits_and_the_balance_cap(treasury_api, funded_wallet):
    wallet = put_in(funded_wallet("0"), tier_with(max_daily_credits="500.00", max_balance="800.00"))
    assert body(post_deposit(treasury_api.api_key, wallet, "500.00", "in-1"), 201)

    refused = body(post_deposit(treasury_api.api_key, wallet, "0.01", "in-2"), 422)

    assert "maxDailyCredits" in refused["message"] and "room left: 0.00" in refused["message"]


def test_a_tier_lowered_below_the_balance_blocks_credits_only(treasury_api, funded_wallet):
    wallet, other = funded_wallet("400000.00"), funded_wallet("1000.00")
    # Level 1's balance cap and daily debits (its daily credits are used up by the funding).
    put_in(wallet, tier_with(max_balance="300000.00", max_daily_debits="50000.00"))

    refused = body(post_transfer(treasury_api.api_key, other, wallet, "1.00", "lowered-in"), 422)
    assert "maxBalance" in refused["message"] and "room left: 0.00" in refused["message"]
    assert body(post_withdrawal(treasury_api.api_key, wallet, "10000.00", "lowered-out"), 201)
    assert body(post_transfer(treasury_api.api_key, wallet, other, "20000.00", "lowered-transfer"), 201)


def test_the_seeded_level_1_holds_the_cbn_figures():
    level_1 = seeded_tier("level_1")
    assert (level_1.max_daily_debits, level_1.max_daily_credits, level_1.max_balance, level_1.max_single_credit) == (
        Decimal("50000.00"),
        Decimal("50000.00"),
        Decimal("300000.00"),
        Decimal("50000.00"),
    )


def test_a_payee_of_another_client_is_refused_without_its_tier_or_room(funded_wallet):
    lender = make_api_client("Disbursement client")
    borrower_client = make_api_client("Treasury client")
    pool = funded_wallet("10000.00", owner=lender.user)
    borrower = put_in(WalletFactory(owner=borrower_client.user), tier_with(max_single_credit="50.00"))

    refused = body(post_transfer(lender.api_key, pool, borrower, "60.00", "private-payee"), 422)

    assert refused["code"] == "limit_exceeded"
    assert refused["message"] == "The destination wallet cannot receive this amount."
    assert "50.00" not in str(refused)


def test_a_wallet_without_a_tier_is_unrestricted_and_still_counted(treasury_api, funded_wallet):
    payer, payee = funded_wallet("10000000.00"), funded_wallet("0")

    assert body(post_transfer(treasury_api.api_key, payer, payee, "9000000.00", "big"), 201)

    assert today_totals(payer) == (Decimal("9000000.00"), Decimal("10000000.00"))
    assert today_totals(payee) == (Decimal(0), Decimal("9000000.00"))


# --- restrictions ---------------------------------------------------------------------


def restrict(wallet: Wallet, **flags: bool) -> Wallet:
    Wallet.objects.filter(pk=wallet.pk).update(restriction_reason="no BVN", **flags)
    wallet.refresh_from_db()
    return wallet


def test_post_no_debit_blocks_a_transfer_out_and_a_withdrawal_and_lets_a_deposit_in(treasury_api, funded_wallet):
    wallet, other = funded_wallet("1000.00"), funded_wallet("1000.00")
    restrict(wallet, post_no_debit=True)

    out = body(post_transfer(treasury_api.api_key, wallet, other, "1.00", "pnd-out"), 422)
    withdrawal = body(post_withdrawal(treasury_api.api_key, wallet, "1.00", "pnd-withdraw"), 422)

    assert out["code"] == withdrawal["code"] == "wallet_restricted"
    assert "post-no-debit" in out["message"]
    assert body(post_deposit(treasury_api.api_key, wallet, "5.00", "pnd-deposit"), 201)
    assert body(post_transfer(treasury_api.api_key, other, wallet, "5.00", "pnd-in"), 201)
    wallet.refresh_from_db()
    assert wallet.balance == Decimal("1010.00")


def test_post_no_credit_blocks_money_in_and_lets_money_out(treasury_api, funded_wallet):
    wallet, other = funded_wallet("1000.00"), funded_wallet("1000.00")
    restrict(wallet, post_no_credit=True)

    assert body(post_deposit(treasury_api.api_key, wallet, "5.00", "pnc-deposit"), 422)["code"] == "wallet_restricted"
    assert body(post_transfer(treasury_api.api_key, other, wallet, "5.00", "pnc-in"), 422)["code"] == (
        "wallet_restricted"
    )
    assert body(post_transfer(treasury_api.api_key, wallet, other, "5.00", "pnc-out"), 201)


def test_a_restriction_is_checked_before_the_balance(treasury_api, funded_wallet):
    wallet, other = restrict(funded_wallet("0"), post_no_debit=True), funded_wallet("0")

    assert body(post_transfer(treasury_api.api_key, wallet, other, "1.00", "order"), 422)["code"] == (
        "wallet_restricted"
    )


# --- the client's caps -------------------------------------------------------------------


def test_the_clients_per_movement_maximum_refuses_any_movement_above_it(settings, treasury_api, funded_wallet):
    payer, payee = funded_wallet("5000.00"), funded_wallet("0")
    settings.CLIENT_MAX_REQUEST_AMOUNT = {"NGN": Decimal("1000.00")}

    refused = body(post_transfer(treasury_api.api_key, payer, payee, "1000.01", "per-request"), 422)

    assert "clientMaxRequestAmount" in refused["message"]
    assert body(post_transfer(treasury_api.api_key, payer, payee, "1000.00", "per-request-ok"), 201)


def test_a_client_at_its_daily_debit_cap_never_stops_another_client(settings, funded_wallet):
    settings.CLIENT_DAILY_DEBIT_LIMIT = {"NGN": Decimal("1000.00")}
    first, second = make_api_client("Treasury client"), make_api_client("Treasury client")
    first_wallets = [funded_wallet("1000.00", owner=first.user) for _ in range(2)]
    second_wallet = funded_wallet("2000.00", owner=second.user)

    assert body(post_withdrawal(first.api_key, first_wallets[0], "600.00", "c1-a"), 201)
    refused = body(post_withdrawal(first.api_key, first_wallets[1], "400.01", "c1-b"), 422)
    assert "clientDailyDebits" in refused["message"] and "room left: 400.00" in refused["message"]

    assert body(post_withdrawal(second.api_key, second_wallet, "1000.00", "c2-a"), 201)
    day = business_day(timezone.now())
    counted = dict(ClientDailyDebit.objects.filter(day=day, currency="NGN").values_list("client_id", "amount"))
    assert counted == {first.user.pk: Decimal("600.00"), second.user.pk: Decimal("1000.00")}


# --- what counts, and when ----------------------------------------------------------------


def test_a_reversal_and_the_settlement_wallet_are_outside_tiers(finance_user, treasury_api, funded_wallet):
    payer, payee = funded_wallet("5000.00"), funded_wallet("0")
    put_in(payer, tier_with(max_daily_debits="1000.00", max_daily_credits="1000.00"))
    body(post_transfer(treasury_api.api_key, payer, payee, "1000.00", "to-reverse"), 201)
    put_in(payee, tier_with(max_daily_debits="0.00"))

    transaction_reverse(
        log_id=TransactionLog.objects.get(idempotency_key="to-reverse").pk, reason="test", reversed_by=finance_user
    )

    payer.refresh_from_db()
    assert payer.balance == Decimal("5000.00")
    assert today_totals(payer)[0] == Decimal("1000.00")  # the reversal counts nowhere


@pytest.fixture
def finance_user(migrated_groups):
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    user = get_user_model().objects.create_user(f"finance-{uuid.uuid4().hex[:6]}", is_staff=True)
    user.groups.add(Group.objects.get(name="Finance"))
    return user


def at_lagos(hour: int, minute: int, second: int, *, day: int = 6) -> datetime.datetime:
    return datetime.datetime(2026, 12, day, hour, minute, second, tzinfo=LAGOS).astimezone(datetime.UTC)


def test_the_day_ends_at_midnight_in_lagos_while_the_server_clock_is_utc(monkeypatch, wallet_owner, funded_wallet):
    payer, payee = funded_wallet("5000.00"), funded_wallet("0")
    put_in(payer, tier_with(max_daily_debits="100.00"))

    def transfer(amount: str, key: str) -> TransactionLog:
        return transfer_create(
            client=wallet_owner,
            source_wallet_id=payer.pk,
            destination_wallet_id=payee.pk,
            amount=Decimal(amount),
            idempotency_key=key,
            metadata={},
        ).log

    # 23:59:59 in Lagos is 22:59:59 UTC: still 6 December there.
    monkeypatch.setattr(timezone, "now", lambda: at_lagos(23, 59, 59))
    assert transfer("100.00", "before-midnight").status == TransactionStatus.COMPLETED
    assert transfer("0.01", "still-the-same-day").error_code == "limit_exceeded"
    # 00:00:00 in Lagos, 23:00:00 UTC on the 6th: a new business day.
    monkeypatch.setattr(timezone, "now", lambda: at_lagos(0, 0, 0, day=7))
    assert transfer("100.00", "after-midnight").status == TransactionStatus.COMPLETED

    # The days its debits counted in. Not every row of the wallet: the
    # fixture funded it at the real clock's time, on that day's row (credits
    # only), which from 8 December in Lagos is a third day.
    debits = WalletDailyTotal.objects.filter(wallet=payer).exclude(debits=0)
    totals = dict(debits.values_list("day", "debits"))
    assert totals == {datetime.date(2026, 12, 6): Decimal("100.00"), datetime.date(2026, 12, 7): Decimal("100.00")}


def test_the_business_day_follows_the_setting(settings):
    moment = datetime.datetime(2026, 12, 6, 23, 30, tzinfo=datetime.UTC)
    assert business_day(moment) == datetime.date(2026, 12, 7)  # 00:30 in Lagos
    settings.BUSINESS_TIME_ZONE = "UTC"
    assert business_day(moment) == datetime.date(2026, 12, 6)


# --- batches ------------------------------------------------------------------------------


def post_batch(api, source, payouts, *, atomic: bool):
    return api.post(
        "/api/transfers/batch",
        {
            "sourceWalletId": str(source.pk),
            "atomic": atomic,
            "transfers": [
                {"destinationWalletId": str(wallet.pk), "amount": amount, "idempotencyKey": f"p-{uuid.uuid4()}"}
                for wallet, amount in payouts
            ],
        },
        format="json",
        headers={"Idempotency-Key": f"batch-{uuid.uuid4()}"},
    )


def test_an_independent_batch_fails_only_the_payouts_past_the_cap(transfer_api, funded_wallet):
    pool = put_in(funded_wallet("10000.00"), tier_with(max_daily_debits="250.00"))
    payees = [funded_wallet("0") for _ in range(4)]

    batch = body(post_batch(transfer_api, pool, [(p, "100.00") for p in payees], atomic=False), 201)["data"]

    outcomes = [(p["status"], p["errorCode"]) for p in batch["payouts"]]
    assert outcomes == [
        ("COMPLETED", ""),
        ("COMPLETED", ""),
        ("FAILED", "limit_exceeded"),
        ("FAILED", "limit_exceeded"),
    ]
    assert "room left: 50.00" in batch["payouts"][2]["errorMessage"]
    assert today_totals(pool)[0] == Decimal("200.00")


def test_an_atomic_batch_crossing_a_cap_moves_nothing_and_names_the_limit(transfer_api, funded_wallet):
    pool = put_in(funded_wallet("10000.00"), tier_with(max_daily_debits="250.00"))
    payees = [funded_wallet("0") for _ in range(3)]
    debits_before = today_totals(pool)[0]

    answer = body(post_batch(transfer_api, pool, [(p, "100.00") for p in payees], atomic=True), 422)

    assert answer["code"] == "batch_failed"
    data = answer["data"]
    assert (data["errorCode"], data["failedPayoutIndex"]) == ("limit_exceeded", 2)
    assert "maxDailyDebits" in data["payouts"][2]["errorMessage"]
    pool.refresh_from_db()
    assert pool.balance == Decimal("10000.00")
    assert today_totals(pool)[0] == debits_before


# --- the totals move with the balances ------------------------------------------------------


def test_the_daily_totals_equal_what_the_completed_logs_moved(treasury_api, funded_wallet):
    a, b = funded_wallet("1000.00"), funded_wallet("1000.00")
    put_in(a, tier_with(max_daily_debits="300.00"))
    for n, (source, destination, amount) in enumerate(
        [(a, b, "100.00"), (b, a, "50.00"), (a, b, "250.00"), (a, b, "200.00")]
    ):
        post_transfer(treasury_api.api_key, source, destination, amount, f"sum-{n}")
    post_withdrawal(treasury_api.api_key, b, "10.00", "sum-w")

    for wallet in (a, b):
        assert today_totals(wallet) == (moved_today(wallet, "debits"), moved_today(wallet, "credits"))
    assert today_totals(a)[0] == Decimal("300.00")


# --- races --------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_twenty_threads_racing_debits_never_pass_the_daily_cap(treasury_api, funded_wallet):
    payer = put_in(funded_wallet("100000.00"), tier_with(max_daily_debits="1000.00"))
    payees = [funded_wallet("0") for _ in range(4)]
    token = treasury_api.api_key
    calls = [
        lambda n=n: post_transfer(token, payer, payees[n % 4], "30.00", f"race-{n}").status_code for n in range(60)
    ]

    statuses = run_concurrently(calls, threads=20)

    completed = TransactionLog.objects.filter(source_wallet=payer, status=TransactionStatus.COMPLETED)
    moved = completed.aggregate(total=Sum("amount"))["total"]
    assert statuses.count(201) == 33 and set(statuses) == {201, 422}
    assert moved == Decimal("990.00")  # the cap, to within one movement of 30.00
    assert today_totals(payer)[0] == moved
    assert not ledger_discrepancies()


CHILD = """
import sys, uuid
from decimal import Decimal
import django
django.setup()
from django.contrib.auth import get_user_model
from transfers.services import transfer_create
client = get_user_model().objects.get(pk=int(sys.argv[1]))
for n in range(int(sys.argv[4])):
    transfer_create(
        client=client, source_wallet_id=uuid.UUID(sys.argv[2]), destination_wallet_id=uuid.UUID(sys.argv[3]),
        amount=Decimal("7.00"), idempotency_key=f"proc-{uuid.uuid4()}", metadata={},
    )
"""


@pytest.mark.django_db(transaction=True)
def test_two_service_processes_racing_debits_never_pass_the_daily_cap(wallet_owner, funded_wallet):
    payer = put_in(funded_wallet("100000.00"), tier_with(max_daily_debits="500.00"))
    payees = [funded_wallet("0") for _ in range(2)]
    env = {**os.environ, **database_env(), "DJANGO_SETTINGS_MODULE": "wallet_project.settings"}
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, str(wallet_owner.pk), str(payer.pk), str(payee.pk), "50"], cwd=ROOT, env=env
        )
        for payee in payees
    ]
    for process in processes:
        assert process.wait(timeout=120) == 0

    moved = TransactionLog.objects.filter(source_wallet=payer, status=TransactionStatus.COMPLETED).aggregate(
        total=Sum("amount")
    )["total"]
    assert moved == Decimal("497.00")  # 71 of 7.00: the next would pass 500.00
    assert today_totals(payer)[0] == moved
    refused = TransactionLog.objects.filter(source_wallet=payer, status=TransactionStatus.FAILED)
    assert set(refused.values_list("error_code", flat=True)) == {"limit_exceeded"}


@pytest.mark.django_db(transaction=True)
def test_a_tier_changed_while_a_movement_waits_for_the_wallet_is_the_one_checked(wallet_owner, funded_wallet):
    """The lock statement joins the tier as it first saw it; a wallet row
    granted after a wait is read again, and so must its tier be."""
    import threading

    from django.db import transaction

    from wallets.services import wallet_limits_set

    payer, payee = funded_wallet("1000.00"), funded_wallet("0")
    strict = tier_with(max_single_debit="10.00")
    holding, release = threading.Event(), threading.Event()

    def change_tier_slowly():
        try:
            with transaction.atomic():
                Wallet.objects.select_for_update(no_key=True).get(pk=payer.pk)
                holding.set()
                release.wait(10)
                wallet_limits_set(wallet=payer, changed_by=wallet_owner, tier=strict, reason="KYC review")
        finally:
            connection.close()

    changer = threading.Thread(target=change_tier_slowly)
    changer.start()
    holding.wait(10)
    results = []

    def transfer():
        try:
            results.append(
                transfer_create(
                    client=wallet_owner,
                    source_wallet_id=payer.pk,
                    destination_wallet_id=payee.pk,
                    amount=Decimal("50.00"),
                    idempotency_key="waits-for-tier",
                    metadata={},
                ).log
            )
        finally:
            connection.close()

    mover = threading.Thread(target=transfer)
    mover.start()
    mover.join(0.5)  # it now waits for the wallet's row
    release.set()
    changer.join(10)
    mover.join(10)

    (log,) = results
    assert (log.status, log.error_code) == (TransactionStatus.FAILED, "limit_exceeded")
    assert "maxSingleDebit" in log.error_message


def test_money_that_moved_is_counted_by_type(treasury_api, funded_wallet):
    wallet = funded_wallet("0")
    deposit_create(
        client=wallet.owner, wallet_id=wallet.pk, amount=Decimal("70.00"), idempotency_key="t-dep", metadata={}
    )
    withdrawal_create(
        client=wallet.owner, wallet_id=wallet.pk, amount=Decimal("20.00"), idempotency_key="t-wd", metadata={}
    )
    assert today_totals(wallet) == (Decimal("20.00"), Decimal("70.00"))
    assert TransactionLog.objects.filter(type=TransactionType.DEPOSIT, destination_wallet=wallet).exists()
