"""Send a client's events again, to each of its active endpoints that takes
their type, since a time.

python manage.py resend_events loan-service --since 2026-11-30T05:00:00Z

For a client whose receiver lost events (a bad deploy answered 200 and
dropped them). The events keep their ids (webhook-id), so a receiver that
has one already may drop it. Only events still within EVENTS_RETENTION_DAYS.
"""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils.dateparse import parse_datetime

from events.webhooks import events_resend_since


class Command(BaseCommand):
    help = "Send a client's events since a time again to its active webhook endpoints."

    def add_arguments(self, parser):
        parser.add_argument("client", help="The client's username.")
        parser.add_argument("--since", required=True, help="ISO 8601 with a time zone, e.g. 2026-11-30T05:00:00Z.")

    def handle(self, *args, client: str, since: str, **options):
        try:
            user = get_user_model().objects.get_by_natural_key(client)
        except get_user_model().DoesNotExist:
            raise CommandError(f"No such client: {client}") from None
        moment = parse_datetime(since)
        if moment is None or moment.tzinfo is None:
            raise CommandError(f"--since must be an ISO 8601 time with a time zone, not {since!r}")
        events, queued = events_resend_since(client=user, since=moment)
        self.stdout.write(f"{events} events of {client} since {moment.isoformat()}: {queued} deliveries queued")
