"""Four single-column indexes of transaction_logs dropped: client_id,
source_wallet_id, destination_wallet_id and batch_id each lead another index
already ((client_id, idempotency_key), (source_wallet_id, created_at),
(destination_wallet_id, created_at), (batch_id, batch_index)), which serves
every lookup and every foreign-key check on that column. Each was written by
every insert of a log and again by its settle (a status change is no HOT
update): 34 index entries a settled log, now 26 (docs/design.md, "The
indexes of transaction_logs"; bench/HISTORY.md, 2026-12-07 03:30).

DROP INDEX holds the table's lock for an instant; nothing is rebuilt.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("transfers", "0019_hold_request_keys"),
        ("wallets", "0017_keys_and_events_move_to_their_apps"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
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
