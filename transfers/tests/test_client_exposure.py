"""One client cannot stop a currency for everybody (docs/design.md, "Client
exposure").

Every deposit takes the currency's settlement wallet down by its amount. The
attack this guards against: deposits of 999999999999999999.99, halving on
each 422, pushed the KES settlement wallet to -999999999999999999.99, and
from then on every other client's KES deposit failed with
balance_limit_exceeded. Each client's exposure (deposits minus withdrawals,
per currency) is bounded by CLIENT_EXPOSURE_LIMIT instead.
"""

import importlib
import uuid
from decimal import Decimal

import pytest
from django.db import connection
from django.db.models import Sum

from conftest import make_api_client
from corrections.tests.people import reversed_with_four_eyes
from reconciliation.services import ledger_discrepancies
from transfers.models import ClientExposure, TransactionLog, TransactionStatus
from transfers.services import deposit_create, withdrawal_create
from transfers.tests.concurrency import post_deposit, run_concurrently
from wallets.models import CENT, MAX_AMOUNT, Wallet, WalletKind
from wallets.tests.factories import WalletFactory

# Threads see only what is committed: no per-test transaction to hide in.
pytestmark = pytest.mark.django_db(transaction=True)

count_from_ledger = importlib.import_module("transfers.migrations.0012_client_exposures").Migration.COUNT_FROM_LEDGER


def drive_deposits_to_the_limit(token: str, wallet: Wallet) -> list[tuple[int, str | None]]:
    """The attack: deposit the largest amount there is, halve it on each 422,
    keep depositing an amount while it is accepted, until under a cent.
    Returns each answer as (status, code)."""
    answers, amount = [], MAX_AMOUNT
    while amount >= CENT:
        response = post_deposit(token, wallet, amount, f"drive-{uuid.uuid4()}")
        answers.append((response.status_code, response.json().get("code")))
        if response.status_code != 201:
            amount = (amount / 2).quantize(CENT)
    return answers


def settlement_balance(currency: str) -> Decimal:
    return Wallet.objects.get(kind=WalletKind.SETTLEMENT, currency=currency).balance


def held_by(client, currency: str) -> Decimal:
    held = Wallet.objects.filter(owner=client, currency=currency).aggregate(total=Sum("balance"))["total"]
    return held or Decimal(0)


def test_a_client_driving_deposits_at_its_limit_leaves_every_other_clients_deposits_working(settings):
    limit = settings.CLIENT_EXPOSURE_LIMIT  # the documented default
    attacker = make_api_client("Treasury client")
    others = [make_api_client("Treasury client") for _ in range(2)]
    attacker_wallets = [WalletFactory(owner=attacker.user, currency="KES") for _ in range(3)]
    other_wallets = [WalletFactory(owner=other.user, currency="KES") for other in others]

    # Three threads drive the attacker's three wallets at once while the other
    # clients make ordinary deposits on two more.
    def ordinary_deposits(token, wallet):
        return [post_deposit(token, wallet, "250000.00", f"ordinary-{i}").status_code for i in range(15)]

    calls = [lambda w=w: drive_deposits_to_the_limit(attacker.api_key, w) for w in attacker_wallets]
    calls += [lambda o=o, w=w: ordinary_deposits(o.api_key, w) for o, w in zip(others, other_wallets, strict=True)]
    *attacks, first_others, second_others = run_concurrently(calls, threads=len(calls))

    assert first_others == second_others == [201] * 15
    refusals = {answer for attack in attacks for answer in attack if answer[0] != 201}
    assert refusals == {(422, "limit_exceeded")}
    # The attacker stops only when refused a cent: it holds its limit, no more.
    assert held_by(attacker.user, "KES") == limit
    assert ClientExposure.objects.get(client=attacker.user, currency="KES").amount == held_by(attacker.user, "KES")
    # Afterwards every other client can still deposit up to its own limit,
    # in one request as in many.
    big = post_deposit(others[0].api_key, other_wallets[0], limit - held_by(others[0].user, "KES"), "to-the-limit")
    assert big.status_code == 201, big.json()
    newcomer = make_api_client("Treasury client")
    assert (
        post_deposit(newcomer.api_key, WalletFactory(owner=newcomer.user, currency="KES"), "1.00", "k").status_code
        == 201
    )
    assert settlement_balance("KES") >= -3 * limit
    assert not TransactionLog.objects.filter(status=TransactionStatus.PENDING).exists()
    assert ledger_discrepancies() == []


def test_a_deposit_past_the_limit_is_a_failed_transaction_naming_the_limit(settings, treasury_api):
    settings.CLIENT_EXPOSURE_LIMIT = Decimal("100.00")
    wallet = WalletFactory(owner=treasury_api.user)
    assert post_deposit(treasury_api.api_key, wallet, "60.00", "first").status_code == 201

    refused = post_deposit(treasury_api.api_key, wallet, "40.01", "second")
    replayed = post_deposit(treasury_api.api_key, wallet, "40.01", "second")

    assert refused.status_code == 422
    body = refused.json()
    assert body["code"] == "limit_exceeded"
    assert "100.00" in body["message"] and "100.01" in body["message"]
    assert TransactionLog.objects.get(idempotency_key="second").status == TransactionStatus.FAILED
    assert (replayed.status_code, replayed.json()["code"]) == (422, "limit_exceeded")
    wallet.refresh_from_db()
    assert wallet.balance == Decimal("60.00")
    # Exactly up to the limit is fine.
    assert post_deposit(treasury_api.api_key, wallet, "40.00", "third").status_code == 201


def test_withdrawing_lowers_the_exposure_so_the_client_may_deposit_again(settings, wallet_owner):
    settings.CLIENT_EXPOSURE_LIMIT = Decimal("100.00")
    first, second = WalletFactory(owner=wallet_owner), WalletFactory(owner=wallet_owner)

    def deposit(wallet, amount):
        return deposit_create(
            client=wallet_owner,
            wallet_id=wallet.pk,
            amount=Decimal(amount),
            idempotency_key=str(uuid.uuid4()),
            metadata={},
        ).log

    assert deposit(first, "100.00").status == TransactionStatus.COMPLETED
    # The limit is the client's, across its wallets.
    assert deposit(second, "0.01").error_code == "limit_exceeded"
    withdrawal_create(
        client=wallet_owner, wallet_id=first.pk, amount=Decimal("30.00"), idempotency_key="w", metadata={}
    )

    assert deposit(second, "30.00").status == TransactionStatus.COMPLETED
    assert deposit(second, "0.01").error_code == "limit_exceeded"
    assert ClientExposure.objects.get(client=wallet_owner, currency="NGN").amount == Decimal("100.00")


def test_reversing_a_deposit_lowers_the_exposure(settings, wallet_owner, admin_user):
    settings.CLIENT_EXPOSURE_LIMIT = Decimal("100.00")
    wallet = WalletFactory(owner=wallet_owner)
    log = deposit_create(
        client=wallet_owner, wallet_id=wallet.pk, amount=Decimal("100.00"), idempotency_key="d", metadata={}
    ).log

    reversed_with_four_eyes(log.pk, "sent by mistake")

    assert ClientExposure.objects.get(client=wallet_owner, currency="NGN").amount == 0
    again = deposit_create(
        client=wallet_owner, wallet_id=wallet.pk, amount=Decimal("100.00"), idempotency_key="d2", metadata={}
    ).log
    assert again.status == TransactionStatus.COMPLETED


def test_the_exposures_kept_are_the_ones_the_migration_counts_from_the_ledger(settings, wallet_owner, admin_user):
    other = make_api_client("Treasury client").user
    ngn, usd, others = (
        WalletFactory(owner=wallet_owner),
        WalletFactory(owner=wallet_owner, currency="USD"),
        WalletFactory(owner=other),
    )
    for wallet, amount in ((ngn, "70.00"), (usd, "5.00"), (others, "12.00"), (ngn, "3.00")):
        deposit_create(
            client=wallet.owner,
            wallet_id=wallet.pk,
            amount=Decimal(amount),
            idempotency_key=str(uuid.uuid4()),
            metadata={},
        )
    withdrawn = withdrawal_create(
        client=wallet_owner, wallet_id=ngn.pk, amount=Decimal("20.00"), idempotency_key="w", metadata={}
    ).log
    reversed_with_four_eyes(withdrawn.pk, "bank returned it")
    withdrawal_create(client=other, wallet_id=others.pk, amount=Decimal("12.00"), idempotency_key="w", metadata={})
    kept = set(ClientExposure.objects.values_list("client_id", "currency", "amount"))

    ClientExposure.objects.all().delete()
    with connection.cursor() as cursor:
        cursor.execute(count_from_ledger)

    assert set(ClientExposure.objects.values_list("client_id", "currency", "amount")) == kept
    assert kept == {
        (wallet_owner.pk, "NGN", Decimal("73.00")),
        (wallet_owner.pk, "USD", Decimal("5.00")),
        (other.pk, "NGN", Decimal("0.00")),
    }
