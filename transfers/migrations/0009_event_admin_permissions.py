"""Support staff see webhook endpoints, their deliveries and the events, and
may send an event again; Finance holds all of Support's."""

import importlib

from django.db import migrations

api_client_groups = importlib.import_module("transfers.migrations.0002_api_client_groups")

EVENT_PERMISSIONS = [
    ("wallets", "view_event"),
    ("wallets", "resend_event"),
    ("wallets", "view_webhookendpoint"),
    ("wallets", "view_webhookdelivery"),
]
GROUPS = ("Support", "Finance")


def grant(apps, permissions, groups):
    """Add `permissions` ((app_label, codename) pairs) to the named groups."""
    api_client_groups.ensure_permissions(apps)
    Group, Permission = apps.get_model("auth", "Group"), apps.get_model("auth", "Permission")
    found = [Permission.objects.get(content_type__app_label=a, codename=c) for a, c in permissions]
    for group in Group.objects.filter(name__in=groups):
        group.permissions.add(*found)


def take_back(apps, permissions, groups):
    Group, Permission = apps.get_model("auth", "Group"), apps.get_model("auth", "Permission")
    found = [Permission.objects.get(content_type__app_label=a, codename=c) for a, c in permissions]
    for group in Group.objects.filter(name__in=groups):
        group.permissions.remove(*found)


def forwards(apps, schema_editor):
    grant(apps, EVENT_PERMISSIONS, GROUPS)


def backwards(apps, schema_editor):
    take_back(apps, EVENT_PERMISSIONS, GROUPS)


class Migration(migrations.Migration):
    dependencies = [
        ("transfers", "0008_wallet_owners"),
        ("wallets", "0007_events_and_webhooks"),
    ]

    # It grants the permissions under their first app label, wallets: it must
    # run while the models are still in wallets' state (they moved to the
    # events app in wallets' 0017, which renames the grants' content types).
    run_before = [("wallets", "0017_keys_and_events_move_to_their_apps")]

    operations = [migrations.RunPython(forwards, backwards)]
