"""Each client's exposure per currency (transfers.models.ClientExposure),
counted from the ledger as it stands: deposits minus withdrawals that moved
money, by the owner of the customer wallet. The aggregate only reads
transaction_logs (no lock that stops a writer). A deposit that a web process
still on the previous release settles while this runs is not counted: the
exposure reads low by what was deposited during the deploy
(docs/operations.md, "Client exposure")."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("transfers", "0011_give_wallet_permission"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    # One statement: an exposure row per (owner, currency) that ever took a deposit or made a withdrawal.
    COUNT_FROM_LEDGER = """
    INSERT INTO client_exposures (client_id, currency, amount, updated_at)
    SELECT w.owner_id, w.currency, sum(CASE l.type WHEN 'DEPOSIT' THEN l.amount ELSE -l.amount END), now()
      FROM transaction_logs l
      JOIN wallets w ON w.id = CASE l.type WHEN 'DEPOSIT' THEN l.destination_wallet_id ELSE l.source_wallet_id END
     WHERE l.type IN ('DEPOSIT', 'WITHDRAWAL') AND l.status IN ('COMPLETED', 'REVERSED')
     GROUP BY w.owner_id, w.currency
    """

    operations = [
        migrations.CreateModel(
            name="ClientExposure",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("currency", models.CharField(max_length=3)),
                ("amount", models.DecimalField(decimal_places=2, default=0, max_digits=20)),
                ("updated_at", models.DateTimeField(auto_now=True)),
                (
                    "client",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="exposures",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "db_table": "client_exposures",
                "constraints": [
                    models.UniqueConstraint(
                        fields=("client", "currency"), name="transfers_clientexposure_unique_client_currency"
                    )
                ],
            },
        ),
        migrations.RunSQL(COUNT_FROM_LEDGER, migrations.RunSQL.noop),
    ]
