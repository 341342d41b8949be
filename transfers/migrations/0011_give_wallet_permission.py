"""Finance gives a wallet that `unclaimed-wallets` holds to its API client
(wallets.services.wallet_give_to_client): it decides who may move the
wallet's money, so the smaller group, as for reversals."""

import importlib

from django.db import migrations

event_admin = importlib.import_module("transfers.migrations.0009_event_admin_permissions")

PERMISSIONS = [("wallets", "give_wallet")]
GROUPS = ("Finance",)


def forwards(apps, schema_editor):
    event_admin.grant(apps, PERMISSIONS, GROUPS)


def backwards(apps, schema_editor):
    event_admin.take_back(apps, PERMISSIONS, GROUPS)


class Migration(migrations.Migration):
    dependencies = [
        ("transfers", "0010_transfer_batches"),
        ("wallets", "0008_give_wallet_permission"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
