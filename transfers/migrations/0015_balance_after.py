"""Each movement's balances after it (transfers/engine.py writes them) and the
two indexes a balance as of an instant and a statement read.

Safe on a live ledger (docs/design.md, "Schema changes on a live ledger"):
the columns are nullable without a default (no table rewrite; the logs
settled before stay NULL, and transfers/statements.py sums for them), and
the indexes are built CONCURRENTLY, outside a transaction, so writes go on.
An older web process that does not know the columns keeps settling; its
logs have NULL balances after, read as the old ones are."""

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("transfers", "0013_batch_body_digest"),
    ]

    operations = [
        migrations.AddField(
            model_name="transactionlog",
            name="source_balance_after",
            field=models.DecimalField(blank=True, decimal_places=2, editable=False, max_digits=20, null=True),
        ),
        migrations.AddField(
            model_name="transactionlog",
            name="destination_balance_after",
            field=models.DecimalField(blank=True, decimal_places=2, editable=False, max_digits=20, null=True),
        ),
        AddIndexConcurrently(
            model_name="transactionlog",
            index=models.Index(
                condition=models.Q(("completed_at__isnull", False)),
                fields=["source_wallet", "completed_at", "batch_index"],
                name="idx_txlogs_source_moved",
            ),
        ),
        AddIndexConcurrently(
            model_name="transactionlog",
            index=models.Index(
                condition=models.Q(("completed_at__isnull", False)),
                fields=["destination_wallet", "completed_at", "batch_index"],
                name="idx_txlogs_destination_moved",
            ),
        ),
    ]
