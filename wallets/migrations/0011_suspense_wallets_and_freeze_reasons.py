"""Suspense wallets (one per currency, the other side of a manual adjustment)
and why a wallet is frozen (docs/design.md, "Corrections").

Safe on a live ledger (no table rewrite, no long lock: below), so not
one atomic migration: each statement commits on its own.

- frozen_reason: a column with a constant default, which PostgreSQL records
  in the catalogue without rewriting a row.
- The three kind CHECKs that named SETTLEMENT now name both system kinds.
  Each is swapped for its new form NOT VALID (a catalogue change under a
  lock held for milliseconds), then VALIDATE CONSTRAINT reads the table
  under SHARE UPDATE EXCLUSIVE, which lets every read and write through.
  The old and new forms agree on every row that exists (no SUSPENSE row yet).
- One suspense wallet per currency: a partial unique index built
  CONCURRENTLY (no lock that stops writers).
"""

from django.db import migrations, models
from django.db.models import Q

SYSTEM_KINDS = ["SETTLEMENT", "SUSPENSE"]

CHECKS = {
    "wallets_wallet_customer_balance_non_negative": (
        "kind IN ('SETTLEMENT', 'SUSPENSE') OR balance >= 0",
        "kind = 'SETTLEMENT' OR balance >= 0",
        Q(kind__in=SYSTEM_KINDS) | Q(balance__gte=0),
        Q(kind="SETTLEMENT") | Q(balance__gte=0),
    ),
    "wallets_wallet_owner_matches_kind": (
        "(kind = 'CUSTOMER' AND user_id IS NOT NULL) OR (kind IN ('SETTLEMENT', 'SUSPENSE') AND user_id IS NULL)",
        "(kind = 'CUSTOMER' AND user_id IS NOT NULL) OR (kind = 'SETTLEMENT' AND user_id IS NULL)",
        (Q(kind="CUSTOMER") & Q(user_id__isnull=False)) | (Q(kind__in=SYSTEM_KINDS) & Q(user_id__isnull=True)),
        (Q(kind="CUSTOMER") & Q(user_id__isnull=False)) | (Q(kind="SETTLEMENT") & Q(user_id__isnull=True)),
    ),
    "wallets_wallet_client_matches_kind": (
        "(kind = 'CUSTOMER' AND owner_id IS NOT NULL) OR (kind IN ('SETTLEMENT', 'SUSPENSE') AND owner_id IS NULL)",
        "(kind = 'CUSTOMER' AND owner_id IS NOT NULL) OR (kind = 'SETTLEMENT' AND owner_id IS NULL)",
        (Q(kind="CUSTOMER") & Q(owner__isnull=False)) | (Q(kind__in=SYSTEM_KINDS) & Q(owner__isnull=True)),
        (Q(kind="CUSTOMER") & Q(owner__isnull=False)) | (Q(kind="SETTLEMENT") & Q(owner__isnull=True)),
    ),
}


def swap_check(name: str) -> list:
    new_sql, old_sql, new_q, old_q = CHECKS[name]
    return [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveConstraint(model_name="wallet", name=name),
                migrations.AddConstraint(model_name="wallet", constraint=models.CheckConstraint(condition=new_q, name=name)),
            ],
            database_operations=[
                migrations.RunSQL(
                    f"ALTER TABLE wallets DROP CONSTRAINT {name}, ADD CONSTRAINT {name} CHECK ({new_sql}) NOT VALID",
                    f"ALTER TABLE wallets DROP CONSTRAINT {name}, ADD CONSTRAINT {name} CHECK ({old_sql}) NOT VALID",
                ),
                migrations.RunSQL(f"ALTER TABLE wallets VALIDATE CONSTRAINT {name}", migrations.RunSQL.noop),
            ],
        ),
    ]


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("wallets", "0010_webhook_endpoint_last_attempt"),
    ]

    operations = [
        migrations.AlterField(
            model_name="wallet",
            name="kind",
            field=models.CharField(
                choices=[("CUSTOMER", "Customer"), ("SETTLEMENT", "Settlement"), ("SUSPENSE", "Suspense")],
                default="CUSTOMER",
                max_length=16,
            ),
        ),
        migrations.AddField(
            model_name="wallet",
            name="frozen_reason",
            field=models.CharField(
                blank=True,
                choices=[("SUPPORT", "Support decision"), ("FRAUD", "Suspected fraud")],
                db_default="",
                default="",
                editable=False,
                max_length=16,
            ),
        ),
        *(operation for name in CHECKS for operation in swap_check(name)),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AddConstraint(
                    model_name="wallet",
                    constraint=models.UniqueConstraint(
                        condition=Q(kind="SUSPENSE"), fields=("currency",), name="wallets_wallet_one_suspense_per_currency"
                    ),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS wallets_wallet_one_suspense_per_currency "
                    "ON wallets (currency) WHERE kind = 'SUSPENSE'",
                    "DROP INDEX CONCURRENTLY IF EXISTS wallets_wallet_one_suspense_per_currency",
                ),
            ],
        ),
    ]
