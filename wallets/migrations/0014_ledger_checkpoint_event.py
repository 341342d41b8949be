"""The event type ledger.checkpoint (the ledger chain's head, published
outside the database: docs/operations.md, "A provable history").

The type CHECK is replaced in one ALTER TABLE, NOT VALID (an instant), then
validated in a statement of its own, which scans events without blocking
their writers (SHARE UPDATE EXCLUSIVE): never a moment without the rule, and
no settle statement waits behind the scan.
"""

import django.contrib.postgres.fields
from django.db import migrations, models

OLD_TYPES = [
    "transfer.completed",
    "transfer.failed",
    "transfer.reversed",
    "deposit.completed",
    "deposit.failed",
    "withdrawal.completed",
    "withdrawal.failed",
    "batch.finished",
    "wallet.frozen",
    "wallet.unfrozen",
    "wallet.tier_changed",
]
NEW_TYPES = [*OLD_TYPES, "ledger.checkpoint"]
CHOICES = [(value, value.replace(".", " ").title()) for value in NEW_TYPES]


def _replace(types: list[str]) -> str:
    listed = ", ".join(f"'{value}'" for value in types)
    return (
        "ALTER TABLE events DROP CONSTRAINT wallets_event_type_known, "
        f'ADD CONSTRAINT wallets_event_type_known CHECK ("type" IN ({listed})) NOT VALID'
    )


VALIDATE = "ALTER TABLE events VALIDATE CONSTRAINT wallets_event_type_known"


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("wallets", "0013_tier_profiles_and_restrictions"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveConstraint(model_name="event", name="wallets_event_type_known"),
                migrations.AlterField(
                    model_name="event",
                    name="type",
                    field=models.CharField(choices=CHOICES, max_length=32),
                ),
                migrations.AlterField(
                    model_name="webhookendpoint",
                    name="event_types",
                    field=django.contrib.postgres.fields.ArrayField(
                        base_field=models.CharField(choices=CHOICES, max_length=32), size=None
                    ),
                ),
                migrations.AddConstraint(
                    model_name="event",
                    constraint=models.CheckConstraint(
                        condition=models.Q(type__in=NEW_TYPES), name="wallets_event_type_known"
                    ),
                ),
            ],
            database_operations=[
                migrations.RunSQL(sql=_replace(NEW_TYPES), reverse_sql=[_replace(OLD_TYPES), VALIDATE]),
                migrations.RunSQL(sql=VALIDATE, reverse_sql=migrations.RunSQL.noop),
            ],
        ),
    ]
