"""Each movement's balances after it (transfers/engine.py writes them) and the
two indexes a balance as of an instant and a statement read.

Safe on a live ledger (docs/operations.md, "Schema changes on a live ledger"):
- the columns are nullable without a default: no table rewrite, only a
  moment's lock, and one that gives up after a second (lock_timeout) rather
  than queue every writer behind a long transaction; run it again then;
- the indexes are built CONCURRENTLY, outside a transaction, so writes go
  on; an INVALID one left by an interrupted build is dropped first, so the
  migration can simply be run again;
- the logs settled before stay NULL there (transfers/statements.py sums for
  them), and an older web process that does not know the columns keeps
  settling: its logs are NULL there too, read as the old ones are.
"""

from django.db import migrations, models

SOURCE_INDEX = "idx_txlogs_source_moved"
DESTINATION_INDEX = "idx_txlogs_destination_moved"


def build_index(name: str, column: str) -> list[str]:
    return [
        f"DROP INDEX CONCURRENTLY IF EXISTS {name}",
        f"CREATE INDEX CONCURRENTLY {name} ON transaction_logs ({column}, completed_at, batch_index) "
        "WHERE completed_at IS NOT NULL",
    ]


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("transfers", "0014_daily_totals"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(
                    sql=[
                        "SET lock_timeout = '1s'",
                        "ALTER TABLE transaction_logs "
                        "ADD COLUMN IF NOT EXISTS source_balance_after numeric(20, 2) NULL, "
                        "ADD COLUMN IF NOT EXISTS destination_balance_after numeric(20, 2) NULL",
                        "RESET lock_timeout",
                        *build_index(SOURCE_INDEX, "source_wallet_id"),
                        *build_index(DESTINATION_INDEX, "destination_wallet_id"),
                    ],
                    reverse_sql=[
                        f"DROP INDEX CONCURRENTLY IF EXISTS {SOURCE_INDEX}",
                        f"DROP INDEX CONCURRENTLY IF EXISTS {DESTINATION_INDEX}",
                        "ALTER TABLE transaction_logs DROP COLUMN IF EXISTS source_balance_after, "
                        "DROP COLUMN IF EXISTS destination_balance_after",
                    ],
                ),
            ],
            state_operations=[
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
                migrations.AddIndex(
                    model_name="transactionlog",
                    index=models.Index(
                        condition=models.Q(("completed_at__isnull", False)),
                        fields=["source_wallet", "completed_at", "batch_index"],
                        name=SOURCE_INDEX,
                    ),
                ),
                migrations.AddIndex(
                    model_name="transactionlog",
                    index=models.Index(
                        condition=models.Q(("completed_at__isnull", False)),
                        fields=["destination_wallet", "completed_at", "batch_index"],
                        name=DESTINATION_INDEX,
                    ),
                ),
            ],
        ),
    ]
