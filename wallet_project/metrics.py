"""Prometheus metrics, served at GET /metrics to a scraper holding METRICS_TOKEN.

Two kinds, and why:

- What this service's processes did: requests here; money movements,
  replays, conflicts and row-lock waits in transfers/telemetry.py. Counters
  and histograms, updated in process.
  Granian runs several worker processes; bin/web sets PROMETHEUS_MULTIPROC_DIR,
  where prometheus_client's multiprocess mode has each process write its
  samples to a file, and a scrape, whichever worker answers it, adds up all of
  them.
- The state of the whole service, read when scraped from where it lives, so
  that it is right whichever process or host answers: whether PostgreSQL and
  Redis answer, here; what an app adds with register_state_source from its
  AppConfig.ready() (reconciliation: PENDING transactions, the last runs and
  ledger check, reconciliation/metrics.py). The alert rules
  (ops/prometheus/alerts.yml) are written against these names.

The endpoint is not public: it needs `Authorization: Bearer $METRICS_TOKEN`
and answers 404 while no token is configured.
"""

import hmac
import os
from collections.abc import Callable, Iterable

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from wallet_project.health import database_up
from wallet_project.redis_health import redis_up

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

# --- the state of the service, read at scrape time ----------------------------------


# Sources of state figures, added by the apps from their AppConfig.ready()
# (register_state_source): the ground floor knows how to serve figures, not
# what an app keeps.
StateSource = Callable[[dict[str, bool]], Iterable[Metric]]
_state_sources: list[StateSource] = []


def register_state_source(source: StateSource) -> None:
    """Add figures read at scrape time. `source(up)` is called on each scrape
    with {"database": bool, "redis": bool} (whether each answered just now, so
    that a source skips what is down instead of waiting on it) and yields
    prometheus_client metric families. A source should catch the errors of a
    dependency that fails mid-scrape and leave its figures out; registering the
    same source twice adds it once."""
    if source not in _state_sources:
        _state_sources.append(source)


class ServiceStateCollector:
    """Figures read from PostgreSQL and Redis on each scrape: whether each
    answers, then each registered source's. A dependency that is down drops
    the figures that come from it; the scrape itself never fails
    (wallet_dependency_up says what is missing)."""

    def collect(self):
        up = {"database": database_up(), "redis": redis_up()}
        dependency_up = GaugeMetricFamily(
            "wallet_dependency_up", "1 when the component answers, as /health sees it.", labels=["component"]
        )
        for component, answered in up.items():
            dependency_up.add_metric([component], float(answered))
        yield dependency_up
        for source in _state_sources:
            yield from source(up)


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
        # Counted per client address like the API's refused keys (and
        # requests with none), so that guessing the token meets the same limit.
        # Imported here: this module loads with the middleware, before DRF's settings.
        from rest_framework.exceptions import NotAuthenticated, Throttled

        from wallet_project.exceptions import error_response
        from wallet_project.throttling import charge_failed_authentication, charge_request_without_key

        try:
            (charge_failed_authentication if given else charge_request_without_key)(request)
        except Throttled as throttled:
            return error_response(throttled)
        refused = NotAuthenticated("A valid bearer token is required.")
        refused.auth_header = 'Bearer realm="metrics"'
        return error_response(refused)
    return HttpResponse(render_metrics(), content_type=CONTENT_TYPE_LATEST)
