"""The id of the database transaction that finished each log (docs/operations.md,
"A provable history"): the ledger chain appends logs in this order, and only
those whose transaction is older than every transaction still running, so a
slow committer never lands behind the chain's head (reconciliation/chain.py).

A column of the database alone: a trigger fills it when a log leaves PENDING
(or is written already finished), so no code path, Django's or raw SQL's, can
forget it, and the settle statement sends nothing more. The model does not
name it, so a save() of a log in memory never writes it back.

Safe on a live ledger: a nullable column without a default (no rewrite); the
trigger's creation holds its lock for an instant. Logs finished before this
migration keep NULL: the chain orders them as 0, first, and nothing is
backfilled (reconciliation/chain.py, ORDER_TXID).
"""

from django.db import migrations

FUNCTION = """
CREATE FUNCTION transaction_logs_stamp_finished_txid() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.finished_txid := pg_current_xact_id()::text::bigint;
    RETURN NEW;
END
$$;
"""

TRIGGERS = """
CREATE TRIGGER transaction_logs_finished_txid_on_settle
    BEFORE UPDATE OF status ON transaction_logs
    FOR EACH ROW WHEN (OLD.status = 'PENDING' AND NEW.status <> 'PENDING')
    EXECUTE FUNCTION transaction_logs_stamp_finished_txid();
CREATE TRIGGER transaction_logs_finished_txid_on_insert
    BEFORE INSERT ON transaction_logs
    FOR EACH ROW WHEN (NEW.status <> 'PENDING')
    EXECUTE FUNCTION transaction_logs_stamp_finished_txid();
"""

REVERSE = """
DROP TRIGGER IF EXISTS transaction_logs_finished_txid_on_insert ON transaction_logs;
DROP TRIGGER IF EXISTS transaction_logs_finished_txid_on_settle ON transaction_logs;
DROP FUNCTION IF EXISTS transaction_logs_stamp_finished_txid();
ALTER TABLE transaction_logs DROP COLUMN IF EXISTS finished_txid;
"""


class Migration(migrations.Migration):
    dependencies = [
        ("transfers", "0015_balance_after"),
    ]

    operations = [
        migrations.RunSQL(
            sql=["ALTER TABLE transaction_logs ADD COLUMN finished_txid bigint", FUNCTION, TRIGGERS],
            reverse_sql=REVERSE,
        ),
    ]
