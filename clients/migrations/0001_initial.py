"""API keys move from wallets to this app without touching a row: the table
(api_keys), its indexes and its constraints stay as wallets' migrations made
them, and keep their names (db_table, and the constraint named
wallets_apikey_...), so that no table is renamed under a running process of
the previous release during a deploy. This migration only tells Django's
state that the model is here now; wallets' 0017 takes it out of wallets'
state and moves its content type and permissions (group grants kept).
"""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
        # The table api_keys is made by wallets' migrations 0005 and 0006.
        ("wallets", "0016_wallet_held"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            # The tables exist (made by wallets' migrations): Django's state only.
            database_operations=[],
            state_operations=[
                migrations.CreateModel(
                    name='ApiKey',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('name', models.CharField(blank=True, help_text="What the key is for, e.g. 'mobile backend, 2026-11'.", max_length=100)),
                        ('prefix', models.CharField(editable=False, max_length=16, unique=True)),
                        ('digest', models.CharField(editable=False, help_text='SHA-256 of the key, hex.', max_length=64, unique=True)),
                        ('created_at', models.DateTimeField(default=django.utils.timezone.now, editable=False)),
                        ('last_used_at', models.DateTimeField(blank=True, editable=False, null=True)),
                        ('revoked_at', models.DateTimeField(blank=True, editable=False, null=True)),
                        ('client', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='api_keys', to=settings.AUTH_USER_MODEL)),
                    ],
                    options={
                        'verbose_name': 'API key',
                        'db_table': 'api_keys',
                        'ordering': ['-created_at'],
                        'indexes': [models.Index(fields=['client', 'revoked_at'], name='idx_api_keys_client')],
                        'constraints': [models.CheckConstraint(condition=models.Q(('digest__regex', '^[0-9a-f]{64}$')), name='wallets_apikey_digest_is_sha256')],
                    },
                ),
            ],
        ),
    ]
