"""Reconciliation's figures on /metrics, read at scrape time from where they
live: PENDING transactions from PostgreSQL, the last runs and ledger check from
Redis (reconciliation/records.py). Registered with the ground floor's
/metrics from ReconciliationConfig.ready(); the alert rules
(ops/prometheus/alerts.yml) are written against these names."""

import logging

from django.conf import settings
from django.db import DatabaseError
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from reconciliation import records, services
from wallet_project.redis_health import REDIS_ERRORS

logger = logging.getLogger(__name__)


def reconciliation_state(up: dict[str, bool]):
    """The metric families of reconciliation's state. `up` says whether
    PostgreSQL and Redis answered this scrape: a dependency that is down, or
    goes down between the check and the read, drops its figures."""
    yield GaugeMetricFamily(
        "wallet_reconcile_pending_after_seconds",
        "Age at which reconciliation takes over a PENDING log (RECONCILE_PENDING_AFTER_SECONDS).",
        value=settings.RECONCILE_PENDING_AFTER.total_seconds(),
    )
    if up["database"]:
        try:
            yield from _pending(services.pending_summary())
        except DatabaseError as exc:
            logger.warning("metrics: PENDING summary unavailable: %s", exc)
    if up["redis"]:
        try:
            yield from _records(records.read())
        except REDIS_ERRORS as exc:
            logger.warning("metrics: reconciliation records unavailable: %s", exc)


def _pending(summary: dict):
    yield GaugeMetricFamily("wallet_pending_transfers", "PENDING logs now.", value=summary["count"])
    age = summary["oldest_age"]
    yield GaugeMetricFamily(
        "wallet_pending_oldest_age_seconds",
        "Age of the oldest PENDING log (0 when there is none).",
        value=age.total_seconds() if age else 0.0,
    )


def _records(recorded: records.Recorded):
    runs = CounterMetricFamily(
        "wallet_reconciliation_runs",
        "Reconciliation runs (beat, `manage.py reconcile`, the admin's re-drive): result error when the run "
        "stopped or a log could not be settled.",
        labels=["result"],
    )
    for result, count in recorded.runs.items():
        runs.add_metric([result], count)
    yield runs
    resolved = CounterMetricFamily(
        "wallet_reconciled_transfers",
        "PENDING logs reconciliation re-drove, by what became of them.",
        labels=["outcome"],
    )
    for outcome, count in recorded.resolved.items():
        resolved.add_metric([outcome], count)
    yield resolved
    if recorded.last_run_at is not None:
        yield GaugeMetricFamily(
            "wallet_reconciliation_last_run_timestamp_seconds",
            "When the last reconciliation run finished (Unix time).",
            value=recorded.last_run_at,
        )
    if recorded.ledger_verified_at is not None:
        yield GaugeMetricFamily(
            "wallet_ledger_last_verify_timestamp_seconds",
            "When verify_ledger last finished (Unix time).",
            value=recorded.ledger_verified_at,
        )
        yield GaugeMetricFamily(
            "wallet_ledger_discrepancies",
            "Discrepancies the last verify_ledger found (0: the books balance), with what the last check "
            "of the ledger chain found.",
            value=recorded.ledger_discrepancies + recorded.chain_discrepancies,
        )
