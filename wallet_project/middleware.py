"""Every request's id, no-store, metrics and log line (one middleware); the
client's address (client_address); the admin's Content-Security-Policy; the
browser middleware kept off the token API (BrowserChain)."""

import functools
import logging
import re
import time
import uuid
from types import SimpleNamespace

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.handlers.exception import convert_exception_to_response, response_for_exception
from django.http import HttpRequest, HttpResponse
from django.utils.cache import patch_cache_control, patch_vary_headers
from django.utils.functional import SimpleLazyObject, empty
from django.utils.module_loading import import_string
from django_guid.config import settings as guid_settings
from django_guid.context import guid
from ipware import get_client_ip

from wallet_project.metrics import HTTP_LATENCY, HTTP_REQUESTS

logger = logging.getLogger("wallet.requests")

# Probes and scrapes arrive every few seconds: counted, never logged.
UNLOGGED_PATHS = frozenset({"/health", "/metrics"})
# Anything else is one label value, so a client cannot invent new series.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


# What a request id may be, to be kept and echoed: what load balancers and
# tracing systems write (UUIDs, `lb-7f3a-00012`, `Root=1-5759e988-bd862e3f`,
# base64), and nothing that could break a log line or a header.
SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9\-_.:/=+]{1,128}", re.ASCII)
REQUEST_ID_META_KEY = "HTTP_X_REQUEST_ID"


class RequestMiddleware:
    """The first middleware, and what every request gets from it:

    - its request id (X-Request-ID): the client's own when it is a safe token
      (SAFE_REQUEST_ID), kept and echoed as sent; anything else is dropped
      from the request and a new one made, 32 hex digits, as django-guid
      makes them. The id goes where django-guid keeps it (its context
      variable: its log filter puts it on every log line, its Celery
      integration into every task queued meanwhile) and on the response;
    - `Cache-Control: no-store` on every response under /api/, errors and
      the catch-all 404 included: balances, transactions and keys must not be
      kept by a browser, a proxy or a CDN between the client and the service;
    - its metrics (count by method, Django view name and status; duration),
      timed around every later middleware and the view, and one log line with
      the request id, the client's address (client_address, below: the one
      django-axes and the failed-authentication throttle count by), the client
      and its API key's non-secret prefix, the status and the duration.
      Headers, bodies and query strings are never logged: tokens, passwords
      and metadata stay out of the logs.

    One middleware rather than four (the id's check, django-guid's own, the
    telemetry, no-store), and django-guid's middleware not used: each layer
    costs a call through Django's exception wrapper, and django-guid's built
    the full path twice a request for its IGNORE_URLS (unused here) and made
    log calls its logger level drops. Measured: 60K instructions fewer a
    request, 2.3 % of a replay (callgrind, 300 requests through the WSGI
    application that reach only the middleware and the /api/ 404: 1.915M ->
    1.856M each; bench/instructions.py's columns move more than that from run
    to run).
    """

    def __init__(self, get_response):
        self.get_response = get_response
        self.header = guid_settings.guid_header_name
        self.header_key = self.header.lower()
        check_response_header_name(self.header)
        self.integrations = tuple(guid_settings.integrations)

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        given = request.META.get(REQUEST_ID_META_KEY)
        if given is not None and SAFE_REQUEST_ID.fullmatch(given):
            request_id = given
        else:
            if given is not None:
                del request.META[REQUEST_ID_META_KEY]
            request_id = uuid.uuid4().hex
        request.correlation_id = request_id
        guid.set(request_id)
        for integration in self.integrations:
            integration.run(guid=request_id)

        response = self.get_response(request)

        # Into the header store as HttpResponse would write them: the id is a
        # safe token or hex digits, nothing its header check would refuse,
        # and no-store is what patch_cache_control writes where there is no
        # Cache-Control yet: 13K instructions fewer a transfer, 22K a replay
        # (bench/instructions.py n=40, layout 0; bench/HISTORY.md 2026-12-07 03:30).
        store = response.headers._store
        store[self.header_key] = (self.header, request_id)
        for integration in self.integrations:
            integration.cleanup()
        path = request.path_info
        if path.startswith(API_PREFIX) or path == "/api":
            if "cache-control" in store:
                patch_cache_control(response, no_store=True)
            else:
                store["cache-control"] = NO_STORE
        elapsed = time.perf_counter() - started

        method = request.method if request.method in KNOWN_METHODS else "OTHER"
        match = request.resolver_match
        view = match.view_name if match else "unmatched"
        HTTP_REQUESTS.labels(method, view, response.status_code).inc()
        HTTP_LATENCY.labels(method, view).observe(elapsed)
        if request.path not in UNLOGGED_PATHS:
            duration_ms = round(elapsed * 1000, 1)
            address = client_address(request)
            logger.info(
                # The address first, as in an access log.
                "%s %s %s %s %.1fms",
                address,
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
                    "client_address": address,
                    "client": _client_name(request),
                    "key": _key_prefix(request),
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


def _key_prefix(request: HttpRequest) -> str | None:
    """The non-secret prefix of the API key the request authenticated with
    (DRF puts its `request.auth` on the request too), never the key."""
    return getattr(request.__dict__.get("auth"), "prefix", None)


# --- the client's address ---------------------------------------------------------

# The client's address: the one django-axes locks admin logins out by, the
# failed-authentication throttle counts (wallet_project/throttling.py) and every
# request log line carries (RequestMiddleware, above). One reading, so that
# the address a lockout names is the one the logs show.
#
# Behind TRUSTED_PROXY_COUNT proxies, each appending the address it was called
# from to X-Forwarded-For, the client is the address the outermost one wrote:
# the N-th from the right. What the client wrote itself, to the left of it, is
# never read; with no trusted proxy, X-Forwarded-For is not read at all (anyone
# can write it) and the client is REMOTE_ADDR (docs/operations.md, "Production
# profile"). bin/web's own nginx is not counted: it hands Django the address it
# was connected from as REMOTE_ADDR (wallet_project/wsgi.py).


def client_address(request: HttpRequest) -> str | None:
    """The client's IP address as text ("203.0.113.7", "2001:db8::1"), or None
    when the request carries none that parses. settings.TRUSTED_PROXY_COUNT is
    read on each call. django-ipware does the parsing: its proxy count is the
    proxies whose addresses are in the header, N - 1 (the nearest proxy is
    REMOTE_ADDR), and "strict" is off so that a client's own X-Forwarded-For
    does not make the chain fall back to REMOTE_ADDR (the proxy's address,
    shared by everyone)."""
    proxies = settings.TRUSTED_PROXY_COUNT
    header = "HTTP_X_FORWARDED_FOR" if proxies else "REMOTE_ADDR"
    return _address_in(header, request.META.get(header), proxies)


@functools.lru_cache(maxsize=4096)
def _address_in(header: str, value: str | None, proxies: int) -> str | None:
    """What django-ipware reads from `header` holding `value`: a function of
    those alone, so remembered (every request asks, mostly for the same few
    addresses, and ipware's reading was about a tenth of a replay's CPU,
    bench/instructions.py)."""
    address, _ = get_client_ip(
        SimpleNamespace(META={} if value is None else {header: value}),
        proxy_order="left-most",
        proxy_count=proxies - 1 if proxies else None,
        request_header_order=(header,),
        strict=False,
    )
    return address


class ContentSecurityPolicyMiddleware:
    """`Content-Security-Policy` (settings.CONTENT_SECURITY_POLICY) on what a
    browser shows: the admin, the API docs and their static files,
    everything but the token API, whose JSON no browser renders as a page.
    It sits before CORS: a CORS preflight to the docs is answered by
    CorsMiddleware itself, and carries the policy as every other answer
    there does. A view's own policy, if it sets one, is kept."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if not is_token_api(request):
            response.headers.setdefault("Content-Security-Policy", settings.CONTENT_SECURITY_POLICY)
        return response


# --- browser middleware: for the admin, the docs and static files only ---------------

# Under /api/ clients authenticate with a token on every request (DRF); the
# schema and docs also take an admin session, so a person can browse them.
API_PREFIX = "/api/"
SESSION_API_PATHS = ("/api/schema/", "/api/docs/")


def is_token_api(request: HttpRequest) -> bool:
    path = request.path_info
    return path.startswith(API_PREFIX) and not path.startswith(SESSION_API_PATHS)


class BrowserChain:
    """Where the token API leaves the middleware chain: settings.MIDDLEWARE
    lists the header middleware (SecurityMiddleware, CorsMiddleware,
    CommonMiddleware, XFrameOptionsMiddleware: TOKEN_API_HEADER_MIDDLEWARE) and the
    browser's (the CSP, static files, session, CSRF, user, messages,
    django-axes) between this and BrowserChainEnd, and a token API request
    goes from here straight to what BrowserChainEnd calls (the view): the
    path decides once.

    There a session, a session user and flash messages have no use: reading
    the session cookie would only let a browser's admin login stand in for a
    token; nor do static files or CSRF (DRF's views are exempt: a token is no
    ambient credential). The header middleware's headers it does get, the same bytes in
    the same order (wallet_project/tests/test_header_middleware.py): `_header_chain` is
    Django's four classes, made and wrapped as Django makes a chain, around
    the view, and what nearly every request is, one that is no CORS request
    (no Origin, not OPTIONS) and needs no redirect to HTTPS, gets their
    headers from `_token_api` in one step. All stay listed in
    settings.MIDDLEWARE, Django's own classes, so that the admin's checks
    and `check --deploy` find them.

    Each layer is a call through Django's exception wrapper even when it
    does nothing: skipping the seven browser layers cost a token API
    request 57K instructions fewer (callgrind, 200 requests through the
    middleware around a view that answers at once: 611K -> 554K each).
    The four header middleware in one step, their headers written once each: 118K
    instructions fewer a transfer, 123K a replay (bench/instructions.py
    n=40, layouts 0,1,2: 4.437M -> 4.319M, 2.325M -> 2.202M;
    bench/HISTORY.md, 2026-12-07 03:30).
    """

    def __init__(self, get_response):
        self.get_response = get_response
        self.past_browser = _past(get_response)
        listed = [m for m in settings.MIDDLEWARE if m in TOKEN_API_HEADER_MIDDLEWARE]
        if listed != list(TOKEN_API_HEADER_MIDDLEWARE):
            raise ImproperlyConfigured(
                f"wallet_project.middleware.BrowserChain needs {', '.join(TOKEN_API_HEADER_MIDDLEWARE)} in MIDDLEWARE, "
                "in that order."
            )
        # The header middleware as Django would chain it: each made around the next, each
        # wrapped in Django's exception conversion.
        chain = self.past_browser
        for path in reversed(TOKEN_API_HEADER_MIDDLEWARE):
            chain = convert_exception_to_response(import_string(path)(chain))
        self._header_chain = chain
        x_frame, self.common, self.cors, self.security = _header_layers(chain)
        # What XFrameOptionsMiddleware and SecurityMiddleware write, as each
        # reads its settings; HSTS apart, as it goes only over HTTPS.
        self.x_frame_options = _stored("X-Frame-Options", x_frame.get_xframe_options_value(None, None))
        over_https = HttpResponse()
        self.security.process_response(SimpleNamespace(is_secure=lambda: True), over_https)
        written = dict(list(over_https.headers._store.items())[1:])  # after its Content-Type
        self.hsts = written.pop("strict-transport-security", None)
        self.security_headers = tuple(written.items())

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if is_token_api(request):
            return self._token_api(request)
        return self.get_response(request)

    def _token_api(self, request: HttpRequest) -> HttpResponse:
        """The four header middleware and the view, as `_header_chain` runs them, for
        a request that is no CORS request and needs no redirect: their
        headers, which are constants, written into the response's header
        store in their order (HttpResponse's own checks of a header name and
        value are for what varies; these were checked once, in __init__).
        The host check (CommonMiddleware.process_request), a 404's (its
        process_response) and an exception's answer are Django's own."""
        redirect = self.security.redirect
        secure = (redirect or self.hsts) and request.is_secure()
        if request.method == "OPTIONS" or "HTTP_ORIGIN" in request.META or (redirect and not secure):
            return self._header_chain(request)
        try:
            response = self.common.process_request(request)
            if response is None:
                response = self.past_browser(request)
                store = response.headers._store
                if "x-frame-options" not in store and not getattr(response, "xframe_options_exempt", False):
                    store["x-frame-options"] = self.x_frame_options
            if response.status_code == 404:
                response = self.common.process_response(request, response)
            elif not response.streaming:
                store = response.headers._store
                if "content-length" not in store:
                    store["content-length"] = ("Content-Length", str(len(response.content)))
        except Exception as exc:  # as Django's wrapper of CommonMiddleware
            response = response_for_exception(request, exc)
        store = response.headers._store
        if self.cors.is_enabled(request):
            if "vary" in store:
                patch_vary_headers(response, ("origin",))
            else:
                store["vary"] = ("Vary", "origin")
        if secure and self.hsts and "strict-transport-security" not in store:
            store["strict-transport-security"] = self.hsts
        for name, header in self.security_headers:
            if name not in store:
                store[name] = header
        return response


# The header middleware on the token API, in settings.MIDDLEWARE's order (BrowserChain).
TOKEN_API_HEADER_MIDDLEWARE = (
    "django.middleware.security.SecurityMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
)


def _header_layers(chain) -> list:
    """The middleware of a chain made of TOKEN_API_HEADER_MIDDLEWARE, innermost first."""
    layers = []
    while len(layers) < len(TOKEN_API_HEADER_MIDDLEWARE):
        chain = chain.__wrapped__
        layers.append(chain)
        chain = chain.get_response
    return layers[::-1]


def _stored(name: str, value: str) -> tuple[str, str]:
    """A header as HttpResponse stores it, checked as it checks one."""
    checked = HttpResponse()
    checked.headers[name] = value
    return checked.headers._store[name.lower()]


def check_response_header_name(name: str) -> None:
    """Raise BadHeaderError (at start-up) unless HttpResponse takes `name`
    as a header's name: a header written straight into the header store,
    as the request id is, skips HttpResponse's own check."""
    _stored(name, "0")


# What patch_cache_control(response, no_store=True) stores on a response without Cache-Control.
NO_STORE = _stored("Cache-Control", "no-store")


class BrowserChainEnd:
    """The end of the browser middleware (BrowserChain); does nothing itself."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)


def _past(get_response):
    """What BrowserChainEnd calls, found down the chain Django built from
    `get_response` on (each layer is Django's exception wrapper, whose
    __wrapped__ is the middleware; each middleware keeps its get_response)."""
    layer = get_response
    while (middleware := getattr(layer, "__wrapped__", None)) is not None:
        if isinstance(middleware, BrowserChainEnd):
            return middleware.get_response
        layer = getattr(middleware, "get_response", None)
    raise ImproperlyConfigured(
        "wallet_project.middleware.BrowserChain needs wallet_project.middleware.BrowserChainEnd after it in "
        "MIDDLEWARE, each middleware between them keeping its get_response."
    )
