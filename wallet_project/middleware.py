"""One log line and the HTTP metrics of every request."""

import logging
import time

from django.http import HttpRequest, HttpResponse
from django.utils.functional import SimpleLazyObject, empty

from wallet_project.metrics import HTTP_LATENCY, HTTP_REQUESTS

logger = logging.getLogger("wallet.requests")

# Probes and scrapes arrive every few seconds: counted, never logged.
UNLOGGED_PATHS = frozenset({"/health", "/metrics"})
# Anything else is one label value, so a client cannot invent new series.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class RequestTelemetryMiddleware:
    """Times the request around every later middleware and the view; then counts
    it by method, Django view name and status, and logs one line with the
    request id (django-guid, the middleware before this one), the client, the
    status and the duration. Headers, bodies and query strings are never
    logged: tokens, passwords and metadata stay out of the logs."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        elapsed = time.perf_counter() - started

        method = request.method if request.method in KNOWN_METHODS else "OTHER"
        match = request.resolver_match
        view = match.view_name if match else "unmatched"
        HTTP_REQUESTS.labels(method, view, response.status_code).inc()
        HTTP_LATENCY.labels(method, view).observe(elapsed)
        if request.path not in UNLOGGED_PATHS:
            duration_ms = round(elapsed * 1000, 1)
            logger.info(
                "%s %s %s %.1fms",
                method,
                request.path,
                response.status_code,
                duration_ms,
                extra={
                    "event": "request",
                    "method": method,
                    "path": request.path,
                    "view": view,
                    "status": response.status_code,
                    "duration_ms": duration_ms,
                    "client": _client_name(request),
                },
            )
        return response


def _client_name(request: HttpRequest) -> str | None:
    """The API client (DRF puts the token's user on the request) or the admin
    user, without loading a session nobody asked for."""
    user = request.__dict__.get("user")
    if isinstance(user, SimpleLazyObject) and user._wrapped is empty:
        return None
    if user is None or not user.is_authenticated:
        return None
    return user.get_username()
