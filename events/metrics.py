"""Webhook figures on /metrics, read at scrape time from PostgreSQL.
Registered with the ground floor's /metrics from EventsConfig.ready(); the
alert rules (ops/prometheus/alerts.yml) are written against these names."""

import logging

from django.conf import settings
from django.db import DatabaseError, connection
from prometheus_client.core import GaugeMetricFamily

logger = logging.getLogger(__name__)

# One statement, one snapshot. "held": pending for an endpoint that is
# disabled (the client's to fix, not on-call's); "retrying": pending after a
# failed attempt; "pending": not yet attempted.
_STATE = """
SELECT
  count(*) FILTER (WHERE d.status = 'DELIVERED'),
  count(*) FILTER (WHERE d.status = 'PENDING' AND e.is_active AND d.attempts = 0),
  count(*) FILTER (WHERE d.status = 'PENDING' AND e.is_active AND d.attempts > 0),
  count(*) FILTER (WHERE d.status = 'PENDING' AND NOT e.is_active),
  extract(epoch FROM now() - min(ev.created_at) FILTER (WHERE d.status = 'PENDING' AND e.is_active)),
  (SELECT count(*) FROM webhook_endpoints WHERE NOT is_active)
FROM webhook_deliveries d
JOIN webhook_endpoints e ON e.id = d.endpoint_id
JOIN events ev ON ev.id = d.event_id
"""


def webhook_state(up: dict[str, bool]):
    """The metric families of webhook delivery: deliveries by outcome, the
    age of the oldest undelivered event (to an active endpoint), disabled
    endpoints, and the alert's configured bound."""
    yield GaugeMetricFamily(
        "wallet_webhook_undelivered_alert_seconds",
        "Age of the oldest undelivered event at which on-call is paged (WEBHOOK_UNDELIVERED_ALERT_SECONDS).",
        value=settings.WEBHOOK_UNDELIVERED_ALERT_SECONDS,
    )
    if not up["database"]:
        return
    try:
        with connection.cursor() as cursor:
            cursor.execute(_STATE)
            delivered, pending, retrying, held, oldest, disabled = cursor.fetchone()
    except DatabaseError as exc:
        logger.warning("metrics: webhook state unavailable: %s", exc)
        return
    deliveries = GaugeMetricFamily(
        "wallet_webhook_deliveries",
        "Webhook deliveries within the event retention, by outcome: delivered, pending (not attempted yet), "
        "retrying (failed, will retry), held (its endpoint is disabled).",
        labels=["outcome"],
    )
    for outcome, count in (("delivered", delivered), ("pending", pending), ("retrying", retrying), ("held", held)):
        deliveries.add_metric([outcome], count)
    yield deliveries
    yield GaugeMetricFamily(
        "wallet_webhook_oldest_undelivered_age_seconds",
        "Age of the oldest event not yet delivered to an active endpoint (0 when there is none).",
        value=float(oldest or 0),
    )
    yield GaugeMetricFamily("wallet_webhook_endpoints_disabled", "Webhook endpoints disabled now.", value=disabled)
