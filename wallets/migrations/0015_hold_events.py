"""The hold events (docs/api.md, "Holds"): hold.created, hold.captured,
hold.voided, hold.expired, hold.extended join the known event types.

On a live ledger (docs/operations.md, "Schema changes on a live ledger"): the
CHECK is replaced NOT VALID (a catalogue change, no scan under the table's
lock), then validated in its own transaction, which scans the events while
they are still written. A process of the previous release writes only the
types it knows: all of them are still allowed."""

import django.contrib.postgres.fields
from django.db import migrations, models

EVENT_TYPES = [('transfer.completed', 'Transfer Completed'), ('transfer.failed', 'Transfer Failed'), ('transfer.reversed', 'Transfer Reversed'), ('deposit.completed', 'Deposit Completed'), ('deposit.failed', 'Deposit Failed'), ('withdrawal.completed', 'Withdrawal Completed'), ('withdrawal.failed', 'Withdrawal Failed'), ('batch.finished', 'Batch Finished'), ('hold.created', 'Hold Created'), ('hold.captured', 'Hold Captured'), ('hold.voided', 'Hold Voided'), ('hold.expired', 'Hold Expired'), ('hold.extended', 'Hold Extended'), ('wallet.frozen', 'Wallet Frozen'), ('wallet.unfrozen', 'Wallet Unfrozen'), ('wallet.tier_changed', 'Wallet Tier Changed'), ('ledger.checkpoint', 'Ledger Checkpoint')]
TYPES_SQL = "'transfer.completed', 'transfer.failed', 'transfer.reversed', 'deposit.completed', 'deposit.failed', 'withdrawal.completed', 'withdrawal.failed', 'batch.finished', 'hold.created', 'hold.captured', 'hold.voided', 'hold.expired', 'hold.extended', 'wallet.frozen', 'wallet.unfrozen', 'wallet.tier_changed', 'ledger.checkpoint'"


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("wallets", "0014_ledger_checkpoint_event"),
    ]

    operations = [
        migrations.AlterField(
            model_name="event",
            name="type",
            field=models.CharField(choices=EVENT_TYPES, max_length=32),
        ),
        migrations.AlterField(
            model_name="webhookendpoint",
            name="event_types",
            field=django.contrib.postgres.fields.ArrayField(
                base_field=models.CharField(choices=EVENT_TYPES, max_length=32), size=None
            ),
        ),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveConstraint(model_name="event", name="wallets_event_type_known"),
                migrations.AddConstraint(
                    model_name="event",
                    constraint=models.CheckConstraint(
                        condition=models.Q(("type__in", [t for t, _ in EVENT_TYPES])), name="wallets_event_type_known"
                    ),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    "ALTER TABLE events DROP CONSTRAINT wallets_event_type_known, "
                    f"ADD CONSTRAINT wallets_event_type_known CHECK (type IN ({TYPES_SQL})) NOT VALID",
                    reverse_sql=migrations.RunSQL.noop,
                ),
                migrations.RunSQL(
                    "ALTER TABLE events VALIDATE CONSTRAINT wallets_event_type_known",
                    reverse_sql=migrations.RunSQL.noop,
                ),
            ],
        ),
    ]
