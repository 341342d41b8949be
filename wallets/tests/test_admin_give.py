"""Giving a wallet that `unclaimed-wallets` holds (migration
transfers/0008_wallet_owners) to its API client, from the wallet list
(WalletAdmin.give_wallets, wallets.services.wallet_give_to_client), on the
real PostgreSQL: the page that asks for the client, the change and its
history, what is refused, and two operators giving one wallet at once."""

import threading
from decimal import Decimal

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model
from django.db import connection

from conftest import make_api_client
from wallets.models import Wallet
from wallets.services import UNCLAIMED_OWNER, WalletGiveRefused, wallet_give_to_client
from wallets.tests.factories import OwnerFactory
from wallets.tests.test_admin import CHANGELIST, act, staff_client

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("migrated_groups")]


def unclaimed_holder():
    """The client migration 0008 creates: inactive, keyless."""
    return get_user_model().objects.get_or_create(username=UNCLAIMED_OWNER, defaults={"is_active": False})[0]


def unclaimed_wallet(funded_wallet, amount: str = "0", **fields) -> Wallet:
    """A wallet unclaimed-wallets holds, with `amount` in it (credited, as a
    client allowed to pay other clients' wallets would, before the
    migration left it unclaimed)."""
    wallet = funded_wallet(amount, **fields)
    Wallet.objects.filter(pk=wallet.pk).update(owner=unclaimed_holder())
    wallet.refresh_from_db()
    return wallet


def give(staff, client, *wallets):
    return staff.post(
        CHANGELIST,
        {"action": "give_wallets", "_selected_action": [w.pk for w in wallets], "client": client.pk, "apply": "1"},
        follow=True,
    )


@pytest.fixture
def finance(db):
    return staff_client("Finance")


def test_finance_gives_an_unclaimed_wallet_to_its_client_who_then_owns_it(finance, funded_wallet):
    wallet = unclaimed_wallet(funded_wallet, "125.50")
    api = make_api_client("Treasury client")

    asked = act(finance, "give_wallets", wallet)
    answer = give(finance, api.user, wallet)

    # First a page naming the wallet and asking for the client.
    assert asked.templates[0].name == "admin/wallets/wallet/give.html"
    assert str(wallet.user_id) in asked.content.decode() and 'name="client"' in asked.content.decode()
    assert f"Gave 1 wallet to {api.user.username}." in answer.content.decode()
    given = Wallet.objects.get(pk=wallet.pk)
    assert (given.owner, given.balance, given.user_id, given.is_active) == (
        api.user,
        Decimal("125.50"),
        wallet.user_id,
        True,
    )
    entry = LogEntry.objects.get(object_id=str(wallet.pk))
    assert (entry.user, entry.get_change_message()) == (finance.user, f"Gave the wallet to {api.user.username}.")
    # The client reads it now, through the API, as its own.
    read = api.get(f"/api/wallets/{wallet.pk}")
    assert read.status_code == 200 and read.json()["data"]["balance"] == "125.50"


def test_a_wallet_with_a_real_owner_is_never_given_away(finance, funded_wallet):
    owned = funded_wallet("10.00")
    other = make_api_client("Treasury client")

    answer = give(finance, other.user, owned)

    assert f"Wallet {owned.pk} is not unclaimed: it has an owner." in answer.content.decode()
    assert Wallet.objects.get(pk=owned.pk).owner == owned.owner
    assert not LogEntry.objects.filter(object_id=str(owned.pk)).exists()


def test_a_client_that_has_a_wallet_for_the_user_and_currency_already_is_refused(finance, funded_wallet):
    api = make_api_client("Treasury client")
    mine = funded_wallet("0", owner=api.user)
    lost = unclaimed_wallet(funded_wallet, user_id=mine.user_id, currency=mine.currency)

    answer = give(finance, api.user, lost)

    assert [m.message for m in answer.context["messages"]] == [
        f"{api.user.username} already has a NGN wallet for user {mine.user_id}."
    ]
    assert Wallet.objects.get(pk=lost.pk).owner.username == UNCLAIMED_OWNER


@pytest.mark.parametrize(
    "not_a_client",
    [
        pytest.param({"is_staff": True}, id="staff"),
        pytest.param({"is_active": False}, id="inactive"),
    ],
)
def test_only_an_active_api_client_can_be_given_a_wallet(not_a_client, finance, funded_wallet):
    wallet = unclaimed_wallet(funded_wallet)
    person = OwnerFactory(**not_a_client)

    answer = give(finance, person, wallet)

    # Not offered on the page, and refused by the service all the same.
    assert answer.templates[0].name == "admin/wallets/wallet/give.html"
    assert "Select a valid choice" in answer.content.decode()
    with pytest.raises(WalletGiveRefused, match="is not an active API client"):
        wallet_give_to_client(wallet=wallet, client=person)
    assert Wallet.objects.get(pk=wallet.pk).owner.username == UNCLAIMED_OWNER


def test_support_cannot_give_wallets(funded_wallet):
    support = staff_client("Support")
    wallet = unclaimed_wallet(funded_wallet)
    api = make_api_client("Treasury client")

    listing = support.get(CHANGELIST).content.decode()
    answer = give(support, api.user, wallet)

    assert "give_wallets" not in listing
    assert "No action selected." in answer.content.decode()
    assert Wallet.objects.get(pk=wallet.pk).owner.username == UNCLAIMED_OWNER


@pytest.mark.django_db(transaction=True)
def test_two_operators_giving_one_wallet_at_once_give_it_once(funded_wallet):
    wallet = unclaimed_wallet(funded_wallet, "50.00")
    first, second = make_api_client("Treasury client").user, make_api_client("Treasury client").user
    start = threading.Barrier(2)
    outcomes: dict[str, str] = {}

    def operator(client):
        start.wait()
        try:
            wallet_give_to_client(wallet=Wallet.objects.get(pk=wallet.pk), client=client)
            outcomes[client.username] = "given"
        except WalletGiveRefused:
            outcomes[client.username] = "refused"
        finally:
            connection.close()  # each thread's own connection

    threads = [threading.Thread(target=operator, args=(client,)) for client in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(outcomes.values()) == ["given", "refused"]
    winner = next(username for username, outcome in outcomes.items() if outcome == "given")
    assert Wallet.objects.get(pk=wallet.pk).owner.username == winner
