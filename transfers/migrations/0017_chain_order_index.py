"""The ledger chain's order, (finished_txid, id), as an index: each tick of the
chain reads the logs after its head in that order (reconciliation/chain.py).
Partial (PENDING logs have no finished_txid) and built CONCURRENTLY, so writes
to transaction_logs go on while it is built."""

from django.db import migrations


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("transfers", "0016_finished_txid"),
    ]

    operations = [
        migrations.RunSQL(
            sql=(
                "CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_txlogs_chain_order "
                "ON transaction_logs (finished_txid, id) WHERE finished_txid IS NOT NULL"
            ),
            reverse_sql="DROP INDEX CONCURRENTLY IF EXISTS idx_txlogs_chain_order",
        ),
    ]
