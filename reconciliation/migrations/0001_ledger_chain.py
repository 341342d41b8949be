"""The ledger chain's table, append-only (reconciliation/models.py). A new
table: nothing on a live ledger is locked."""

import django.db.models.functions.datetime
from django.db import migrations, models

APPEND_ONLY = """
CREATE FUNCTION ledger_chain_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger_chain is append-only: % of link % refused', TG_OP, OLD.position
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER ledger_chain_append_only
    BEFORE UPDATE OR DELETE ON ledger_chain
    FOR EACH ROW EXECUTE FUNCTION ledger_chain_append_only();
"""

REVERSE = """
DROP TRIGGER IF EXISTS ledger_chain_append_only ON ledger_chain;
DROP FUNCTION IF EXISTS ledger_chain_append_only();
"""


class Migration(migrations.Migration):
    initial = True

    dependencies = []

    operations = [
        migrations.CreateModel(
            name="ChainLink",
            fields=[
                (
                    "position",
                    models.BigIntegerField(
                        help_text="1 for the first finished log, then 2, 3, ...", primary_key=True, serialize=False
                    ),
                ),
                ("log_id", models.UUIDField(help_text="The transaction log this link covers.", unique=True)),
                ("txid", models.BigIntegerField()),
                ("hash", models.BinaryField(max_length=32)),
                ("chained_at", models.DateTimeField(db_default=django.db.models.functions.datetime.Now())),
            ],
            options={
                "db_table": "ledger_chain",
                "ordering": ["position"],
            },
        ),
        migrations.RunSQL(sql=APPEND_ONLY, reverse_sql=REVERSE),
    ]
