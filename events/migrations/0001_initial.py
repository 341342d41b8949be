"""The event outbox and webhook delivery move from wallets to this app
without touching a row: the tables (events, webhook_endpoints,
webhook_deliveries), the sequence events_seq, the indexes and the
constraints stay as wallets' migrations made them, and keep their names
(db_table, and the constraints named wallets_...), so that no table is
renamed under a running process of the previous release during a deploy.
This migration only tells Django's state that the models are here now;
wallets' 0017 takes them out of wallets' state and moves their content types
and permissions (group grants kept).
"""

import django.contrib.postgres.fields
import django.db.models.deletion
import django.db.models.functions.comparison
import django.db.models.functions.datetime
import django.utils.timezone
import uuid
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
        # The tables events, webhook_endpoints and webhook_deliveries, and the
        # sequence events_seq, are made by wallets' migrations 0007 to 0016.
        ("wallets", "0016_wallet_held"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            # The tables exist (made by wallets' migrations): Django's state only.
            database_operations=[],
            state_operations=[
                migrations.CreateModel(
                    name='Event',
                    fields=[
                        ('id', models.UUIDField(db_default=models.Func(function='gen_random_uuid'), default=uuid.uuid4, primary_key=True, serialize=False)),
                        ('seq', models.BigIntegerField(db_default=models.Func(models.Value('events_seq'), function='nextval'), editable=False)),
                        ('type', models.CharField(choices=[('transfer.completed', 'Transfer Completed'), ('transfer.failed', 'Transfer Failed'), ('transfer.reversed', 'Transfer Reversed'), ('deposit.completed', 'Deposit Completed'), ('deposit.failed', 'Deposit Failed'), ('withdrawal.completed', 'Withdrawal Completed'), ('withdrawal.failed', 'Withdrawal Failed'), ('batch.finished', 'Batch Finished'), ('hold.created', 'Hold Created'), ('hold.captured', 'Hold Captured'), ('hold.voided', 'Hold Voided'), ('hold.expired', 'Hold Expired'), ('hold.extended', 'Hold Extended'), ('wallet.frozen', 'Wallet Frozen'), ('wallet.unfrozen', 'Wallet Unfrozen'), ('wallet.tier_changed', 'Wallet Tier Changed'), ('ledger.checkpoint', 'Ledger Checkpoint')], max_length=32)),
                        ('data', models.JSONField(help_text='The object as the API showed it to this client when the change committed.')),
                        ('created_at', models.DateTimeField(db_default=django.db.models.functions.datetime.Now(), default=django.utils.timezone.now)),
                        ('txid', models.BigIntegerField(db_default=django.db.models.functions.comparison.Cast(django.db.models.functions.comparison.Cast(models.Func(function='pg_current_xact_id'), models.TextField()), models.BigIntegerField()), editable=False, help_text='The id of the database transaction that wrote the event.')),
                        ('client', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='events', to=settings.AUTH_USER_MODEL)),
                    ],
                    options={
                        'db_table': 'events',
                        'ordering': ['txid', 'seq'],
                        'permissions': [('resend_event', 'Can send events to webhook endpoints again')],
                    },
                ),
                migrations.CreateModel(
                    name='WebhookEndpoint',
                    fields=[
                        ('id', models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                        ('url', models.URLField(max_length=2000)),
                        ('event_types', django.contrib.postgres.fields.ArrayField(base_field=models.CharField(choices=[('transfer.completed', 'Transfer Completed'), ('transfer.failed', 'Transfer Failed'), ('transfer.reversed', 'Transfer Reversed'), ('deposit.completed', 'Deposit Completed'), ('deposit.failed', 'Deposit Failed'), ('withdrawal.completed', 'Withdrawal Completed'), ('withdrawal.failed', 'Withdrawal Failed'), ('batch.finished', 'Batch Finished'), ('hold.created', 'Hold Created'), ('hold.captured', 'Hold Captured'), ('hold.voided', 'Hold Voided'), ('hold.expired', 'Hold Expired'), ('hold.extended', 'Hold Extended'), ('wallet.frozen', 'Wallet Frozen'), ('wallet.unfrozen', 'Wallet Unfrozen'), ('wallet.tier_changed', 'Wallet Tier Changed'), ('ledger.checkpoint', 'Ledger Checkpoint')], max_length=32), size=None)),
                        ('secret_encrypted', models.TextField(editable=False)),
                        ('is_active', models.BooleanField(default=True)),
                        ('disabled_at', models.DateTimeField(blank=True, editable=False, null=True)),
                        ('disabled_reason', models.TextField(blank=True, editable=False)),
                        ('failing_since', models.DateTimeField(blank=True, editable=False, null=True)),
                        ('last_attempt_at', models.DateTimeField(blank=True, editable=False, null=True)),
                        ('last_status_code', models.PositiveIntegerField(blank=True, editable=False, null=True)),
                        ('last_error', models.TextField(blank=True, editable=False)),
                        ('cursor_txid', models.BigIntegerField(editable=False)),
                        ('cursor_seq', models.BigIntegerField(default=0, editable=False)),
                        ('created_at', models.DateTimeField(default=django.utils.timezone.now, editable=False)),
                        ('client', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='webhook_endpoints', to=settings.AUTH_USER_MODEL)),
                    ],
                    options={
                        'db_table': 'webhook_endpoints',
                        'ordering': ['created_at'],
                    },
                ),
                migrations.CreateModel(
                    name='WebhookDelivery',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('status', models.CharField(choices=[('PENDING', 'Pending'), ('DELIVERED', 'Delivered')], default='PENDING', max_length=16)),
                        ('attempts', models.PositiveIntegerField(default=0)),
                        ('next_attempt_at', models.DateTimeField(default=django.utils.timezone.now)),
                        ('lease', models.UUIDField(blank=True, null=True)),
                        ('last_attempt_at', models.DateTimeField(blank=True, null=True)),
                        ('last_status_code', models.PositiveIntegerField(blank=True, null=True)),
                        ('last_error', models.TextField(blank=True)),
                        ('delivered_at', models.DateTimeField(blank=True, null=True)),
                        ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                        ('event', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='deliveries', to='events.event')),
                        ('endpoint', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='deliveries', to='events.webhookendpoint')),
                    ],
                    options={
                        'verbose_name_plural': 'webhook deliveries',
                        'db_table': 'webhook_deliveries',
                        'ordering': ['-created_at'],
                    },
                ),
                migrations.AddIndex(
                    model_name='event',
                    index=models.Index(fields=['client', 'txid', 'seq'], name='idx_events_client_cursor'),
                ),
                migrations.AddIndex(
                    model_name='event',
                    index=models.Index(fields=['created_at'], name='idx_events_created_at'),
                ),
                migrations.AddConstraint(
                    model_name='event',
                    constraint=models.CheckConstraint(condition=models.Q(('type__in', ['transfer.completed', 'transfer.failed', 'transfer.reversed', 'deposit.completed', 'deposit.failed', 'withdrawal.completed', 'withdrawal.failed', 'batch.finished', 'hold.created', 'hold.captured', 'hold.voided', 'hold.expired', 'hold.extended', 'wallet.frozen', 'wallet.unfrozen', 'wallet.tier_changed', 'ledger.checkpoint'])), name='wallets_event_type_known'),
                ),
                migrations.AddIndex(
                    model_name='webhookendpoint',
                    index=models.Index(fields=['client', 'created_at'], name='idx_webhook_endpoints_client'),
                ),
                migrations.AddConstraint(
                    model_name='webhookendpoint',
                    constraint=models.CheckConstraint(condition=models.Q(('url__startswith', 'https://'), ('url__startswith', 'http://'), _connector='OR'), name='wallets_webhookendpoint_url_http'),
                ),
                migrations.AddIndex(
                    model_name='webhookdelivery',
                    index=models.Index(condition=models.Q(('status', 'PENDING')), fields=['next_attempt_at'], name='idx_webhook_deliveries_due'),
                ),
                migrations.AddIndex(
                    model_name='webhookdelivery',
                    index=models.Index(fields=['endpoint', '-created_at'], name='idx_webhook_deliveries_recent'),
                ),
                migrations.AddIndex(
                    model_name='webhookdelivery',
                    index=models.Index(condition=models.Q(('lease__isnull', False), ('status', 'PENDING')), fields=['endpoint'], name='idx_webhook_deliveries_leased'),
                ),
                migrations.AddConstraint(
                    model_name='webhookdelivery',
                    constraint=models.UniqueConstraint(fields=('endpoint', 'event'), name='wallets_webhookdelivery_once_per_endpoint'),
                ),
            ],
        ),
    ]
