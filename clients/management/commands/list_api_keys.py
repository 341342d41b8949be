"""List API keys by prefix: never the keys, which are not stored.

python manage.py list_api_keys [CLIENT] [--all]
"""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from clients.api_keys import api_key_list


def _when(moment) -> str:
    return moment.strftime("%Y-%m-%d %H:%M") if moment else "-"


class Command(BaseCommand):
    help = "List API keys (prefix, client, name, created, last used, revoked); live ones unless --all."

    def add_arguments(self, parser):
        parser.add_argument("client", nargs="?", help="Only this client's keys (username).")
        parser.add_argument("--all", action="store_true", help="Revoked keys too.")

    def handle(self, *args, client: str | None, all: bool, **options):
        user = None
        if client is not None:
            try:
                user = get_user_model().objects.get_by_natural_key(client)
            except get_user_model().DoesNotExist:
                raise CommandError(f"No such client: {client}") from None
        keys = api_key_list(client=user)
        if not all:
            keys = keys.filter(revoked_at__isnull=True)
        rows = [("PREFIX", "CLIENT", "NAME", "CREATED", "LAST USED", "REVOKED")]
        rows += [
            (
                k.prefix,
                k.client.get_username(),
                k.name or "-",
                _when(k.created_at),
                _when(k.last_used_at),
                _when(k.revoked_at),
            )
            for k in keys
        ]
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for row in rows:
            self.stdout.write("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
