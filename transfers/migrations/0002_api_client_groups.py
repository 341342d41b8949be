"""The API client groups. Who may do what is data: an operator puts a client
in a group (manage.py create_api_client --group ...) instead of editing code."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

API_CLIENT_GROUPS = {
    # A client that may only open wallets and move money between them.
    "Transfer client": [
        ("wallets", "add_wallet"),
        ("wallets", "view_wallet"),
        ("transfers", "create_transfer"),
    ],
    # A client that may also move money in and out (e.g. a payment gateway).
    "Treasury client": [
        ("wallets", "add_wallet"),
        ("wallets", "view_wallet"),
        ("transfers", "create_transfer"),
        ("transfers", "create_deposit"),
        ("transfers", "create_withdrawal"),
    ],
    # Read-only, across all clients (internal tools, finance reporting).
    "Auditor": [
        ("wallets", "view_wallet"),
        ("transfers", "view_transactionlog"),
        ("transfers", "view_all_transfers"),
    ],
}


def ensure_permissions(apps):
    # Permissions are normally created after migrate (post_migrate); a data
    # migration that grants them has to create them first.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None


def create_groups(apps, schema_editor, groups=API_CLIENT_GROUPS):
    ensure_permissions(apps)
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, codenames in groups.items():
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.set(
            Permission.objects.get(content_type__app_label=app, codename=codename) for app, codename in codenames
        )


def delete_groups(apps, schema_editor, groups=API_CLIENT_GROUPS):
    apps.get_model("auth", "Group").objects.filter(name__in=groups).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("wallets", "0001_initial"),
        ("transfers", "0001_initial"),
    ]

    operations = [migrations.RunPython(create_groups, delete_groups)]
