"""wallet.held: what the wallet's OPEN holds reserve (docs/api.md, "Holds").

On a live ledger (docs/operations.md, "Schema changes on a live ledger"): a
column with a constant default, which PostgreSQL keeps in the catalogue (no
row rewritten), and a process of the previous release, which never names
it, inserts 0. The CHECK 0 <= held <= balance (held 0 on a system wallet,
which may go below zero) is added NOT VALID, then validated in its own
transaction, so that the wallets table is not locked while it is scanned."""

from django.db import migrations, models

CHECK_SQL = "held >= 0 AND (held <= balance OR held = 0)"


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("wallets", "0015_hold_events"),
    ]

    operations = [
        migrations.AddField(
            model_name="wallet",
            name="held",
            field=models.DecimalField(db_default=0, decimal_places=2, default=0, editable=False, max_digits=20),
        ),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AddConstraint(
                    model_name="wallet",
                    constraint=models.CheckConstraint(
                        condition=models.Q(
                            ("held__gte", 0),
                            models.Q(("held__lte", models.F("balance")), ("held", 0), _connector="OR"),
                        ),
                        name="wallets_wallet_held_within_balance",
                    ),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    f"ALTER TABLE wallets ADD CONSTRAINT wallets_wallet_held_within_balance CHECK ({CHECK_SQL}) NOT VALID",
                    reverse_sql="ALTER TABLE wallets DROP CONSTRAINT wallets_wallet_held_within_balance",
                ),
                migrations.RunSQL(
                    "ALTER TABLE wallets VALIDATE CONSTRAINT wallets_wallet_held_within_balance",
                    reverse_sql=migrations.RunSQL.noop,
                ),
            ],
        ),
    ]
