"""Celery tasks of holds. Thin: transfers.holds does the work, safe to run
from two workers at once (SKIP LOCKED) and again after a killed worker
(acks_late: the message runs again; an expired hold is not OPEN any more)."""

import logging

from celery import shared_task

from transfers import holds

logger = logging.getLogger(__name__)


@shared_task
def expire_holds() -> int:
    """Every HOLD_EXPIRE_EVERY_SECONDS from beat, on the holds queue and its
    own worker pool (wallet_project/worker.py): OPEN holds whose expiry has
    come become EXPIRED, with their hold.expired events. An idle tick logs
    nothing (settings.QUIET_TASKS)."""
    expired = holds.holds_expire()
    if expired:
        logger.info("expired %d holds", expired, extra={"event": "holds_expired", "holds": expired})
    return expired
