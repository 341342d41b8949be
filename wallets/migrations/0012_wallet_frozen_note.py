"""What the person who froze a wallet wrote (docs/operations.md, "The admin,
for support staff"). A column with a constant default, which PostgreSQL
records in the catalogue: no row is rewritten, and a process of the previous
release, which never names the column, keeps working during a deploy."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("wallets", "0011_suspense_wallets_and_freeze_reasons"),
    ]

    operations = [
        migrations.AddField(
            model_name="wallet",
            name="frozen_note",
            field=models.TextField(blank=True, db_default="", default="", editable=False),
        ),
    ]
