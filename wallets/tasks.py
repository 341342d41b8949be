"""Celery tasks of the outbox. Thin: they call wallets.webhooks and
wallets.events, which are safe to run any number of times at once (SKIP
LOCKED, leases), so a task redelivered after a killed worker does no harm."""

import logging

from celery import shared_task
from django.conf import settings

from wallets import events, webhooks

logger = logging.getLogger(__name__)


@shared_task
def deliver_webhooks() -> dict:
    """Every WEBHOOK_DELIVER_EVERY_SECONDS from beat: new events into
    deliveries, then send what is due for at most WEBHOOK_TASK_BUDGET_SECONDS."""
    fanned_out = webhooks.fan_out()
    counts = webhooks.deliver_due(budget_seconds=settings.WEBHOOK_TASK_BUDGET_SECONDS)
    if fanned_out or any(counts.values()):
        logger.info("webhooks: %d new deliveries, attempts %s", fanned_out, counts)
    return {"fanned_out": fanned_out, **counts}


@shared_task
def purge_events() -> int:
    """Daily from beat: events (and their deliveries) older than EVENTS_RETENTION_DAYS."""
    deleted = events.events_purge(retention=settings.EVENTS_RETENTION)
    logger.info("events: %d older than %s purged", deleted, settings.EVENTS_RETENTION)
    return deleted
