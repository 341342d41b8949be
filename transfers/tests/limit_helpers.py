"""Tiers for the limit tests (transfers/tests/test_limits.py): the seeded NGN
profiles (a transactional test's flush empties the table the migration
seeded, so they are put back on demand), and profiles with caps of a test's
own."""

import importlib
import uuid
from decimal import Decimal

from wallets.models import TierProfile, Wallet

_seed = importlib.import_module("wallets.migrations.0013_tier_profiles_and_restrictions")


def seeded_tier(name: str) -> TierProfile:
    """A seeded NGN tier (level_1, level_2, level_3, unrestricted), as the migration made it."""
    for row in _seed.NGN_TIERS:
        if row[0] == name:
            _, single_credit, single_debit, daily_credits, daily_debits, balance, description = row
            profile, _ = TierProfile.objects.get_or_create(
                currency="NGN",
                name=name,
                defaults={
                    "description": description,
                    "max_single_credit": single_credit and Decimal(single_credit),
                    "max_single_debit": single_debit and Decimal(single_debit),
                    "max_daily_credits": daily_credits and Decimal(daily_credits),
                    "max_daily_debits": daily_debits and Decimal(daily_debits),
                    "max_balance": balance and Decimal(balance),
                },
            )
            return profile
    raise KeyError(name)


def seed_tiers() -> None:
    for row in _seed.NGN_TIERS:
        seeded_tier(row[0])


def tier_with(currency: str = "NGN", **caps: str) -> TierProfile:
    """A tier of the test's own with these caps (max_daily_debits="1000.00", ...)."""
    return TierProfile.objects.create(
        currency=currency, name=f"test-{uuid.uuid4().hex[:8]}", **{cap: Decimal(v) for cap, v in caps.items()}
    )


def put_in(wallet: Wallet, tier: TierProfile | None) -> Wallet:
    """Give `wallet` a tier directly (the service and API have tests of their own)."""
    Wallet.objects.filter(pk=wallet.pk).update(tier=tier)
    wallet.refresh_from_db()
    return wallet
