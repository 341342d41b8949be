"""The wallet admin, through the admin's own views (django.test.Client on the
real PostgreSQL): the list, exact search, filters, read-only balances, and the
freeze and unfreeze actions with their history."""

import uuid
from decimal import Decimal

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from events.models import Event
from wallet_project.admin_lists import EstimatedCountPaginator
from wallets.models import Wallet, WalletKind
from wallets.services import settlement_wallet_get_or_create
from wallets.tests.factories import WalletFactory

# The Support and Finance groups of migration 0003, put back if a transactional test flushed them.
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("migrated_groups")]

CHANGELIST = reverse("admin:wallets_wallet_changelist")


def staff_client(*groups: str, permissions: tuple[str, ...] = (), **user_fields) -> Client:
    """A logged-in admin user: staff, in the given groups (created by migration)
    and with the given extra permissions ("codename"). The admin tests of
    transfers and reconciliation use it too."""
    fields = {"username": f"staff-{uuid.uuid4().hex[:8]}", "is_staff": True, **user_fields}
    user = get_user_model().objects.create_user(**fields)
    user.groups.add(*Group.objects.filter(name__in=groups))
    user.user_permissions.add(*Permission.objects.filter(codename__in=permissions))
    client = Client()
    client.force_login(user)
    client.user = user
    return client


@pytest.fixture
def support(db) -> Client:
    return staff_client("Support")


def change_url(wallet) -> str:
    return reverse("admin:wallets_wallet_change", args=[wallet.pk])


def listed(response) -> set[uuid.UUID]:
    return {wallet.pk for wallet in response.context["cl"].result_list}


def act(client: Client, action: str, *wallets, follow=True, **fields):
    return client.post(
        CHANGELIST,
        {"action": action, "_selected_action": [w.pk for w in wallets], "index": 0, **fields},
        follow=follow,
    )


# What a freeze or unfreeze page's "apply" sends (wallets/admin.py, FreezeNoteForm).
REASON = "customer reported the phone stolen, ticket 4711"


def confirmed(reason: str = REASON) -> dict:
    return {"apply": "Freeze", "reason": reason}


def set_active(client: Client, action: str, *wallets, reason: str = REASON):
    """A freeze or unfreeze list action, as its confirmation page posts it back."""
    return client.post(
        CHANGELIST,
        {"action": action, "_selected_action": [w.pk for w in wallets], **confirmed(reason)},
        follow=True,
    )


# --- list, search, filters -------------------------------------------------------------


def test_wallet_list_shows_owner_currency_balance_active_flag_kind_and_last_update(support, funded_wallet):
    wallet = funded_wallet("1250.75", currency="USD")

    response = support.get(CHANGELIST)

    assert response.status_code == 200
    page = response.content.decode()
    # The user id is short in the list, whole on hover (its title).
    assert all(text in page for text in (f'title="{wallet.user_id}"', "USD", "1250.75", "Customer"))
    for column in ("user", "currency", "balance", "is_active", "kind_shown", "updated_at"):
        assert f"column-{column}" in page


def test_search_by_wallet_id_finds_exactly_that_wallet(support):
    wallet, _other = WalletFactory(), WalletFactory()

    assert listed(support.get(CHANGELIST, {"q": str(wallet.pk)})) == {wallet.pk}
    assert listed(support.get(CHANGELIST, {"q": f"  {str(wallet.pk).upper()} "})) == {wallet.pk}


def test_search_by_user_id_finds_all_of_that_users_wallets(support):
    user_id = uuid.uuid4()
    ngn, usd = WalletFactory(user_id=user_id), WalletFactory(user_id=user_id, currency="USD")
    WalletFactory()

    assert listed(support.get(CHANGELIST, {"q": str(user_id)})) == {ngn.pk, usd.pk}


def test_search_with_part_of_an_id_finds_nothing_rather_than_scanning(support):
    wallet = WalletFactory()

    assert listed(support.get(CHANGELIST, {"q": str(wallet.pk)[:8]})) == set()
    assert listed(support.get(CHANGELIST, {"q": "NGN"})) == set()


def test_search_is_an_exact_indexed_match_not_a_text_scan(support):
    wallet = WalletFactory()

    with CaptureQueriesContext(connection) as captured:
        support.get(CHANGELIST, {"q": str(wallet.pk)})

    wallet_queries = [q["sql"] for q in captured.captured_queries if '"wallets"' in q["sql"]]
    assert wallet_queries
    for sql in wallet_queries:
        assert f'"wallets"."id" = \'{wallet.pk.hex}\'' in sql or f'"wallets"."id" = \'{wallet.pk}\'' in sql
        assert "LIKE" not in sql.upper() and "::text" not in sql


def test_filters_by_currency_active_flag_and_kind(support):
    ngn, usd = WalletFactory(), WalletFactory(currency="USD")
    frozen = WalletFactory(is_active=False)
    settlement = settlement_wallet_get_or_create(currency="NGN")

    assert listed(support.get(CHANGELIST, {"currency": "USD"})) == {usd.pk}
    assert listed(support.get(CHANGELIST, {"is_active__exact": "0"})) == {frozen.pk}
    assert listed(support.get(CHANGELIST, {"kind__exact": "SETTLEMENT", "currency": "NGN"})) == {settlement.pk}
    assert ngn.pk in listed(support.get(CHANGELIST, {"kind__exact": "CUSTOMER", "is_active__exact": "1"}))


@pytest.mark.parametrize(
    "params",
    [
        {"owner__id__exact": "abc"},
        {"owner__id__exact": "1.5"},
        {"tier": "abc"},
    ],
    ids=["owner-not-an-id", "owner-a-fraction", "tier-not-an-id"],
)
def test_a_filter_value_the_list_does_not_offer_is_the_admins_own_answer_not_a_500(support, params):
    """As for a field filter's bad value: the list again, without filters,
    flagged ?e=1 (Django's IncorrectLookupParameters), rather than a value
    read as an id (ValueError)."""
    WalletFactory()
    response = support.get(CHANGELIST, params)
    assert (response.status_code, response["Location"]) == (302, f"{CHANGELIST}?e=1")


# --- read-only ---------------------------------------------------------------------------


def test_no_one_can_add_edit_or_delete_a_wallet_not_even_a_superuser(funded_wallet):
    admin_client = staff_client(is_superuser=True)
    wallet = funded_wallet("100.00")

    assert admin_client.get(reverse("admin:wallets_wallet_add")).status_code == 403
    edit = admin_client.post(change_url(wallet), {"balance": "1000000.00", "currency": "USD", "is_active": ""})
    assert edit.status_code == 403
    assert (
        admin_client.post(reverse("admin:wallets_wallet_delete", args=[wallet.pk]), {"post": "yes"}).status_code == 403
    )

    wallet.refresh_from_db()
    assert (wallet.balance, wallet.currency, wallet.is_active) == (Decimal("100.00"), "NGN", True)
    page = admin_client.get(change_url(wallet)).content.decode()
    assert 'name="balance"' not in page
    assert 'name="_save"' not in page


# --- freeze and unfreeze ------------------------------------------------------------------


def test_freezing_wallets_deactivates_them_and_records_who_did_it_in_their_history(support):
    first, second = WalletFactory(), WalletFactory()

    response = set_active(support, "freeze_wallets", first, second)

    assert "Froze 2 wallets." in response.content.decode()
    assert not Wallet.objects.filter(pk__in=[first.pk, second.pk], is_active=True).exists()
    for wallet in (first, second):
        entry = LogEntry.objects.get(object_id=str(wallet.pk))
        assert (entry.user, entry.action_flag, entry.get_change_message()) == (
            support.user,
            CHANGE,
            f"Froze the wallet: {REASON}",
        )
    history = support.get(reverse("admin:wallets_wallet_history", args=[first.pk])).content.decode()
    assert f"Froze the wallet: {REASON}" in history
    assert support.user.username in history
    page = support.get(change_url(first)).content.decode()
    assert f"Support decision: {REASON}" in page


def test_unfreezing_reactivates_and_is_recorded(support):
    wallet = WalletFactory(is_active=False)

    response = set_active(support, "unfreeze_wallets", wallet, reason="identity confirmed by phone")

    assert "Unfroze 1 wallet." in response.content.decode()
    assert Wallet.objects.get(pk=wallet.pk).is_active
    entry = LogEntry.objects.get(object_id=str(wallet.pk))
    assert entry.get_change_message() == "Unfroze the wallet: identity confirmed by phone"


def test_freezing_an_already_frozen_wallet_changes_and_records_nothing(support):
    wallet = WalletFactory(is_active=False)

    response = set_active(support, "freeze_wallets", wallet)

    assert "1 already frozen, left as it was." in response.content.decode()
    assert not LogEntry.objects.filter(object_id=str(wallet.pk)).exists()


def test_a_settlement_wallet_is_never_frozen(support):
    settlement = settlement_wallet_get_or_create(currency="NGN")

    response = set_active(support, "freeze_wallets", settlement)

    assert "settlement or suspense wallet(s) left active" in response.content.decode()
    assert Wallet.objects.get(pk=settlement.pk, kind=WalletKind.SETTLEMENT).is_active


def test_the_wallet_page_freeze_and_unfreeze_buttons_act_on_that_wallet(support):
    wallet = WalletFactory()
    page = support.get(change_url(wallet)).content.decode()
    freeze_url = reverse("admin:wallets_wallet_freeze", args=[wallet.pk])
    assert f'action="{freeze_url}"' in page

    frozen = support.post(freeze_url, confirmed(), follow=True)

    assert frozen.redirect_chain[-1][0] == change_url(wallet)
    assert "Froze 1 wallet." in frozen.content.decode()
    assert not Wallet.objects.get(pk=wallet.pk).is_active
    assert 'id="unfreeze-wallet"' in frozen.content.decode()
    assert f"Support decision: {REASON}" in frozen.content.decode()

    support.post(reverse("admin:wallets_wallet_unfreeze", args=[wallet.pk]), confirmed("resolved with the customer"))

    assert Wallet.objects.get(pk=wallet.pk).is_active
    messages = [e.get_change_message() for e in LogEntry.objects.filter(object_id=str(wallet.pk)).order_by("pk")]
    assert messages == [f"Froze the wallet: {REASON}", "Unfroze the wallet: resolved with the customer"]
    assert Wallet.objects.filter(pk=wallet.pk, frozen_note="", frozen_reason="").exists()


@pytest.mark.parametrize(
    "button", ["admin:wallets_wallet_freeze", "admin:wallets_wallet_freeze_for_fraud", "admin:wallets_wallet_unfreeze"]
)
def test_a_wallet_page_button_asks_for_a_reason_first_and_a_blank_one_changes_nothing(button, support):
    wallet = WalletFactory(is_active=not button.endswith("_unfreeze"))
    url = reverse(button, args=[wallet.pk])

    asked = support.post(url)
    blank = support.post(url, confirmed("   "))

    for page in (asked, blank):
        assert page.status_code == 200 and 'name="reason"' in page.content.decode()
        assert str(wallet.pk) in page.content.decode()
    assert "This field is required." in blank.content.decode()
    assert Wallet.objects.get(pk=wallet.pk).is_active == wallet.is_active
    assert not LogEntry.objects.exists()


@pytest.mark.parametrize("action", ["freeze_wallets", "freeze_wallets_for_fraud", "unfreeze_wallets"])
def test_a_list_action_asks_for_a_reason_naming_the_wallets_first(action, support):
    active = action != "unfreeze_wallets"
    first, second = WalletFactory(is_active=active), WalletFactory(is_active=active)

    asked = act(support, action, first, second)
    blank = set_active(support, action, first, second, reason="")

    for page in (asked, blank):
        text = page.content.decode()
        assert 'name="reason"' in text and f'value="{action}"' in text
        assert str(first.pk) in text and str(second.pk) in text
    assert Wallet.objects.filter(pk__in=[first.pk, second.pk], is_active=first.is_active).count() == 2
    assert not LogEntry.objects.exists()


def test_a_fraud_freeze_keeps_its_note_internal(support, treasury_api):
    wallet = WalletFactory(owner=treasury_api.user)

    set_active(support, "freeze_wallets_for_fraud", wallet, reason="matches a mule pattern, case 99")

    assert Wallet.objects.get(pk=wallet.pk).frozen_note == "matches a mule pattern, case 99"
    assert "mule" not in treasury_api.get(f"/api/wallets/{wallet.pk}").content.decode()
    assert "mule" not in str(list(Event.objects.values_list("data", flat=True)))


def test_the_freeze_button_takes_only_a_post(support):
    wallet = WalletFactory()

    assert support.get(reverse("admin:wallets_wallet_freeze", args=[wallet.pk])).status_code == 405
    assert Wallet.objects.get(pk=wallet.pk).is_active


def test_freezing_needs_the_freeze_permission(db):
    viewer = staff_client(permissions=("view_wallet",))
    wallet = WalletFactory()

    assert viewer.get(change_url(wallet)).status_code == 200
    assert "freeze_wallets" not in viewer.get(CHANGELIST).content.decode()
    assert 'id="freeze-wallet"' not in viewer.get(change_url(wallet)).content.decode()
    assert viewer.post(reverse("admin:wallets_wallet_freeze", args=[wallet.pk]), confirmed()).status_code == 403
    set_active(viewer, "freeze_wallets", wallet)

    assert Wallet.objects.get(pk=wallet.pk).is_active
    assert not LogEntry.objects.exists()


# --- the count that never scans -----------------------------------------------------------------


@pytest.fixture
def small_limit(monkeypatch):
    monkeypatch.setattr(EstimatedCountPaginator, "EXACT_COUNT_LIMIT", 10)


def paginator_count(queryset) -> int:
    return EstimatedCountPaginator(queryset, per_page=5).count


def test_a_short_list_is_counted_exactly(small_limit):
    WalletFactory.create_batch(7)

    assert paginator_count(Wallet.objects.all()) == 7


def test_a_long_unfiltered_list_takes_postgresqls_estimate_of_the_table(small_limit):
    WalletFactory.create_batch(30)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE wallets")  # what autovacuum does in production

    with CaptureQueriesContext(connection) as captured:
        count = paginator_count(Wallet.objects.all())

    assert count == 30
    assert all("LIMIT 11" in q["sql"] or "pg_class" in q["sql"] for q in captured.captured_queries)


def test_a_long_filtered_list_counts_up_to_the_limit_and_no_further(small_limit):
    WalletFactory.create_batch(30, currency="USD")

    assert paginator_count(Wallet.objects.filter(currency="USD")) == 11


@pytest.mark.parametrize("params", [{}, {"currency": "NGN"}, {"_facets": "True", "is_active__exact": "1"}])
def test_the_wallet_list_costs_the_same_queries_for_5_or_200_wallets(support, params, django_assert_max_num_queries):
    WalletFactory.create_batch(5)
    with CaptureQueriesContext(connection) as few:
        support.get(CHANGELIST, params)
    WalletFactory.create_batch(195)

    with django_assert_max_num_queries(len(few.captured_queries)) as many:
        response = support.get(CHANGELIST, params)

    assert response.status_code == 200
    assert len(many.captured_queries) == len(few.captured_queries) <= 8
    for query in (*few.captured_queries, *many.captured_queries):
        sql = query["sql"].upper()
        assert "COUNT(" not in sql or "LIMIT" in sql or "WHERE" in sql
