"""Prometheus metrics, served at GET /metrics to a scraper holding METRICS_TOKEN.

Two kinds, and why:

- What this service's processes did: requests, money movements, replays,
  conflicts, row-lock waits. Counters and histograms, updated in process.
  Granian runs several worker processes; bin/web sets PROMETHEUS_MULTIPROC_DIR,
  where prometheus_client's multiprocess mode has each process write its
  samples to a file, and a scrape, whichever worker answers it, adds up all of
  them.
- The state of the whole service, read when scraped from where it lives, so
  that it is right whichever process or host answers: PENDING logs from
  PostgreSQL; the last reconciliation runs and ledger check from Redis, where
  the Celery worker and the commands record them (reconciliation/records.py);
  whether PostgreSQL and Redis answer. The alert rules
  (ops/prometheus/alerts.yml) are written against these names.

The endpoint is not public: it needs `Authorization: Bearer $METRICS_TOKEN`
and answers 404 while no token is configured.
"""

import hmac
import logging
import os

from django.conf import settings
from django.db import DatabaseError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from wallet_project.health import database_up, redis_up

logger = logging.getLogger(__name__)

# --- what the processes did ----------------------------------------------------------

HTTP_REQUESTS = Counter(
    "wallet_http_requests", "Requests served, by method, Django view name and status.", ["method", "view", "status"]
)
HTTP_LATENCY = Histogram(
    "wallet_http_request_duration_seconds",
    "Time to answer a request, from the first middleware to the last.",
    ["method", "view"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
TRANSFERS = Counter(
    "wallet_transfers",
    "Money movements settled by an API request: outcome completed or failed, and a failure's reason.",
    ["type", "outcome", "reason"],
)
REPLAYS = Counter("wallet_transfer_replays", "Requests answered with the earlier result of their key.", ["type"])
KEY_CONFLICTS = Counter(
    "wallet_transfer_key_conflicts",
    "Requests refused for their idempotency key: idempotency_key_in_use (409, a request with the key is in "
    "flight) or idempotency_key_reused (422, the key belongs to another request).",
    ["type", "code"],
)
LOCK_WAIT = Histogram(
    "wallet_transfer_lock_wait_seconds",
    "Time a settle spends taking its row locks (the log, then both wallets), round trips included.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)

# --- the state of the service, read at scrape time ----------------------------------


class ServiceStateCollector:
    """Gauges and counters read from PostgreSQL and Redis on each scrape. A
    dependency that is down drops the figures that come from it; the scrape
    itself never fails (wallet_dependency_up says what is missing)."""

    def collect(self):
        # Imported here: the services import this module for the counters above.
        from reconciliation import records, services
        from transfers.locks import REDIS_ERRORS

        database, redis = database_up(), redis_up()
        up = GaugeMetricFamily(
            "wallet_dependency_up", "1 when the component answers, as /health sees it.", labels=["component"]
        )
        up.add_metric(["database"], float(database))
        up.add_metric(["redis"], float(redis))
        yield up
        yield GaugeMetricFamily(
            "wallet_reconcile_pending_after_seconds",
            "Age at which reconciliation takes over a PENDING log (RECONCILE_PENDING_AFTER_SECONDS).",
            value=settings.RECONCILE_PENDING_AFTER.total_seconds(),
        )
        # Either may go down between the check and the read: then its
        # figures are left out of this scrape.
        if database:
            try:
                yield from self._pending(services.pending_summary())
            except DatabaseError as exc:
                logger.warning("metrics: PENDING summary unavailable: %s", exc)
        if redis:
            try:
                yield from self._records(records.read())
            except REDIS_ERRORS as exc:
                logger.warning("metrics: reconciliation records unavailable: %s", exc)

    @staticmethod
    def _pending(summary: dict):
        yield GaugeMetricFamily("wallet_pending_transfers", "PENDING logs now.", value=summary["count"])
        age = summary["oldest_age"]
        yield GaugeMetricFamily(
            "wallet_pending_oldest_age_seconds",
            "Age of the oldest PENDING log (0 when there is none).",
            value=age.total_seconds() if age else 0.0,
        )

    @staticmethod
    def _records(recorded):
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
                "Discrepancies the last verify_ledger found (0: the books balance).",
                value=recorded.ledger_discrepancies,
            )


def render_metrics() -> bytes:
    """Every process's samples (multiprocess mode when PROMETHEUS_MULTIPROC_DIR
    is set, else this process's own), then the service's state."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        processes = CollectorRegistry()
        multiprocess.MultiProcessCollector(processes)
    else:
        processes = REGISTRY
    state = CollectorRegistry(auto_describe=False)
    state.register(ServiceStateCollector())
    return generate_latest(processes) + generate_latest(state)


def metrics_view(request: HttpRequest) -> HttpResponse:
    """GET /metrics. 404 while METRICS_TOKEN is unset, 401 without it."""
    token = settings.METRICS_TOKEN
    if not token:
        raise Http404("metrics are off: set METRICS_TOKEN")
    given = request.headers.get("Authorization", "")
    if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        response = JsonResponse(
            {"success": False, "message": "A valid bearer token is required.", "code": "not_authenticated"},
            status=401,
        )
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(render_metrics(), content_type=CONTENT_TYPE_LATEST)
