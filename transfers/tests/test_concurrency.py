"""The money paths under real concurrency.

Requests go through the HTTP API, the real Redis lock and PostgreSQL, each
thread on its own connection, all released together by a barrier. After
every storm the books must balance (reconciliation's ledger_discrepancies)
and every answer must tell the truth: a 201 is money that moved, anything
else is money that did not.
"""

import logging
import random
import uuid
from collections import Counter
from decimal import Decimal
from functools import partial

import pytest
from django.db.models import Sum

from reconciliation.services import ledger_discrepancies
from transfers.models import TransactionLog, TransactionStatus
from transfers.serializers import TransferRequestSerializer
from transfers.tests.concurrency import (
    api_client,
    balances,
    customer_total,
    post_deposit,
    post_transfer,
    post_withdrawal,
    run_concurrently,
    token_of,
)
from wallets.models import Wallet, WalletKind

# Threads see only what is committed: no per-test transaction to hide in.
# The contract holds straight to PostgreSQL and through PgBouncer alike.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.through_pgbouncer]

MONEY_MOVED = 201
REFUSED_FOR_FUNDS = (422, "insufficient_balance")


def outcome(response) -> int | tuple[int, str]:
    """201, or (status, code) for a refusal: the shape the assertions compare."""
    if response.status_code == MONEY_MOVED:
        return MONEY_MOVED
    return response.status_code, response.json().get("code")


def assert_no_pending_logs() -> None:
    pending = TransactionLog.objects.filter(status=TransactionStatus.PENDING)
    assert not pending.exists(), list(pending)


# --- one idempotency key, many requests at once -----------------------------------------


def assert_duplicates_answered_consistently(answers) -> dict:
    """Exactly one 201; every other answer a replay of it or a 409 to retry.
    Returns the 201's data."""
    statuses = Counter(answer.status_code for answer in answers)
    assert set(statuses) <= {200, 201, 409}, statuses
    assert statuses[201] == 1, statuses
    created = next(answer for answer in answers if answer.status_code == 201).json()["data"]
    assert created["status"] == TransactionStatus.COMPLETED
    for answer in answers:
        body = answer.json()
        if answer.status_code == 200:
            assert answer.headers["Idempotent-Replayed"] == "true"
            # The replay is the first result, not a second transfer.
            assert (body["data"]["transactionId"], body["data"]["reference"]) == (
                created["transactionId"],
                created["reference"],
            )
            assert body["data"]["message"] == "Transaction already processed"
        elif answer.status_code == 409:
            assert body["code"] == "idempotency_key_in_use"
            assert int(answer.headers["Retry-After"]) > 0
    return created


def test_fifty_concurrent_duplicates_move_money_exactly_once(transfer_api, funded_wallet):
    source, destination = funded_wallet("1000.00"), funded_wallet("0")
    token = token_of(transfer_api)

    def double_tap():
        return post_transfer(token, source, destination, "25.00", key="double-tap")

    answers = run_concurrently([double_tap] * 50, threads=50)

    created = assert_duplicates_answered_consistently(answers)
    log = TransactionLog.objects.get(client=transfer_api.user, idempotency_key="double-tap")
    assert (str(log.pk), log.status) == (created["transactionId"], TransactionStatus.COMPLETED)
    assert balances([source, destination]) == {source.pk: Decimal("975.00"), destination.pk: Decimal("25.00")}
    assert ledger_discrepancies() == []


def test_concurrent_byte_identical_retries_of_a_finished_transfer_replay_it_unread(
    transfer_api, funded_wallet, monkeypatch
):
    source, destination = funded_wallet("1000.00"), funded_wallet("0")
    token = token_of(transfer_api)
    first = post_transfer(token, source, destination, "25.00", key="retried")
    assert first.status_code == MONEY_MOVED
    validations = []
    is_valid = TransferRequestSerializer.is_valid
    monkeypatch.setattr(
        TransferRequestSerializer, "is_valid", lambda self, **kw: validations.append(1) or is_valid(self, **kw)
    )

    answers = run_concurrently(
        [partial(post_transfer, token, source, destination, "25.00", key="retried")] * 30, threads=30
    )

    assert {answer.status_code for answer in answers} == {200}
    assert {answer.json()["data"]["transactionId"] for answer in answers} == {first.json()["data"]["transactionId"]}
    assert validations == []  # each was answered from the log's digest, its body unread
    assert balances([source, destination]) == {source.pk: Decimal("975.00"), destination.pk: Decimal("25.00")}
    assert ledger_discrepancies() == []


def test_concurrent_duplicates_without_redis_still_move_money_exactly_once(
    transfer_api, funded_wallet, settings, caplog
):
    # Nothing listens on port 1: every thread's cache connection is refused, so
    # the lock is skipped and only PostgreSQL (the unique (client, key)
    # constraint and the log row lock) stands between the duplicates.
    settings.CACHES = {"default": {**settings.CACHES["default"], "LOCATION": "redis://127.0.0.1:1/0"}}
    source, destination = funded_wallet("1000.00"), funded_wallet("0")
    token = token_of(transfer_api)

    def double_tap():
        return post_transfer(token, source, destination, "25.00", key="double-tap-no-redis")

    with caplog.at_level(logging.WARNING, logger="transfers.locks"):
        answers = run_concurrently([double_tap] * 30, threads=30)

    assert any("transfer lock skipped" in record.getMessage() for record in caplog.records), "Redis was reachable"
    assert_duplicates_answered_consistently(answers)
    # Without the lock nobody is told to wait: the losers replay the winner.
    assert Counter(answer.status_code for answer in answers) == {201: 1, 200: 29}
    assert TransactionLog.objects.filter(client=transfer_api.user, type="TRANSFER").count() == 1
    assert balances([source, destination]) == {source.pk: Decimal("975.00"), destination.pk: Decimal("25.00")}
    assert ledger_discrepancies() == []


def test_concurrent_reuse_of_a_key_with_other_amounts_moves_money_once(transfer_api, funded_wallet):
    source, destination = funded_wallet("1000.00"), funded_wallet("0")
    token = token_of(transfer_api)
    amounts = ["10.00", "20.00"] * 20

    answers = run_concurrently(
        [partial(post_transfer, token, source, destination, amount, key="reused") for amount in amounts],
        threads=40,
    )

    log = TransactionLog.objects.get(client=transfer_api.user, idempotency_key="reused")
    assert log.status == TransactionStatus.COMPLETED
    winner = f"{log.amount:.2f}"
    for amount, answer in zip(amounts, answers, strict=True):
        if amount == winner:
            assert answer.status_code in (200, 201, 409), answer.json()
        else:
            # A different request under a used key is refused, or told to wait
            # while the first is still in flight; never served.
            assert outcome(answer) in ((422, "idempotency_key_reused"), (409, "idempotency_key_in_use")), answer.json()
    assert [answer.status_code for answer in answers].count(201) == 1
    assert balances([source, destination]) == {source.pk: 1000 - log.amount, destination.pk: log.amount}
    assert ledger_discrepancies() == []


# --- many keys, few wallets ------------------------------------------------------------


def test_crossing_transfers_among_few_wallets_neither_deadlock_nor_lose_money(transfer_api, funded_wallet):
    wallets = [funded_wallet("300.00") for _ in range(5)]
    total_before = customer_total()
    token = token_of(transfer_api)
    rng = random.Random(1729)  # a fixed plan; only the interleaving varies from run to run
    plan = []
    while len(plan) < 300:
        a, b = rng.sample(wallets, 2)
        # A->B next to B->A: neighbouring threads send them at the same moment,
        # the classic deadlock if the two wallets were locked in request order.
        # Amounts up to 120.00 of 300.00 so that some run out of money.
        plan += [(a, b, Decimal(rng.randint(1, 12000)) / 100), (b, a, Decimal(rng.randint(1, 12000)) / 100)]

    answers = run_concurrently(
        [partial(post_transfer, token, *move, key=f"cross-{i}") for i, move in enumerate(plan)],
        threads=12,
    )

    outcomes = Counter(outcome(answer) for answer in answers)
    assert set(outcomes) <= {MONEY_MOVED, REFUSED_FOR_FUNDS}, outcomes
    assert outcomes[MONEY_MOVED] > 0
    # The answers alone must predict every balance: a 201 moved exactly its
    # amount, a 422 moved nothing.
    expected = {wallet.pk: Decimal("300.00") for wallet in wallets}
    for (source, destination, amount), answer in zip(plan, answers, strict=True):
        if answer.status_code == MONEY_MOVED:
            expected[source.pk] -= amount
            expected[destination.pk] += amount
    assert balances(wallets) == expected
    assert min(expected.values()) >= 0
    assert customer_total() == total_before
    logs = Counter(
        TransactionLog.objects.filter(client=transfer_api.user, type="TRANSFER").values_list("status", flat=True)
    )
    assert logs == {
        TransactionStatus.COMPLETED: outcomes[MONEY_MOVED],
        TransactionStatus.FAILED: outcomes[REFUSED_FOR_FUNDS],
    }
    assert_no_pending_logs()
    assert ledger_discrepancies() == []


def test_hot_wallet_drained_concurrently_stops_at_its_last_whole_transfer(transfer_api, funded_wallet):
    source = funded_wallet("100.00")
    destinations = [funded_wallet("0") for _ in range(4)]
    token = token_of(transfer_api)

    answers = run_concurrently(
        [partial(post_transfer, token, source, destinations[i % 4], "7.00", key=f"drain-{i}") for i in range(60)],
        threads=15,
    )

    # floor(100 / 7) = 14 transfers fit; the balance check runs under the
    # wallet's row lock, so no two of them can both see the same last 7.00.
    assert Counter(outcome(answer) for answer in answers) == {MONEY_MOVED: 14, REFUSED_FOR_FUNDS: 46}
    source.refresh_from_db()
    assert source.balance == Decimal("2.00")
    logs = TransactionLog.objects.filter(client=transfer_api.user, type="TRANSFER")
    completed = logs.filter(status=TransactionStatus.COMPLETED)
    assert completed.count() == 14
    assert completed.aggregate(total=Sum("amount"))["total"] == Decimal("100.00") - source.balance
    assert sum(balances(destinations).values()) == Decimal("98.00")
    failed = logs.filter(status=TransactionStatus.FAILED)
    assert failed.count() == 46
    assert set(failed.values_list("error_code", flat=True)) == {"insufficient_balance"}
    assert_no_pending_logs()
    assert ledger_discrepancies() == []


def test_deposits_withdrawals_and_transfers_on_one_wallet_keep_the_books_balanced_throughout(
    treasury_api, funded_wallet
):
    hub = funded_wallet("100.00")
    peers = [funded_wallet("100.00") for _ in range(2)]
    token = token_of(treasury_api)
    # What each kind of request does to the hub's balance when it answers 201.
    hub_sign = {"deposit": 1, "withdraw": -1, "give": -1, "take": 1}

    def send(kind: str, peer: Wallet, amount: Decimal, key: str):
        if kind == "deposit":
            return post_deposit(token, hub, amount, key)
        if kind == "withdraw":
            return post_withdrawal(token, hub, amount, key)
        if kind == "give":
            return post_transfer(token, hub, peer, amount, key)
        return post_transfer(token, peer, hub, amount, key)

    rng = random.Random(4242)
    plan = [
        (kind, peers[i % 2], Decimal(rng.randint(1, 5000)) / 100, f"{kind}-{i}")
        for i, kind in enumerate([*hub_sign, "verify"] * 20)
    ]
    rng.shuffle(plan)
    # "verify" is on-call running verify_ledger beside live traffic: its one
    # snapshot must never catch a movement half-way and cry wolf.
    calls = [ledger_discrepancies if request[0] == "verify" else partial(send, *request) for request in plan]

    results = run_concurrently(calls, threads=12)

    moved, outcomes, verified = Decimal(0), Counter(), []
    for (kind, _, amount, _), result in zip(plan, results, strict=True):
        if kind == "verify":
            verified.append(result)
            continue
        outcomes[outcome(result)] += 1
        if result.status_code == MONEY_MOVED:
            moved += hub_sign[kind] * amount
    assert verified == [[]] * 20
    assert set(outcomes) <= {MONEY_MOVED, REFUSED_FOR_FUNDS}, outcomes
    hub.refresh_from_db()
    assert hub.balance == Decimal("100.00") + moved
    # Every unit of money in a customer wallet came in through the settlement
    # wallet: it is exactly as negative as the customers are rich.
    settlement = Wallet.objects.get(kind=WalletKind.SETTLEMENT, currency=hub.currency)
    assert settlement.balance == -customer_total()
    assert_no_pending_logs()
    assert ledger_discrepancies() == []


# --- opening wallets at once ----------------------------------------------------------------


def post_wallet(token: str, user_id: uuid.UUID, currency: str):
    return api_client(token).post("/api/wallets", {"userId": str(user_id), "currency": currency}, format="json")


def test_concurrent_requests_for_one_users_wallet_open_exactly_one(transfer_api):
    user_id = uuid.uuid4()
    token = token_of(transfer_api)

    answers = run_concurrently([lambda: post_wallet(token, user_id, "USD")] * 20, threads=20)

    assert Counter(outcome(answer) for answer in answers) == {201: 1, (409, "wallet_exists"): 19}
    created = next(answer for answer in answers if answer.status_code == 201).json()["data"]
    assert [str(pk) for pk in Wallet.objects.filter(user_id=user_id).values_list("pk", flat=True)] == [created["id"]]


def test_first_wallets_of_a_new_currency_opened_at_once_share_one_settlement_wallet(transfer_api):
    # Each opening makes sure the currency's settlement wallet exists; racing
    # to create it, all but one must find the winner's instead of failing.
    token = token_of(transfer_api)

    answers = run_concurrently([lambda: post_wallet(token, uuid.uuid4(), "GHS")] * 20, threads=20)

    assert Counter(answer.status_code for answer in answers) == {201: 20}
    assert Wallet.objects.filter(kind=WalletKind.SETTLEMENT, currency="GHS").count() == 1
    assert Wallet.objects.filter(kind=WalletKind.CUSTOMER, currency="GHS").count() == 20
