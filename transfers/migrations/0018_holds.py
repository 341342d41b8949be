"""Holds (docs/api.md, "Holds"): a new table, so nothing on the ledger is
rewritten or locked; and Finance may void an open hold from the admin
(transfers.void_hold), as it may reverse a transfer."""

import importlib
import uuid

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

event_admin = importlib.import_module("transfers.migrations.0009_event_admin_permissions")

PERMISSIONS = [("transfers", "void_hold")]
GROUPS = ("Finance",)


def forwards(apps, schema_editor):
    event_admin.grant(apps, PERMISSIONS, GROUPS)


def backwards(apps, schema_editor):
    event_admin.take_back(apps, PERMISSIONS, GROUPS)


class Migration(migrations.Migration):

    dependencies = [
        ('transfers', '0017_chain_order_index'),
        ('wallets', '0016_wallet_held'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='Hold',
            fields=[
                ('id', models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                ('idempotency_key', models.CharField(max_length=255)),
                ('request_fingerprint', models.CharField(max_length=64)),
                ('body_digest', models.CharField(blank=True, db_default='', default='', editable=False, max_length=64)),
                ('amount', models.DecimalField(decimal_places=2, max_digits=20)),
                ('currency', models.CharField(max_length=3)),
                ('status', models.CharField(choices=[('OPEN', 'Open'), ('CAPTURED', 'Captured'), ('VOIDED', 'Voided'), ('EXPIRED', 'Expired'), ('FAILED', 'Failed')], max_length=16)),
                ('expires_at', models.DateTimeField()),
                ('metadata', models.JSONField(blank=True, default=dict)),
                ('error_code', models.CharField(blank=True, default='', max_length=64)),
                ('error_message', models.TextField(blank=True, default='')),
                ('captured_amount', models.DecimalField(blank=True, decimal_places=2, max_digits=20, null=True)),
                ('end_key', models.CharField(blank=True, default='', max_length=255)),
                ('end_fingerprint', models.CharField(blank=True, default='', max_length=64)),
                ('extend_key', models.CharField(blank=True, default='', max_length=255)),
                ('extend_fingerprint', models.CharField(blank=True, default='', max_length=64)),
                ('end_note', models.TextField(blank=True, default='')),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('updated_at', models.DateTimeField(auto_now=True)),
                ('ended_at', models.DateTimeField(blank=True, null=True)),
                ('client', models.ForeignKey(help_text='The API client that placed the hold.', on_delete=django.db.models.deletion.PROTECT, related_name='holds', to=settings.AUTH_USER_MODEL)),
                ('destination_wallet', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='incoming_holds', to='wallets.wallet')),
                ('source_wallet', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='outgoing_holds', to='wallets.wallet')),
                ('transaction', models.OneToOneField(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='capture_of', to='transfers.transactionlog')),
            ],
            options={
                'db_table': 'holds',
                'ordering': ['-created_at'],
                'permissions': [('void_hold', 'Can void an open hold (admin)')],
                'indexes': [models.Index(condition=models.Q(('status', 'OPEN')), fields=['expires_at'], name='idx_holds_open_expiry'), models.Index(fields=['source_wallet', 'status'], name='idx_holds_source_status'), models.Index(fields=['destination_wallet', 'created_at'], name='idx_holds_destination'), models.Index(fields=['created_at', 'id'], name='idx_holds_created_at')],
                'constraints': [models.UniqueConstraint(fields=('client', 'idempotency_key'), name='transfers_hold_unique_client_key'), models.CheckConstraint(condition=models.Q(('amount__gt', 0)), name='transfers_hold_amount_positive'), models.CheckConstraint(condition=models.Q(('source_wallet', models.F('destination_wallet')), _negated=True), name='transfers_hold_distinct_wallets'), models.CheckConstraint(condition=models.Q(('status__in', ['OPEN', 'CAPTURED', 'VOIDED', 'EXPIRED', 'FAILED'])), name='transfers_hold_status_valid'), models.CheckConstraint(condition=models.Q(models.Q(('status', 'FAILED'), _negated=True), models.Q(models.Q(('error_code', ''), _negated=True), models.Q(('error_message', ''), _negated=True)), _connector='OR'), name='transfers_hold_failed_has_reason'), models.CheckConstraint(condition=models.Q(models.Q(('status', 'CAPTURED'), ('captured_amount__gt', 0), ('captured_amount__lte', models.F('amount')), ('transaction__isnull', False)), models.Q(models.Q(('status', 'CAPTURED'), _negated=True), ('captured_amount__isnull', True), ('transaction__isnull', True)), _connector='OR'), name='transfers_hold_captured_has_transfer'), models.CheckConstraint(condition=models.Q(models.Q(('status__in', ('CAPTURED', 'VOIDED', 'EXPIRED')), ('ended_at__isnull', False)), models.Q(models.Q(('status__in', ('CAPTURED', 'VOIDED', 'EXPIRED')), _negated=True), ('ended_at__isnull', True)), _connector='OR'), name='transfers_hold_ended_at_iff_ended')],
            },
        ),
        migrations.RunPython(forwards, backwards),
    ]
