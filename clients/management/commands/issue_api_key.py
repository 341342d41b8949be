"""Issue an API key to a client and print it, once.

python manage.py issue_api_key loan-service --name "rotation 2026-11"

The key alone goes to stdout (for a script or a secret store); its prefix to
stderr. A client may hold two live keys: issue the new one, move the client
to it, then `revoke_api_key` the old one.
"""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from clients.api_keys import ApiKeyError, api_key_issue


class Command(BaseCommand):
    help = "Issue an API key to a client; the key is printed once and stored only as a hash."

    def add_arguments(self, parser):
        parser.add_argument("client", help="The client's username.")
        parser.add_argument("--name", default="", help="What the key is for (shown in list_api_keys and the admin).")

    def handle(self, *args, client: str, name: str, **options):
        try:
            user = get_user_model().objects.get_by_natural_key(client)
        except get_user_model().DoesNotExist:
            raise CommandError(f"No such client: {client}") from None
        try:
            issued = api_key_issue(client=user, name=name)
        except ApiKeyError as exc:
            raise CommandError(str(exc)) from None
        self.stderr.write(f"API key {issued.api_key.prefix} for {client}, shown once; only its hash is kept:")
        self.stdout.write(issued.key)
