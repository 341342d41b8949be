"""The corrections' figures on /metrics, read at scrape time from
PostgreSQL: how many requests wait for a second person, and how long the
oldest has waited. Registered from CorrectionsConfig.ready(); the alert
WalletCorrectionsWaiting (ops/prometheus/alerts.yml) compares the age with
wallet_corrections_waiting_alert_seconds (CORRECTION_WAITING_ALERT_SECONDS)."""

import logging

from django.conf import settings
from django.db import DatabaseError
from prometheus_client.core import GaugeMetricFamily

from corrections.selectors import pending_summary

logger = logging.getLogger(__name__)


def corrections_state(up: dict[str, bool]):
    yield GaugeMetricFamily(
        "wallet_corrections_waiting_alert_seconds",
        "Age at which a correction request waiting for approval pages (CORRECTION_WAITING_ALERT_SECONDS).",
        value=settings.CORRECTION_WAITING_ALERT_SECONDS,
    )
    if not up["database"]:
        return
    try:
        count, oldest_age = pending_summary()
    except DatabaseError as exc:
        logger.warning("metrics: correction requests unavailable: %s", exc)
        return
    yield GaugeMetricFamily(
        "wallet_corrections_pending", "Correction requests waiting for a second person's approval.", value=count
    )
    yield GaugeMetricFamily(
        "wallet_corrections_pending_oldest_age_seconds",
        "How long the oldest correction request has waited for approval (0 when none waits).",
        value=oldest_age.total_seconds() if oldest_age else 0.0,
    )
