"""Every customer wallet has an owner, and one wallet per (owner, userId,
currency): two clients may use the same userId for different people."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("wallets", "0003_wallet_owner"),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name="wallet",
            name="wallets_wallet_one_per_user_and_currency",
        ),
        migrations.AddConstraint(
            model_name="wallet",
            constraint=models.UniqueConstraint(
                fields=("owner", "user_id", "currency"),
                name="wallets_wallet_one_per_owner_user_and_currency",
                violation_error_code="wallet_exists",
            ),
        ),
        migrations.AddConstraint(
            model_name="wallet",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    models.Q(("kind", "CUSTOMER"), ("owner__isnull", False)),
                    models.Q(("kind", "SETTLEMENT"), ("owner__isnull", True)),
                    _connector="OR",
                ),
                name="wallets_wallet_client_matches_kind",
            ),
        ),
    ]
