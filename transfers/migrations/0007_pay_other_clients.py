"""Tenancy: paying into another client's wallet is a permission of its own,
held by the new "Disbursement client" group; auditors read every wallet."""

import importlib

from django.db import migrations

api_client_groups = importlib.import_module("transfers.migrations.0002_api_client_groups")

GROUPS = {
    # A lender's loan-disbursement service: pays out of its own pool wallet
    # into borrowers' wallets that other clients (a mobile backend) opened.
    "Disbursement client": [
        ("wallets", "add_wallet"),
        ("wallets", "view_wallet"),
        ("transfers", "create_transfer"),
        ("transfers", "pay_other_clients"),
    ],
    "Auditor": [
        ("wallets", "view_wallet"),
        ("wallets", "view_all_wallets"),
        ("transfers", "view_transactionlog"),
        ("transfers", "view_all_transfers"),
    ],
}
# What the Auditor group held before, for the way back.
PREVIOUS = {"Auditor": api_client_groups.API_CLIENT_GROUPS["Auditor"]}


def forwards(apps, schema_editor):
    api_client_groups.create_groups(apps, schema_editor, groups=GROUPS)


def backwards(apps, schema_editor):
    api_client_groups.delete_groups(apps, schema_editor, groups={"Disbursement client": []})
    api_client_groups.create_groups(apps, schema_editor, groups=PREVIOUS)


class Migration(migrations.Migration):
    dependencies = [
        ("transfers", "0006_fingerprint_and_digest_names"),
        ("wallets", "0003_wallet_owner"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="transactionlog",
            options={
                "ordering": ["-created_at"],
                "permissions": [
                    ("create_transfer", "Can move money between wallets (POST /api/transfer)"),
                    ("create_deposit", "Can deposit into wallets"),
                    ("create_withdrawal", "Can withdraw from wallets"),
                    ("view_all_transfers", "Can see every API client's transactions"),
                    ("pay_other_clients", "Can transfer into other API clients' wallets"),
                    ("reconcile_transactionlog", "Can re-drive PENDING transactions"),
                    ("reverse_transactionlog", "Can reverse completed transfers"),
                ],
            },
        ),
        migrations.RunPython(forwards, backwards),
    ]
