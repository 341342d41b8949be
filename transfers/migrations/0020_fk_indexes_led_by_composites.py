"""Four single-column indexes of transaction_logs dropped: client_id,
source_wallet_id, destination_wallet_id and batch_id each lead another index
already ((client_id, idempotency_key), (source_wallet_id, created_at),
(destination_wallet_id, created_at), (batch_id, batch_index)), which serves
every lookup and every foreign-key check on that column. Each was written by
every insert of a log and again by its settle (a status change is no HOT
update): eight index entries fewer for every settled log (docs/design.md,
"The indexes of transaction_logs"; bench/HISTORY.md, 2026-12-07 03:15).

The database side is the four DROP INDEX alone (the names are Django's,
the same in every database this project made): Django's own AlterField
would also drop and re-add each foreign key, and re-adding one checks
every row of the table under its lock. DROP INDEX holds the table's lock
for an instant; nothing is rebuilt.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

# Django's names for the foreign keys' own indexes (the column and a hash of
# the table and column), as migration 0001 made them.
INDEXES = [
    ("transaction_logs_batch_id_5249e17b", "batch_id"),
    ("transaction_logs_client_id_34a4bbdb", "client_id"),
    ("transaction_logs_destination_wallet_id_9f6d8363", "destination_wallet_id"),
    ("transaction_logs_source_wallet_id_235668fa", "source_wallet_id"),
]

STATE_OPERATIONS = [
    migrations.AlterField(
        model_name="transactionlog",
        name="batch",
        field=models.ForeignKey(
            blank=True,
            db_index=False,
            null=True,
            on_delete=django.db.models.deletion.PROTECT,
            related_name="payouts",
            to="transfers.transferbatch",
        ),
    ),
    migrations.AlterField(
        model_name="transactionlog",
        name="client",
        field=models.ForeignKey(
            db_index=False,
            help_text="The API client that asked for this movement.",
            on_delete=django.db.models.deletion.PROTECT,
            related_name="transaction_logs",
            to=settings.AUTH_USER_MODEL,
        ),
    ),
    migrations.AlterField(
        model_name="transactionlog",
        name="destination_wallet",
        field=models.ForeignKey(
            db_index=False,
            on_delete=django.db.models.deletion.PROTECT,
            related_name="incoming_logs",
            to="wallets.wallet",
        ),
    ),
    migrations.AlterField(
        model_name="transactionlog",
        name="source_wallet",
        field=models.ForeignKey(
            db_index=False,
            on_delete=django.db.models.deletion.PROTECT,
            related_name="outgoing_logs",
            to="wallets.wallet",
        ),
    ),
]


class Migration(migrations.Migration):
    dependencies = [
        ("transfers", "0019_hold_request_keys"),
        ("wallets", "0017_keys_and_events_move_to_their_apps"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=STATE_OPERATIONS,
            database_operations=[
                migrations.RunSQL(
                    sql=[f"DROP INDEX IF EXISTS {name}" for name, _ in INDEXES],
                    reverse_sql=[
                        f"CREATE INDEX IF NOT EXISTS {name} ON transaction_logs ({column})" for name, column in INDEXES
                    ],
                )
            ],
        )
    ]
