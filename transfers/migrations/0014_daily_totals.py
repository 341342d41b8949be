"""Tier limits (docs/limits.md): the running daily totals per customer
wallet and per client and currency, new tables only; and who may use the
tiers: API clients set their wallets' tiers and restrictions, Support sets
restrictions, Finance also tiers, tier caps and clients' default tiers."""

import importlib

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


event_admin = importlib.import_module("transfers.migrations.0009_event_admin_permissions")

CLIENT_PERMISSIONS = [
    ("wallets", "set_wallet_tier"),
    ("wallets", "restrict_wallet"),
    ("wallets", "view_tierprofile"),
]
SUPPORT_PERMISSIONS = [
    ("wallets", "restrict_wallet"),
    ("wallets", "view_tierprofile"),
    ("wallets", "view_tierprofilechange"),
    ("wallets", "view_walletlimitchange"),
]
FINANCE_PERMISSIONS = [
    *SUPPORT_PERMISSIONS,
    ("wallets", "set_wallet_tier"),
    ("wallets", "change_tierprofile"),
    ("wallets", "view_clienttierdefault"),
    ("wallets", "add_clienttierdefault"),
    ("wallets", "change_clienttierdefault"),
    ("wallets", "delete_clienttierdefault"),
]
GRANTS = {
    "Transfer client": CLIENT_PERMISSIONS,
    "Treasury client": CLIENT_PERMISSIONS,
    "Disbursement client": CLIENT_PERMISSIONS,
    "Support": SUPPORT_PERMISSIONS,
    "Finance": FINANCE_PERMISSIONS,
}


def forwards(apps, schema_editor):
    for group, permissions in GRANTS.items():
        event_admin.grant(apps, permissions, [group])


def backwards(apps, schema_editor):
    for group, permissions in GRANTS.items():
        event_admin.take_back(apps, permissions, [group])


class Migration(migrations.Migration):
    dependencies = [
        ("transfers", "0013_batch_body_digest"),
        ("wallets", "0013_tier_profiles_and_restrictions"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="ClientDailyDebit",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("currency", models.CharField(max_length=3)),
                ("day", models.DateField()),
                ("amount", models.DecimalField(decimal_places=2, default=0, max_digits=20)),
                (
                    "client",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "db_table": "client_daily_debits",
                "constraints": [
                    models.UniqueConstraint(
                        fields=("client", "currency", "day"), name="transfers_clientdailydebit_one_per_currency_and_day"
                    )
                ],
            },
        ),
        migrations.CreateModel(
            name="WalletDailyTotal",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("day", models.DateField()),
                ("debits", models.DecimalField(decimal_places=2, default=0, max_digits=20)),
                ("credits", models.DecimalField(decimal_places=2, default=0, max_digits=20)),
                (
                    "wallet",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="daily_totals",
                        to="wallets.wallet",
                    ),
                ),
            ],
            options={
                "db_table": "wallet_daily_totals",
                "constraints": [
                    models.UniqueConstraint(fields=("wallet", "day"), name="transfers_walletdailytotal_one_per_day"),
                    models.CheckConstraint(
                        condition=models.Q(("debits__gte", 0), ("credits__gte", 0)),
                        name="transfers_walletdailytotal_not_negative",
                    ),
                ],
            },
        ),
        migrations.RunPython(forwards, backwards),
    ]
