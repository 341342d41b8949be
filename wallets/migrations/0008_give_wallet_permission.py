from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("wallets", "0007_events_and_webhooks"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="wallet",
            options={
                "ordering": ["created_at"],
                "permissions": [
                    ("freeze_wallet", "Can freeze and unfreeze wallets"),
                    ("view_all_wallets", "Can read every API client's wallets (auditors)"),
                    ("give_wallet", "Can give an unclaimed wallet to its API client"),
                ],
            },
        ),
    ]
