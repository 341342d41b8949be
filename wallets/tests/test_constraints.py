"""The wallets table defends itself: each rule of Wallet.Meta.constraints is
enforced by PostgreSQL, so a code path that skips the services (an update(),
a create(), raw SQL, a hand-run migration) is refused all the same."""

import uuid
from contextlib import contextmanager
from decimal import Decimal

import pytest
from django.db import IntegrityError, connection, transaction

from wallets.models import Wallet, WalletKind
from wallets.services import settlement_wallet_get_or_create
from wallets.tests.factories import OwnerFactory, WalletFactory

pytestmark = pytest.mark.django_db


@contextmanager
def violates(constraint: str):
    """The statements inside must be refused by exactly `constraint`. The
    savepoint is rolled back, so the test's transaction stays usable.
    (transfers' constraint tests use it too: they may depend on wallets.)"""
    with pytest.raises(IntegrityError) as refused, transaction.atomic():
        yield
    assert refused.value.__cause__.diag.constraint_name == constraint, refused.value


# --- balance ------------------------------------------------------------------------------


def test_customer_balance_cannot_be_written_below_zero():
    wallet = WalletFactory()
    with violates("wallets_wallet_customer_balance_non_negative"):
        Wallet.objects.filter(pk=wallet.pk).update(balance=Decimal("-0.01"))
    wallet.refresh_from_db()
    assert wallet.balance == 0


def test_customer_balance_may_be_exactly_zero():
    # The bound is inclusive: draining a wallet to 0.00 is legal.
    wallet = WalletFactory()
    Wallet.objects.filter(pk=wallet.pk).update(balance=Decimal("0.00"))
    wallet.refresh_from_db()
    assert wallet.balance == 0


def test_settlement_wallet_may_go_below_zero():
    # Deposits are paid out of the settlement wallet: it holds minus the
    # money in customer wallets, so the CHECK must leave it alone.
    settlement = settlement_wallet_get_or_create(currency="NGN")
    Wallet.objects.filter(pk=settlement.pk).update(balance=Decimal("-999999999999999999.99"))
    settlement.refresh_from_db()
    assert settlement.balance == Decimal("-999999999999999999.99")


def test_turning_an_overdrawn_settlement_wallet_into_a_customer_wallet_is_refused():
    # The CHECK is on the row, not on the column that changed.
    settlement = settlement_wallet_get_or_create(currency="NGN")
    Wallet.objects.filter(pk=settlement.pk).update(balance=Decimal("-1.00"))
    with violates("wallets_wallet_customer_balance_non_negative"):
        Wallet.objects.filter(pk=settlement.pk).update(
            kind=WalletKind.CUSTOMER, user_id=uuid.uuid4(), owner=OwnerFactory()
        )


# --- one wallet per (owner, user, currency), one settlement wallet per currency ------------


def test_second_wallet_for_a_user_in_the_same_currency_is_refused():
    wallet = WalletFactory(currency="NGN")
    with violates("wallets_wallet_one_per_owner_user_and_currency"):
        Wallet.objects.create(owner=wallet.owner, user_id=wallet.user_id, currency="NGN", kind=WalletKind.CUSTOMER)


def test_moving_a_wallet_into_a_currency_its_user_already_holds_is_refused():
    ngn = WalletFactory(currency="NGN")
    usd = WalletFactory(owner=ngn.owner, user_id=ngn.user_id, currency="USD")
    with violates("wallets_wallet_one_per_owner_user_and_currency"):
        Wallet.objects.filter(pk=usd.pk).update(currency="NGN")


def test_two_clients_may_each_hold_a_wallet_for_the_same_user_and_currency():
    # Tenancy: a userId is the client's own; another client's 42 is someone else.
    wallet = WalletFactory(currency="NGN")
    WalletFactory(user_id=wallet.user_id, currency="NGN")
    assert Wallet.objects.filter(user_id=wallet.user_id, currency="NGN").count() == 2


def test_a_user_may_hold_one_wallet_in_each_currency():
    user_id = uuid.uuid4()
    for currency in ("NGN", "USD", "EUR"):
        WalletFactory(user_id=user_id, currency=currency)
    assert Wallet.objects.filter(user_id=user_id).count() == 3


def test_second_settlement_wallet_for_a_currency_is_refused():
    settlement_wallet_get_or_create(currency="NGN")
    with violates("wallets_wallet_one_settlement_per_currency"):
        Wallet.objects.create(kind=WalletKind.SETTLEMENT, currency="NGN", user_id=None)


def test_second_settlement_wallet_by_raw_insert_is_refused():
    # Not even SQL that never saw the model gets a second one.
    settlement_wallet_get_or_create(currency="NGN")
    with violates("wallets_wallet_one_settlement_per_currency"), connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO wallets (id, user_id, kind, currency, balance, is_active, created_at, updated_at)"
            " VALUES (%s, NULL, 'SETTLEMENT', 'NGN', 0, true, now(), now())",
            [uuid.uuid4()],
        )


def test_each_currency_has_its_own_settlement_wallet():
    ngn, usd = settlement_wallet_get_or_create(currency="NGN"), settlement_wallet_get_or_create(currency="USD")
    assert ngn.pk != usd.pk
    assert Wallet.objects.filter(kind=WalletKind.SETTLEMENT).count() == 2


# --- owner matches kind ----------------------------------------------------------------


def test_customer_wallet_without_a_user_is_refused():
    with violates("wallets_wallet_owner_matches_kind"):
        Wallet.objects.create(kind=WalletKind.CUSTOMER, currency="NGN", user_id=None, owner=OwnerFactory())


def test_settlement_wallet_with_a_user_is_refused():
    with violates("wallets_wallet_owner_matches_kind"):
        Wallet.objects.create(kind=WalletKind.SETTLEMENT, currency="NGN", user_id=uuid.uuid4())


def test_turning_a_customer_wallet_into_a_settlement_wallet_is_refused():
    # It would take its user along; the constraint also stops a customer
    # wallet from escaping the non-negative balance rule this way.
    wallet = WalletFactory()
    with violates("wallets_wallet_owner_matches_kind"):
        Wallet.objects.filter(pk=wallet.pk).update(kind=WalletKind.SETTLEMENT, owner=None)


def test_unknown_wallet_kind_is_refused():
    # Neither kind's rules hold for it: either CHECK may be the one to refuse.
    with pytest.raises(IntegrityError) as refused, transaction.atomic():
        Wallet.objects.create(kind="ESCROW", currency="NGN", user_id=uuid.uuid4(), owner=OwnerFactory())
    assert refused.value.__cause__.diag.constraint_name in (
        "wallets_wallet_owner_matches_kind",
        "wallets_wallet_client_matches_kind",
    )


# --- the owning API client matches kind (tenancy) ----------------------------------------


def test_customer_wallet_without_an_owning_client_is_refused():
    with violates("wallets_wallet_client_matches_kind"):
        Wallet.objects.create(kind=WalletKind.CUSTOMER, currency="NGN", user_id=uuid.uuid4(), owner=None)


def test_a_wallet_cannot_be_orphaned_by_an_update():
    wallet = WalletFactory()
    with violates("wallets_wallet_client_matches_kind"):
        Wallet.objects.filter(pk=wallet.pk).update(owner=None)


def test_settlement_wallet_with_an_owning_client_is_refused():
    with violates("wallets_wallet_client_matches_kind"):
        Wallet.objects.create(kind=WalletKind.SETTLEMENT, currency="NGN", user_id=None, owner=OwnerFactory())


# --- currency format -----------------------------------------------------------------------


@pytest.mark.parametrize("currency", ["ngn", "Ngn", "NG", "N1G", "N-G", "", "₦GN"])
def test_currency_that_is_not_three_capital_letters_is_refused(currency):
    with violates("wallets_wallet_currency_iso_4217"):
        WalletFactory(currency=currency)


def test_currency_cannot_be_rewritten_to_a_malformed_code():
    wallet = WalletFactory()
    with violates("wallets_wallet_currency_iso_4217"):
        Wallet.objects.filter(pk=wallet.pk).update(currency="usd")
