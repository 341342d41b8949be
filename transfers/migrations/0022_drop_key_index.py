"""transaction_logs' index on idempotency_key alone dropped: only the admin's
search by key across clients read it, and it now looks the key up under each
client in the (client, key) unique index (transfers/admin.py); a movement
writes two index entries fewer, one at its insert and one at its settle
(docs/design.md, "The indexes of transaction_logs"; bench/HISTORY.md,
2026-12-07 12:12). Backwards, the index is built again.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("transfers", "0021_partial_indexes_of_logs"),
    ]

    operations = [
        migrations.RemoveIndex(model_name="transactionlog", name="idx_txlogs_idempotency_key"),
    ]
