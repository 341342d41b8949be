"""Send a client's events again, to each of its active endpoints that takes
their type, since a time.

python manage.py resend_events loan-service --since 2026-11-30T05:00:00Z

For a client whose receiver lost events (a bad deploy answered 200 and
dropped them). The events keep their ids (webhook-id), so a receiver that
has one already may drop it. Only events still within EVENTS_RETENTION_DAYS.
"""

from datetime import datetime

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from events.webhooks import events_resend_since
from wallet_project.api import InstantField, option_reader


class Command(BaseCommand):
    help = "Send a client's events since a time again to its active webhook endpoints."

    def add_arguments(self, parser):
        parser.add_argument("client", help="The client's username.")
        # The API's reader of an instant, so that --since takes what `at=` does.
        parser.add_argument(
            "--since", required=True, type=option_reader(InstantField()), metavar="INSTANT",
            help="RFC 3339 with its offset, e.g. 2026-11-30T05:00:00Z.",
        )  # fmt: skip

    def handle(self, *args, client: str, since: datetime, **options):
        try:
            user = get_user_model().objects.get_by_natural_key(client)
        except get_user_model().DoesNotExist:
            raise CommandError(f"No such client: {client}") from None
        events, queued = events_resend_since(client=user, since=since)
        self.stdout.write(f"{events} events of {client} since {since.isoformat()}: {queued} deliveries queued")
