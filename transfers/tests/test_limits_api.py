"""The tier limits as a client meets them (docs/limits.md): GET /api/tiers,
PATCH /api/wallets/{id}, and what GET /api/wallets/{id} shows of today."""

import uuid
from decimal import Decimal

import pytest

from conftest import make_api_client
from events.models import Event, EventType
from transfers.tests.concurrency import post_transfer
from transfers.tests.limit_helpers import put_in, seed_tiers, seeded_tier, tier_with
from wallets.models import ClientTierDefault, TierProfileChange, Wallet, WalletLimitChange
from wallets.tests.factories import WalletFactory

pytestmark = pytest.mark.django_db


def body(response, status: int) -> dict:
    assert response.status_code == status, response.content
    return response.json()


def patch(api, wallet, payload):
    return api.patch(f"/api/wallets/{wallet.pk}", payload, format="json")


def test_tiers_lists_the_seeded_ngn_profiles_with_caps_as_strings_or_null(treasury_api):
    seed_tiers()

    tiers = {t["name"]: t for t in body(treasury_api.get("/api/tiers?currency=NGN"), 200)["data"]}

    assert {"level_1", "level_2", "level_3", "unrestricted"} <= set(tiers)
    assert tiers["level_2"] | {"description": ""} == {
        "name": "level_2",
        "currency": "NGN",
        "description": "",
        "maxSingleCredit": "100000.00",
        "maxSingleDebit": None,
        "maxDailyCredits": "200000.00",
        "maxDailyDebits": "200000.00",
        "maxBalance": "500000.00",
    }
    assert tiers["level_3"]["maxBalance"] is None
    assert all(value is None for key, value in tiers["unrestricted"].items() if key.startswith("max"))


def test_tiers_of_an_unsupported_currency_is_400(treasury_api):
    assert body(treasury_api.get("/api/tiers?currency=XXX"), 400)["code"] == "validation_error"


@pytest.mark.parametrize("query", ["foo=1", "curency=NGN", "currency=NGN&foo=1"])
def test_an_unknown_tiers_parameter_is_a_400_naming_it(treasury_api, query):
    answer = body(treasury_api.get(f"/api/tiers?{query}"), 400)
    assert answer["code"] == "validation_error"
    assert list(answer["errors"]) == [query.rsplit("&", 1)[-1].split("=")[0]]


def test_a_wallet_shows_its_tier_restrictions_and_what_is_left_today(treasury_api, funded_wallet):
    payer, payee = funded_wallet("1000.00"), funded_wallet("0")
    put_in(payer, tier_with(max_daily_debits="500.00", max_balance="2000.00"))
    body(post_transfer(treasury_api.api_key, payer, payee, "120.00", "shown"), 201)

    wallet = body(treasury_api.get(f"/api/wallets/{payer.pk}"), 200)["data"]

    assert wallet["tier"] == payer.tier.name
    assert (wallet["postNoDebit"], wallet["postNoCredit"]) == (False, False)
    today = wallet["today"]
    assert (today["debits"], today["credits"]) == ("120.00", "1000.00")
    assert (today["debitsLeft"], today["creditsLeft"], today["balanceRoom"]) == ("380.00", None, "1120.00")
    unrestricted = body(treasury_api.get(f"/api/wallets/{payee.pk}"), 200)["data"]
    assert unrestricted["tier"] == "unrestricted" and unrestricted["today"]["debitsLeft"] is None


def test_patch_sets_the_tier_records_it_and_announces_wallet_tier_changed(treasury_api, funded_wallet):
    wallet = funded_wallet("0")
    seeded_tier("level_1")

    data = body(patch(treasury_api, wallet, {"tier": "level_1"}), 200)["data"]

    assert data["tier"] == "level_1" and data["today"]["balanceRoom"] == "300000.00"
    change = WalletLimitChange.objects.get(wallet=wallet)
    assert (change.what, change.old_value, change.new_value, change.changed_by) == (
        "tier",
        "unrestricted",
        "level_1",
        wallet.owner,
    )
    event = Event.objects.get(type=EventType.WALLET_TIER_CHANGED)
    assert (event.client_id, event.data["id"], event.data["tier"]) == (wallet.owner_id, str(wallet.pk), "level_1")
    # The same tier again changes and records nothing.
    body(patch(treasury_api, wallet, {"tier": "level_1"}), 200)
    assert WalletLimitChange.objects.filter(wallet=wallet).count() == 1


def test_patch_with_an_empty_body_changes_nothing(treasury_api, funded_wallet):
    wallet = funded_wallet("0")

    data = body(patch(treasury_api, wallet, {}), 200)["data"]

    assert data["tier"] == "unrestricted"
    assert not WalletLimitChange.objects.exists()


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"tier": "level_9"}, "tier"),
        ({"tier": 1}, "tier"),
        ({"postNoDebit": True}, "reason"),
        ({"postNoDebit": "yes", "reason": "x"}, "postNoDebit"),
        ({"balance": "100.00"}, "balance"),
    ],
)
def test_patch_with_bad_input_is_400_naming_the_field_and_changes_nothing(payload, field, treasury_api, funded_wallet):
    wallet = funded_wallet("0")

    refused = body(patch(treasury_api, wallet, payload), 400)

    assert field in refused["errors"]
    assert not WalletLimitChange.objects.exists()


def test_patch_a_tier_of_another_currency_is_400(treasury_api, funded_wallet):
    wallet = funded_wallet("0")
    tier_with(currency="USD", max_balance="10.00")
    seeded_tier("level_1")
    usd_only = tier_with(currency="USD")

    assert "tier" in body(patch(treasury_api, wallet, {"tier": usd_only.name}), 400)["errors"]


def test_patch_sets_and_lifts_restrictions_with_the_reason(treasury_api, funded_wallet):
    wallet, other = funded_wallet("100.00"), funded_wallet("0")

    reason = {"postNoDebit": True, "reason": "No BVN or NIN since 1 March 2024"}
    data = body(patch(treasury_api, wallet, reason), 200)["data"]

    assert (data["postNoDebit"], data["restrictionReason"]) == (True, "No BVN or NIN since 1 March 2024")
    assert body(post_transfer(treasury_api.api_key, wallet, other, "1.00", "r-1"), 422)["code"] == "wallet_restricted"
    lifted = body(patch(treasury_api, wallet, {"postNoDebit": False}), 200)["data"]
    assert (lifted["postNoDebit"], lifted["restrictionReason"]) == (False, "")
    assert body(post_transfer(treasury_api.api_key, wallet, other, "1.00", "r-2"), 201)
    assert list(WalletLimitChange.objects.order_by("id").values_list("what", "new_value")) == [
        ("post_no_debit", "true"),
        ("post_no_debit", "false"),
    ]


def test_patch_another_clients_wallet_is_404_as_an_unknown_one(treasury_api):
    other = WalletFactory(owner=make_api_client("Treasury client").user)

    assert body(patch(treasury_api, other, {"tier": "level_1"}), 404)["code"] == "wallet_not_found"
    assert body(treasury_api.patch(f"/api/wallets/{uuid.uuid4()}", {}, format="json"), 404)["code"] == (
        "wallet_not_found"
    )


def test_patch_without_the_permission_is_403():
    bare = make_api_client()  # in no group: may not even read its wallets
    wallet = WalletFactory(owner=bare.user)
    assert body(patch(bare, wallet, {"tier": "level_1"}), 403)["code"] == "permission_denied"


def test_a_new_wallet_takes_its_clients_default_tier(treasury_api, wallet_owner):
    ClientTierDefault.objects.create(client=wallet_owner, tier=seeded_tier("level_1"))

    ngn = body(treasury_api.post("/api/wallets", {"userId": str(uuid.uuid4())}, format="json"), 201)["data"]
    usd = body(treasury_api.post("/api/wallets", {"userId": str(uuid.uuid4()), "currency": "USD"}, format="json"), 201)[
        "data"
    ]

    assert (ngn["tier"], usd["tier"]) == ("level_1", "unrestricted")
    assert Wallet.objects.get(pk=ngn["id"]).tier.name == "level_1"


def test_the_limit_histories_are_append_only(funded_wallet, wallet_owner):
    from django.db import IntegrityError, transaction

    tier = tier_with(max_balance="1.00")
    change = TierProfileChange.objects.create(
        profile=tier, cap="max_balance", old_value=None, new_value=Decimal("1.00"), changed_by=wallet_owner
    )
    with pytest.raises(IntegrityError, match="append-only"), transaction.atomic():
        TierProfileChange.objects.filter(pk=change.pk).update(new_value=Decimal("2.00"))
    with pytest.raises(IntegrityError, match="append-only"), transaction.atomic():
        TierProfileChange.objects.filter(pk=change.pk).delete()
