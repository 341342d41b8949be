"""Create (or update) an API client and print its first API key.

python manage.py create_api_client loan-service --group "Transfer client"

The key is printed once, alone on stdout (scripts read it from there): only
its SHA-256 is kept. A client that already holds a live key gets its groups
updated and no new key; `manage.py issue_api_key` issues a second one to
rotate to.
"""

import importlib

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError

from clients.api_keys import ApiKeyError, api_key_issue, api_key_list
from clients.authentication import staff_refusal

# The data migrations that create API client groups (the groups are data; these
# are their single source), oldest first, and the name of each one's mapping
# group -> permissions. A migration that adds a group is added here.
GROUP_MIGRATIONS = {"0002_api_client_groups": "API_CLIENT_GROUPS", "0007_pay_other_clients": "GROUPS"}


def api_client_group_names() -> list[str]:
    """The API client groups the migrations create, in the order they were added: ["Transfer client", ...]."""
    names: dict[str, None] = {}
    for migration, mapping in GROUP_MIGRATIONS.items():
        names.update(dict.fromkeys(getattr(importlib.import_module(f"transfers.migrations.{migration}"), mapping)))
    return list(names)


class Command(BaseCommand):
    help = "Create an API client (a user without a password) in a group, and print its first API key."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument(
            "--group",
            action="append",
            default=[],
            help=", ".join(f'"{group}"' for group in api_client_group_names()) + "; repeatable.",
        )

    def handle(self, *args, name: str, group: list[str], **options):
        groups = list(Group.objects.filter(name__in=group))
        missing = set(group) - {g.name for g in groups}
        if missing:
            known = ", ".join(f'"{name}"' for name in Group.objects.order_by("name").values_list("name", flat=True))
            raise CommandError(f"No such group: {', '.join(sorted(missing))}. The groups are: {known}.")
        client, created = get_user_model().objects.get_or_create(username=name)
        # Before its groups change: a person's account is not made a client.
        if refusal := staff_refusal(client):
            raise CommandError(refusal)
        if created:
            client.set_unusable_password()
            client.save()
        client.groups.add(*groups)
        live = [key.prefix for key in api_key_list(client=client).filter(revoked_at__isnull=True)]
        if live:
            self.stderr.write(
                f"{name} already holds live keys ({', '.join(live)}); "
                "`manage.py issue_api_key` issues another. No key printed."
            )
            return
        try:
            issued = api_key_issue(client=client, name="first key")
        except ApiKeyError as exc:
            raise CommandError(str(exc)) from None
        self.stderr.write(f"API key {issued.api_key.prefix} for {name}, shown once; only its hash is kept:")
        self.stdout.write(issued.key)
