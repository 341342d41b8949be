"""Celery tasks of the outbox. Thin: they call events.webhooks and
events.outbox, which are safe to run any number of times at once (SKIP
LOCKED, leases), so a task redelivered after a killed worker does no harm.

Each keeps the name it was registered under while it lived in wallets/tasks.py:
a message already queued under it (or sent by a beat of the previous release
during a deploy) still finds its task, and the routes and beat schedule in
settings name it so."""

import logging

from celery import shared_task
from django.conf import settings

from events import outbox, webhooks

logger = logging.getLogger(__name__)


@shared_task(name="wallets.tasks.deliver_webhooks")
def deliver_webhooks() -> dict:
    """Every WEBHOOK_DELIVER_EVERY_SECONDS from beat: new events into
    deliveries, then send what is due for at most WEBHOOK_TASK_BUDGET_SECONDS."""
    fanned_out = webhooks.fan_out()
    counts = webhooks.deliver_due(budget_seconds=settings.WEBHOOK_TASK_BUDGET_SECONDS)
    if fanned_out or any(counts.values()):
        logger.info("webhooks: %d new deliveries, attempts %s", fanned_out, counts)
    return {"fanned_out": fanned_out, **counts}


@shared_task(name="wallets.tasks.purge_events")
def purge_events() -> int:
    """Daily from beat: events (and their deliveries) older than EVENTS_RETENTION_DAYS."""
    deleted = outbox.events_purge(retention=settings.EVENTS_RETENTION)
    logger.info("events: %d older than %s purged", deleted, settings.EVENTS_RETENTION)
    return deleted
