"""Revoke an API key by its prefix; the next request with it is refused (401)
on every web process.

python manage.py revoke_api_key wk_3kf9x2ab
"""

from django.core.management.base import BaseCommand, CommandError

from clients.api_keys import ApiKeyError, api_key_get, api_key_revoke


class Command(BaseCommand):
    help = "Revoke an API key (by the prefix list_api_keys shows). It cannot be undone."

    def add_arguments(self, parser):
        parser.add_argument("prefix")

    def handle(self, *args, prefix: str, **options):
        try:
            api_key = api_key_revoke(api_key=api_key_get(prefix=prefix))
        except ApiKeyError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"Revoked {api_key.prefix} of {api_key.client.get_username()}.")
