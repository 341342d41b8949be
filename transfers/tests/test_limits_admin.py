"""The tier limits in the admin (docs/limits.md): Finance edits a tier's caps
with history and sets wallets' tiers; Support sets restrictions with a
reason; the wallets without a tier are listed for review."""

from decimal import Decimal

import pytest
from django.urls import reverse

from events.models import Event, EventType
from transfers.tests.limit_helpers import seeded_tier, tier_with
from wallets.models import TierProfileChange, Wallet, WalletLimitChange
from wallets.tests.factories import WalletFactory
from wallets.tests.test_admin import CHANGELIST, act, listed, staff_client

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("migrated_groups")]


def test_finance_sets_the_tier_of_wallets_with_a_reason_and_the_change_is_kept():
    finance = staff_client("Finance")
    wallet = WalletFactory()
    level_2 = seeded_tier("level_2")

    asked = act(finance, "set_tier", wallet, follow=False)
    assert asked.status_code == 200 and b"reason" in asked.content
    act(finance, "set_tier", wallet, apply="1", tier=level_2.pk, reason="BVN verified")

    wallet.refresh_from_db()
    assert wallet.tier == level_2
    change = WalletLimitChange.objects.get(wallet=wallet)
    assert (change.new_value, change.reason, change.changed_by) == ("level_2", "BVN verified", finance.user)
    assert Event.objects.filter(type=EventType.WALLET_TIER_CHANGED, client=wallet.owner).count() == 1


def test_support_restricts_a_wallet_but_may_not_set_its_tier():
    support = staff_client("Support")
    wallet = WalletFactory()

    act(support, "set_restrictions", wallet, apply="1", post_no_debit="on", reason="No BVN or NIN")
    act(support, "set_tier", wallet, apply="1", tier=seeded_tier("level_3").pk, reason="x")

    wallet.refresh_from_db()
    assert (wallet.post_no_debit, wallet.post_no_credit, wallet.restriction_reason) == (True, False, "No BVN or NIN")
    assert wallet.tier is None


def test_the_wallets_without_a_tier_are_listed_for_review():
    support = staff_client("Support")
    untiered, tiered = WalletFactory(), WalletFactory(tier=tier_with(max_balance="1.00"))

    shown = listed(support.get(CHANGELIST, {"tier": "none"}))

    assert untiered.pk in shown and tiered.pk not in shown


def test_finance_edits_a_tiers_caps_and_each_change_is_in_its_history():
    finance = staff_client("Finance")
    tier = seeded_tier("level_1")
    page = reverse("admin:wallets_tierprofile_change", args=[tier.pk])
    form = {
        "description": tier.description,
        "max_single_credit": "10000.00",
        "max_single_debit": "10000.00",
        "max_daily_credits": "50000.00",
        "max_daily_debits": "30000.00",
        "max_balance": "300000.00",
        "changes-TOTAL_FORMS": "0",
        "changes-INITIAL_FORMS": "0",
    }

    response = finance.post(page, form)

    assert response.status_code == 302, response.content
    tier.refresh_from_db()
    assert tier.max_daily_debits == Decimal("30000.00")
    history = {c.cap: (c.old_value, c.new_value) for c in TierProfileChange.objects.filter(profile=tier)}
    assert history == {
        "max_single_credit": (Decimal("50000.00"), Decimal("10000.00")),
        "max_single_debit": (None, Decimal("10000.00")),
        "max_daily_debits": (Decimal("50000.00"), Decimal("30000.00")),
    }
    assert all(c.changed_by == finance.user for c in TierProfileChange.objects.filter(profile=tier))


def test_support_may_not_edit_a_tier():
    support = staff_client("Support")
    tier = seeded_tier("level_1")
    page = reverse("admin:wallets_tierprofile_change", args=[tier.pk])

    support.post(page, {"max_balance": "1.00", "changes-TOTAL_FORMS": "0", "changes-INITIAL_FORMS": "0"})

    tier.refresh_from_db()
    assert tier.max_balance == Decimal("300000.00")
    assert Wallet.objects.count() == 0
