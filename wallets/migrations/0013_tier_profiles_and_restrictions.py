"""Tier limits (docs/limits.md): tier profiles per currency with their cap
history, each wallet's tier and restrictions, clients' default tiers, and
the wallet.tier_changed event.

Safe on a live ledger (docs/operations.md, "Schema changes on a live
ledger"), so not one atomic migration: each statement commits on its own.

- New tables; the seeded NGN profiles: the Central Bank of Nigeria's
  levels (circular BPS/DIR/GEN/CIR/04/007 of 7 Sep 2017 for the daily and
  balance caps, FPR/DIR/CIR/GEN/06/002 of 1 Jul 2016 for the single
  deposit caps of levels 1 and 2), and `unrestricted` (no cap).
- wallets.tier: a nullable column (a catalogue change, no row rewritten).
  Every existing wallet keeps NULL, which reads as unrestricted: nothing
  that worked yesterday fails today, and no backfill of millions of rows
  is needed. Its foreign key is added NOT VALID, then validated under SHARE
  UPDATE EXCLUSIVE, which lets every read and write through. No index
  (a tier is only read from a wallet).
- post_no_debit, post_no_credit, restriction_reason: constant defaults,
  recorded in the catalogue.
- The events type CHECK gains wallet.tier_changed: swapped NOT VALID, then
  validated (as migration 0011 did for the wallets' CHECKs).
- The two histories are append-only: a trigger refuses UPDATE and DELETE.
"""

from decimal import Decimal

import django.contrib.postgres.fields
import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models

OLD_TYPES = [
    "transfer.completed", "transfer.failed", "transfer.reversed", "deposit.completed", "deposit.failed",
    "withdrawal.completed", "withdrawal.failed", "batch.finished", "wallet.frozen", "wallet.unfrozen",
]  # fmt: skip
NEW_TYPES = [*OLD_TYPES, "wallet.tier_changed"]


def _type_check_sql(types: list[str]) -> str:
    listed = ", ".join(f"'{t}'" for t in types)
    return (
        "ALTER TABLE events DROP CONSTRAINT wallets_event_type_known, "
        f"ADD CONSTRAINT wallets_event_type_known CHECK (type IN ({listed})) NOT VALID"
    )


EVENT_TYPE_CHECK = [
    migrations.SeparateDatabaseAndState(
        state_operations=[
            migrations.RemoveConstraint(model_name="event", name="wallets_event_type_known"),
            migrations.AddConstraint(
                model_name="event",
                constraint=models.CheckConstraint(
                    condition=models.Q(type__in=NEW_TYPES), name="wallets_event_type_known"
                ),
            ),
        ],
        database_operations=[
            migrations.RunSQL(_type_check_sql(NEW_TYPES), _type_check_sql(OLD_TYPES)),
            migrations.RunSQL(
                "ALTER TABLE events VALIDATE CONSTRAINT wallets_event_type_known", migrations.RunSQL.noop
            ),
        ],
    ),
]

WALLET_TIER = [
    migrations.SeparateDatabaseAndState(
        state_operations=[
            migrations.AddField(
                model_name="wallet",
                name="tier",
                field=models.ForeignKey(
                    blank=True,
                    db_index=False,
                    editable=False,
                    help_text="The wallet's KYC tier; empty: unrestricted.",
                    null=True,
                    on_delete=django.db.models.deletion.PROTECT,
                    related_name="wallets",
                    to="wallets.tierprofile",
                ),
            ),
        ],
        database_operations=[
            migrations.RunSQL(
                "ALTER TABLE wallets ADD COLUMN tier_id bigint NULL",
                "ALTER TABLE wallets DROP COLUMN tier_id",
            ),
            migrations.RunSQL(
                "ALTER TABLE wallets ADD CONSTRAINT wallets_tier_id_fk_tier_profiles FOREIGN KEY (tier_id) "
                "REFERENCES tier_profiles (id) DEFERRABLE INITIALLY DEFERRED NOT VALID",
                migrations.RunSQL.noop,
            ),
            migrations.RunSQL(
                "ALTER TABLE wallets VALIDATE CONSTRAINT wallets_tier_id_fk_tier_profiles", migrations.RunSQL.noop
            ),
        ],
    ),
]

TRIGGERS = """
CREATE FUNCTION limit_history_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
    USING ERRCODE = 'integrity_constraint_violation';
END $$;
CREATE TRIGGER tier_profile_changes_append_only BEFORE UPDATE OR DELETE ON tier_profile_changes
  FOR EACH ROW EXECUTE FUNCTION limit_history_append_only();
CREATE TRIGGER wallet_limit_changes_append_only BEFORE UPDATE OR DELETE ON wallet_limit_changes
  FOR EACH ROW EXECUTE FUNCTION limit_history_append_only();
"""
DROP_TRIGGERS = """
DROP TRIGGER wallet_limit_changes_append_only ON wallet_limit_changes;
DROP TRIGGER tier_profile_changes_append_only ON tier_profile_changes;
DROP FUNCTION limit_history_append_only();
"""

# (name, single credit, single debit, daily credits, daily debits, balance); None: no cap.
# Daily caps: the circular's "daily cumulative transactions", applied to money in and out alike.
NGN_TIERS = [
    ("level_1", "50000.00", None, "50000.00", "50000.00", "300000.00", "CBN Level 1: low-value, minimal KYC."),
    ("level_2", "100000.00", None, "200000.00", "200000.00", "500000.00", "CBN Level 2: BVN or NIN verified."),
    ("level_3", None, None, "5000000.00", "5000000.00", None, "CBN Level 3: full KYC."),
    ("unrestricted", None, None, None, None, None, "No cap (a settlement partner, a wallet under review)."),
]


def seed_tiers(apps, schema_editor):
    TierProfile = apps.get_model("wallets", "TierProfile")
    for name, single_credit, single_debit, daily_credits, daily_debits, balance, description in NGN_TIERS:
        TierProfile.objects.get_or_create(
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


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("wallets", "0012_wallet_frozen_note"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="wallet",
            options={
                "ordering": ["created_at"],
                "permissions": [
                    ("freeze_wallet", "Can freeze and unfreeze wallets"),
                    ("view_all_wallets", "Can read every API client's wallets (auditors)"),
                    ("give_wallet", "Can give an unclaimed wallet to its API client"),
                    ("set_wallet_tier", "Can set a wallet's KYC tier"),
                    ("restrict_wallet", "Can set a wallet's post-no-debit and post-no-credit restrictions"),
                ],
            },
        ),
        migrations.CreateModel(
            name="ClientTierDefault",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("currency", models.CharField(editable=False, max_length=3)),
            ],
            options={
                "db_table": "client_tier_defaults",
            },
        ),
        migrations.CreateModel(
            name="TierProfile",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("name", models.CharField(help_text="How clients name it: level_1, unrestricted, ...", max_length=64)),
                ("currency", models.CharField(max_length=3)),
                ("description", models.TextField(blank=True, default="")),
                (
                    "max_single_credit",
                    models.DecimalField(
                        blank=True,
                        decimal_places=2,
                        help_text="Most one movement may bring in; empty: no cap.",
                        max_digits=20,
                        null=True,
                    ),
                ),
                (
                    "max_single_debit",
                    models.DecimalField(
                        blank=True,
                        decimal_places=2,
                        help_text="Most one movement may take out; empty: no cap.",
                        max_digits=20,
                        null=True,
                    ),
                ),
                (
                    "max_daily_credits",
                    models.DecimalField(
                        blank=True,
                        decimal_places=2,
                        help_text="Most that may come in in one business day; empty: no cap.",
                        max_digits=20,
                        null=True,
                    ),
                ),
                (
                    "max_daily_debits",
                    models.DecimalField(
                        blank=True,
                        decimal_places=2,
                        help_text="Most that may go out in one business day; empty: no cap.",
                        max_digits=20,
                        null=True,
                    ),
                ),
                (
                    "max_balance",
                    models.DecimalField(
                        blank=True,
                        decimal_places=2,
                        help_text="Most the wallet may hold; empty: no cap.",
                        max_digits=20,
                        null=True,
                    ),
                ),
                ("updated_at", models.DateTimeField(auto_now=True)),
            ],
            options={
                "db_table": "tier_profiles",
                "ordering": ["currency", "name"],
            },
        ),
        migrations.CreateModel(
            name="TierProfileChange",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("cap", models.CharField(max_length=32)),
                ("old_value", models.DecimalField(decimal_places=2, max_digits=20, null=True)),
                ("new_value", models.DecimalField(decimal_places=2, max_digits=20, null=True)),
                ("changed_at", models.DateTimeField(default=django.utils.timezone.now)),
            ],
            options={
                "db_table": "tier_profile_changes",
                "ordering": ["-changed_at", "-id"],
            },
        ),
        migrations.CreateModel(
            name="WalletLimitChange",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("what", models.CharField(help_text="tier, post_no_debit or post_no_credit", max_length=32)),
                ("old_value", models.CharField(max_length=64)),
                ("new_value", models.CharField(max_length=64)),
                ("reason", models.TextField(blank=True, default="")),
                ("changed_at", models.DateTimeField(default=django.utils.timezone.now)),
            ],
            options={
                "db_table": "wallet_limit_changes",
                "ordering": ["-changed_at", "-id"],
            },
        ),
        migrations.AddField(
            model_name="wallet",
            name="post_no_credit",
            field=models.BooleanField(db_default=False, default=False, editable=False),
        ),
        migrations.AddField(
            model_name="wallet",
            name="post_no_debit",
            field=models.BooleanField(db_default=False, default=False, editable=False),
        ),
        migrations.AddField(
            model_name="wallet",
            name="restriction_reason",
            field=models.TextField(blank=True, db_default="", default="", editable=False),
        ),
        migrations.AlterField(
            model_name="event",
            name="type",
            field=models.CharField(
                choices=[
                    ("transfer.completed", "Transfer Completed"),
                    ("transfer.failed", "Transfer Failed"),
                    ("transfer.reversed", "Transfer Reversed"),
                    ("deposit.completed", "Deposit Completed"),
                    ("deposit.failed", "Deposit Failed"),
                    ("withdrawal.completed", "Withdrawal Completed"),
                    ("withdrawal.failed", "Withdrawal Failed"),
                    ("batch.finished", "Batch Finished"),
                    ("wallet.frozen", "Wallet Frozen"),
                    ("wallet.unfrozen", "Wallet Unfrozen"),
                    ("wallet.tier_changed", "Wallet Tier Changed"),
                ],
                max_length=32,
            ),
        ),
        migrations.AlterField(
            model_name="webhookendpoint",
            name="event_types",
            field=django.contrib.postgres.fields.ArrayField(
                base_field=models.CharField(
                    choices=[
                        ("transfer.completed", "Transfer Completed"),
                        ("transfer.failed", "Transfer Failed"),
                        ("transfer.reversed", "Transfer Reversed"),
                        ("deposit.completed", "Deposit Completed"),
                        ("deposit.failed", "Deposit Failed"),
                        ("withdrawal.completed", "Withdrawal Completed"),
                        ("withdrawal.failed", "Withdrawal Failed"),
                        ("batch.finished", "Batch Finished"),
                        ("wallet.frozen", "Wallet Frozen"),
                        ("wallet.unfrozen", "Wallet Unfrozen"),
                        ("wallet.tier_changed", "Wallet Tier Changed"),
                    ],
                    max_length=32,
                ),
                size=None,
            ),
        ),
        migrations.AddField(
            model_name="clienttierdefault",
            name="client",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE, related_name="tier_defaults", to=settings.AUTH_USER_MODEL
            ),
        ),
        migrations.AddConstraint(
            model_name="tierprofile",
            constraint=models.UniqueConstraint(
                fields=("currency", "name"), name="wallets_tierprofile_unique_currency_name"
            ),
        ),
        migrations.AddConstraint(
            model_name="tierprofile",
            constraint=models.CheckConstraint(
                condition=models.Q(("max_single_credit__isnull", True), ("max_single_credit__gte", 0), _connector="OR"),
                name="wallets_tierprofile_max_single_credit_not_negative",
            ),
        ),
        migrations.AddConstraint(
            model_name="tierprofile",
            constraint=models.CheckConstraint(
                condition=models.Q(("max_single_debit__isnull", True), ("max_single_debit__gte", 0), _connector="OR"),
                name="wallets_tierprofile_max_single_debit_not_negative",
            ),
        ),
        migrations.AddConstraint(
            model_name="tierprofile",
            constraint=models.CheckConstraint(
                condition=models.Q(("max_daily_credits__isnull", True), ("max_daily_credits__gte", 0), _connector="OR"),
                name="wallets_tierprofile_max_daily_credits_not_negative",
            ),
        ),
        migrations.AddConstraint(
            model_name="tierprofile",
            constraint=models.CheckConstraint(
                condition=models.Q(("max_daily_debits__isnull", True), ("max_daily_debits__gte", 0), _connector="OR"),
                name="wallets_tierprofile_max_daily_debits_not_negative",
            ),
        ),
        migrations.AddConstraint(
            model_name="tierprofile",
            constraint=models.CheckConstraint(
                condition=models.Q(("max_balance__isnull", True), ("max_balance__gte", 0), _connector="OR"),
                name="wallets_tierprofile_max_balance_not_negative",
            ),
        ),
        migrations.AddField(
            model_name="clienttierdefault",
            name="tier",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT, related_name="+", to="wallets.tierprofile"
            ),
        ),
        migrations.AddField(
            model_name="tierprofilechange",
            name="changed_by",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT, related_name="+", to=settings.AUTH_USER_MODEL
            ),
        ),
        migrations.AddField(
            model_name="tierprofilechange",
            name="profile",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT, related_name="changes", to="wallets.tierprofile"
            ),
        ),
        migrations.AddField(
            model_name="walletlimitchange",
            name="changed_by",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT, related_name="+", to=settings.AUTH_USER_MODEL
            ),
        ),
        migrations.AddField(
            model_name="walletlimitchange",
            name="wallet",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT, related_name="limit_changes", to="wallets.wallet"
            ),
        ),
        migrations.AddConstraint(
            model_name="clienttierdefault",
            constraint=models.UniqueConstraint(
                fields=("client", "currency"), name="wallets_clienttierdefault_one_per_currency"
            ),
        ),
        *EVENT_TYPE_CHECK,
        *WALLET_TIER,
        migrations.RunSQL(TRIGGERS, DROP_TRIGGERS),
        migrations.RunPython(seed_tiers, migrations.RunPython.noop),
    ]
