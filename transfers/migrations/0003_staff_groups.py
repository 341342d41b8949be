"""The support staff's groups. Who may do what in the admin is data: an
operator makes a person staff and puts them in a group, no code changes.

A staff user in neither group has no permission on wallets or logs, and so
sees nothing of money in the admin.
"""

import importlib

from django.db import migrations

# Same mechanics as the API client groups (create the permissions first, then
# the groups), so reuse them rather than copy them.
api_client_groups = importlib.import_module("transfers.migrations.0002_api_client_groups")

SUPPORT = [
    ("wallets", "view_wallet"),
    ("wallets", "freeze_wallet"),
    ("transfers", "view_transactionlog"),
    ("transfers", "reconcile_transactionlog"),
]

STAFF_GROUPS = {
    # Finds wallets and transactions, freezes and unfreezes wallets, re-drives
    # stuck PENDING transactions and verifies the ledger.
    "Support": SUPPORT,
    # Also reverses a COMPLETED transaction: a movement of money, so a
    # separate, smaller group.
    "Finance": [*SUPPORT, ("transfers", "reverse_transactionlog")],
}


def create_groups(apps, schema_editor):
    api_client_groups.create_groups(apps, schema_editor, groups=STAFF_GROUPS)


def delete_groups(apps, schema_editor):
    api_client_groups.delete_groups(apps, schema_editor, groups=STAFF_GROUPS)


class Migration(migrations.Migration):
    dependencies = [
        ("transfers", "0002_api_client_groups"),
    ]

    operations = [migrations.RunPython(create_groups, delete_groups)]
