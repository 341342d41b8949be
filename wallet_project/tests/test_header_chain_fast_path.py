"""BrowserChain's one step (_token_api) against Django's own four header
middleware chained as Django chains them (_header_chain), on the same requests and
the same views: answers of every shape a view can give (its own Vary,
Cache-Control, X-Frame-Options or exemption, a 404, a redirect, a stream,
an exception), under the default and the production HTTPS settings. The
status, the body and every header, in order, must be the same."""

import re

import pytest
from django.core.handlers.exception import convert_exception_to_response
from django.http import Http404, HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.test import RequestFactory, override_settings
from django.views.decorators.clickjacking import xframe_options_exempt

from wallet_project.middleware import BrowserChain, BrowserChainEnd

PRODUCTION_HTTPS = {
    "SECURE_PROXY_SSL_HEADER": ("HTTP_X_FORWARDED_PROTO", "https"),
    "SECURE_SSL_REDIRECT": True,
    "SECURE_HSTS_SECONDS": 31536000,
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": True,
    "SECURE_HSTS_PRELOAD": True,
}


def plain(request):
    return HttpResponse(b'{"ok":true}', content_type="application/json")


def own_headers(request):
    response = HttpResponse(b"{}", content_type="application/json")
    response["Vary"] = "Accept, Cookie"
    response["Cache-Control"] = "private, max-age=60"
    response["X-Frame-Options"] = "SAMEORIGIN"
    response["Referrer-Policy"] = "no-referrer"
    response["Strict-Transport-Security"] = "max-age=1"
    response["Content-Length"] = "2"
    return response


@xframe_options_exempt
def exempt(request):
    return HttpResponse(b"{}")


def not_found(request):
    raise Http404("nothing here")


def fails(request):
    raise ValueError("the view failed")


def redirects(request):
    return HttpResponseRedirect("/api/elsewhere")


def streams(request):
    return StreamingHttpResponse(iter([b"a", b"b"]))


VIEWS = [plain, own_headers, exempt, not_found, fails, redirects, streams]
REQUESTS = {
    "get": lambda rf: rf.get("/api/thing"),
    "head": lambda rf: rf.head("/api/thing"),
    "post": lambda rf: rf.post("/api/thing", b"{}", content_type="application/json"),
    "https": lambda rf: rf.get("/api/thing", headers={"X-Forwarded-Proto": "https"}),
    "a host not served": lambda rf: rf.get("/api/thing", headers={"Host": "evil.example"}),
    "a refused user agent": lambda rf: rf.get("/api/thing", headers={"User-Agent": "evil-bot"}),
}


def answer(response) -> tuple:
    body = b"".join(response.streaming_content) if response.streaming else response.content
    return response.status_code, list(response.items()), body


@pytest.mark.parametrize("profile", [{}, PRODUCTION_HTTPS], ids=["default", "production"])
@pytest.mark.parametrize("view", VIEWS, ids=[view.__name__ for view in VIEWS])
def test_the_one_step_answers_as_djangos_four(view, profile):
    rf = RequestFactory()
    with override_settings(**profile, APPEND_SLASH=True, DISALLOWED_USER_AGENTS=[re.compile("evil")], DEBUG=False):
        # As Django's handler builds it: the view (its exceptions answered by
        # Django's wrapper) after BrowserChainEnd, each layer wrapped.
        chain = BrowserChain(convert_exception_to_response(BrowserChainEnd(convert_exception_to_response(view))))
        for name, make in REQUESTS.items():
            if profile and name != "https":
                continue  # plain HTTP is redirected by Django's own four (_header_chain), not by the one step
            assert answer(chain._token_api(make(rf))) == answer(chain._header_chain(make(rf))), name
