"""One error shape for the whole API, and the exception handler that renders it.

Every error under /api/ is JSON in the envelope
``{"success": false, "message": ..., "code": ..., "errors": {...}}``:
DRF's own exceptions, the domain errors of transfers/exceptions.py, a database
that cannot be reached (503), and anything unexpected (500, logged).
Django-level errors that never reach a DRF view (an unknown path, a body too
large for Django itself, a crash in middleware) get the same shape from the
``handler*`` views below.
"""

import logging
import math

from django.conf import settings
from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.db import DatabaseError, Error
from django.http import Http404, HttpRequest, JsonResponse
from django.views import defaults
from rest_framework import exceptions, status
from rest_framework.response import Response

from wallet_project.db.faults import is_transient
from wallet_project.error_codes import default_message

logger = logging.getLogger(__name__)


class ServiceError(exceptions.APIException):
    """A domain error: DRF's status_code/default_code/default_detail, plus
    optional ``data`` (e.g. the FAILED log) and extra response headers."""

    def __init__(self, detail=None, *, data: dict | None = None, headers: dict | None = None):
        super().__init__(detail=detail)
        self.data = data
        self.headers = headers or {}


class PayloadTooLarge(ServiceError):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "payload_too_large"
    default_detail = "The request body is too large."


class ServiceUnavailable(ServiceError):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "service_unavailable"
    default_detail = "The database is unavailable; retry with the same idempotency key."


def error_body(message: str, code: str, errors: dict | None = None, data: dict | None = None) -> dict:
    body: dict = {"success": False, "message": message, "code": code}
    if errors is not None:
        body["errors"] = errors
    if data is not None:
        body["data"] = data
    return body


def retry_after_header() -> dict:
    return {"Retry-After": str(settings.RETRY_AFTER_SECONDS)}


def _validation_message(errors: dict) -> str:
    fields = ", ".join(sorted(errors))
    return f"Invalid input: {fields}." if fields else "Invalid input."


def _body_and_headers(exc: exceptions.APIException) -> tuple[dict, dict]:
    """An API exception's envelope and headers (Retry-After from a wait,
    WWW-Authenticate from a scheme): the one rendering for DRF views
    (api_exception_handler) and plain Django views (error_response)."""
    headers = dict(getattr(exc, "headers", None) or {})
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header
    if getattr(exc, "wait", None) is not None:
        # Whole seconds, rounded up: a client that waits this long gets in.
        headers["Retry-After"] = str(max(1, math.ceil(exc.wait)))

    if isinstance(exc, exceptions.ValidationError):
        errors = (
            exc.detail
            if isinstance(exc.detail, dict)
            else {settings.REST_FRAMEWORK["NON_FIELD_ERRORS_KEY"]: exc.detail}
        )
        body = error_body(_validation_message(errors), "validation_error", errors=errors)
    else:
        codes = exc.get_codes()
        code = codes if isinstance(codes, str) else exc.default_code
        message = str(exc.detail)
        if message == str(type(exc).default_detail):
            # DRF's generic wording ("Authentication credentials were not
            # provided.") says what, not what to do: the registry's does both.
            message = default_message(code) or message
        body = error_body(message, code, data=getattr(exc, "data", None))
    return body, headers


def error_response(exc: exceptions.APIException) -> JsonResponse:
    """`exc` answered in the envelope by a view outside DRF (/metrics)."""
    body, headers = _body_and_headers(exc)
    return JsonResponse(body, status=exc.status_code, headers=headers)


def api_exception_handler(exc: Exception, context: dict) -> Response:
    # Imported here: rest_framework.views loads the parsers at import time,
    # and the parser imports this module (PayloadTooLarge).
    from rest_framework.views import set_rollback

    from wallet_project.throttling import charge_request_without_key

    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, RequestDataTooBig):
        # Django's own bound (DATA_UPLOAD_MAX_MEMORY_SIZE), hit when DRF reads request.body.
        exc = PayloadTooLarge()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, exceptions.NotAuthenticated) and context.get("request") is not None:
        # No credentials at all: counted per client address, like a wrong
        # key (wallet_project/throttling.py), so that they too meet a limit.
        try:
            charge_request_without_key(context["request"])
        except exceptions.Throttled as throttled:
            exc = throttled
    elif isinstance(exc, Error) and is_transient(exc):
        # The connection is gone or refused, or the pooler lost it under us
        # (wallet_project/db/faults.py; the backend has discarded it), or a
        # deadlock outlived its retries. Whatever the service had begun was
        # rolled back by PostgreSQL; a retry with the same key is safe.
        logger.warning("database unavailable: %s: %s", type(exc.__cause__ or exc).__name__, exc)
        exc = ServiceUnavailable(headers=retry_after_header())

    if not isinstance(exc, exceptions.APIException):
        # A bug. An IntegrityError lands here too: the database refused a
        # write the service should never have tried, so nothing is half-done.
        view = context.get("view")
        logger.exception("unhandled error in %s", type(view).__name__ if view else "API", exc_info=exc)
        if isinstance(exc, DatabaseError):
            set_rollback()
        return Response(
            error_body(default_message("internal_error"), "internal_error"),
            status=status.HTTP_500_INTERNAL_SERVER_ERROR,
        )

    body, headers = _body_and_headers(exc)
    set_rollback()
    return Response(body, status=exc.status_code, headers=headers)


# --- Django-level handlers (wired in wallet_project/urls.py) -------------------


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/") or request.path == "/api"


def json_or_default(default_view, status_code: int, code: str, message=None):
    """A Django-level handler that answers /api/ paths in the envelope
    (`message(request)` words it, else the registry's default) and anything
    else with Django's own page."""

    def handler(request: HttpRequest, *args, **kwargs):
        if _is_api(request):
            text = message(request) if message else default_message(code)
            return JsonResponse(error_body(text, code), status=status_code)
        return default_view(request, *args, **kwargs)

    return handler


# A well-formed id, put in place of a path segment to learn whether the
# segment stood where a route takes an id.
_PLACEHOLDER_ID = "00000000-0000-4000-8000-000000000000"
_DEEPEST_ROUTE = 6


def unknown_api_path_message(request: HttpRequest) -> str:
    """Why an /api/ path matched no route, in words a client can act on:
    a trailing slash (API paths have none), or a segment where a route
    takes an id that is not one (named, with the noun of the route), or
    simply an unknown path."""
    from django.urls import Resolver404, resolve

    def route_of(path: str):
        try:
            match = resolve(path)
        except Resolver404:
            return None
        return None if match.url_name == "api-not-found" else match

    path = request.path
    if path.endswith("/") and path != "/api/" and route_of(path.rstrip("/")):
        return f"API paths have no trailing slash: use {path.rstrip('/')}."
    segments = path.split("/")
    # Only as deep as the deepest route ("", "api", "wallets", id, "deposit"):
    # a path of thousands of segments must not cost thousands of resolves.
    for index, segment in enumerate(segments[:_DEEPEST_ROUTE]):
        if not segment or index < 2:
            continue
        candidate = "/".join([*segments[:index], _PLACEHOLDER_ID, *segments[index + 1 :]])
        match = route_of(candidate) or route_of(candidate.rstrip("/"))
        if match:
            noun = match.url_name.split("-")[0] if match.url_name else "resource"
            return f"{segment[:64]!r} is not a {noun} id: ids are UUIDs, such as {_PLACEHOLDER_ID}."
    if path.endswith("/") and path != "/api/":
        return f"No such API path: {path[:200]} (API paths have no trailing slash; see /api/docs/)."
    return default_message("not_found")


handler400 = json_or_default(defaults.bad_request, 400, "bad_request")
handler403 = json_or_default(defaults.permission_denied, 403, "permission_denied")
handler404 = json_or_default(defaults.page_not_found, 404, "not_found", unknown_api_path_message)
handler500 = json_or_default(defaults.server_error, 500, "internal_error")


def csrf_failure(request: HttpRequest, reason: str = ""):
    """CSRF_FAILURE_VIEW. API clients authenticate by token and never meet CSRF,
    except on a path no view claims; there too the answer is JSON."""
    from django.views.csrf import csrf_failure as default_csrf_failure

    if _is_api(request):
        return JsonResponse(error_body(unknown_api_path_message(request), "not_found"), status=404)
    return default_csrf_failure(request, reason)
