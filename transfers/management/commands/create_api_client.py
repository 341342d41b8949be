"""Create (or update) an API client and print its token.

python manage.py create_api_client loan-service --group "Transfer client"
"""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from rest_framework.authtoken.models import Token


class Command(BaseCommand):
    help = "Create an API client (a user without a password) in a group, and print its token."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument(
            "--group",
            action="append",
            default=[],
            help='"Transfer client", "Treasury client" or "Auditor"; repeatable.',
        )

    def handle(self, *args, name: str, group: list[str], **options):
        groups = list(Group.objects.filter(name__in=group))
        missing = set(group) - {g.name for g in groups}
        if missing:
            raise CommandError(f"No such group: {', '.join(sorted(missing))}")
        client, created = get_user_model().objects.get_or_create(username=name)
        if created:
            client.set_unusable_password()
            client.save()
        client.groups.add(*groups)
        token, _ = Token.objects.get_or_create(user=client)
        self.stdout.write(token.key)
