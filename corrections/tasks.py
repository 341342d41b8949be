"""Celery tasks of corrections: thin, and safe to run twice at once."""

import logging

from celery import shared_task

from corrections.services import corrections_expire

logger = logging.getLogger(__name__)


@shared_task
def expire_corrections() -> int:
    """Every minute from beat: PENDING requests past CORRECTION_EXPIRES_AFTER become EXPIRED."""
    expired = corrections_expire()
    if expired:
        logger.info("expired %d correction request(s) nobody approved in time", expired)
    return expired
