"""The ledger chain's order as an index: each tick of the chain reads the
finished logs after its head in that order (reconciliation/chain.py,
ORDER_TXID): the transaction that finished them, 0 for the logs finished
before transfers/0016 (so they need no backfill), then the id. Partial
(PENDING logs are not in the chain yet) and built CONCURRENTLY, so writes to
transaction_logs go on while it is built."""

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
                "ON transaction_logs ((coalesce(finished_txid, 0)), id) WHERE status <> 'PENDING'"
            ),
            reverse_sql="DROP INDEX CONCURRENTLY IF EXISTS idx_txlogs_chain_order",
        ),
    ]
