"""Tenancy: every customer wallet gets an owner, the API client that opened it.

The owner column is added nullable here; transfers' migration 0008 gives every
existing customer wallet its owner (it reads the ledger, which this app knows
nothing of, and declares run_before 0004), and 0004 then requires one.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("wallets", "0002_list_indexes"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="wallet",
            options={
                "ordering": ["created_at"],
                "permissions": [
                    ("freeze_wallet", "Can freeze and unfreeze wallets"),
                    ("view_all_wallets", "Can read every API client's wallets (auditors)"),
                ],
            },
        ),
        migrations.AddField(
            model_name="wallet",
            name="owner",
            field=models.ForeignKey(
                blank=True,
                help_text="The API client that opened the wallet (none for a settlement wallet).",
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="wallets",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
    ]
