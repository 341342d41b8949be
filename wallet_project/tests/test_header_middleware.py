"""Every header the token API answers with, in order, for what passes its
header middleware: a transfer, its replay, a refusal (400, 401, the catch-all 404, a host
it does not serve), a CORS preflight, and under the production profile's
HTTPS settings (HSTS, the redirect of plain HTTP). Their work
(SecurityMiddleware's, CorsMiddleware's, CommonMiddleware's and
XFrameOptionsMiddleware's headers, wallet_project/middleware.py) must come
out byte for byte as those four middleware wrote it."""

import pytest

pytestmark = pytest.mark.django_db

ORIGIN = "https://app.example"
REQUEST_ID = "lb-7f3a-00012"
SECURITY = [
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "same-origin"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
]
CORS = [
    ("access-control-allow-origin", ORIGIN),
    ("access-control-expose-headers", "idempotent-replayed, retry-after, x-request-id"),
]
HSTS = [("Strict-Transport-Security", "max-age=31536000; includeSubDomains; preload")]


@pytest.fixture
def allowed_origin(settings):
    settings.CORS_ALLOWED_ORIGINS = [ORIGIN]


def transfer(api, source, destination, **headers):
    body = {"sourceWalletId": str(source.pk), "destinationWalletId": str(destination.pk), "amount": "1.00"}
    return api.post("/api/transfer", body, format="json", headers={"X-Request-ID": REQUEST_ID, **headers})


def sent(response) -> list[tuple[str, str]]:
    return list(response.items())


def tail(response, *, cors=True, hsts=False) -> list[tuple[str, str]]:
    """What the header middleware and the request middleware add after the view's own headers."""
    return [
        ("X-Frame-Options", "DENY"),
        ("Content-Length", str(len(response.content))),
        ("Vary", "origin"),
        *(CORS if cors else []),
        *(HSTS if hsts else []),
        *SECURITY,
        ("X-Request-ID", REQUEST_ID),
        ("Cache-Control", "no-store"),
    ]


# A browser's request (Origin) and a server's (none), which the header middleware takes
# two ways (BrowserChain._token_api).
FROM = pytest.mark.parametrize("origin", [{"Origin": ORIGIN}, {}], ids=["browser", "server"])


@FROM
def test_a_transfer_and_its_replay(allowed_origin, transfer_api, funded_wallet, origin):
    source, destination = funded_wallet("100.00"), funded_wallet("0.00")

    first = transfer(transfer_api, source, destination, **{"Idempotency-Key": "headers-1", **origin})
    again = transfer(transfer_api, source, destination, **{"Idempotency-Key": "headers-1", **origin})

    assert first.status_code == 201
    assert sent(first) == [("Content-Type", "application/json"), ("Allow", "POST, OPTIONS"), *tail(first, cors=origin)]
    assert again.status_code == 200
    assert sent(again) == [
        ("Idempotent-Replayed", "true"),
        ("Content-Type", "application/json"),
        ("Allow", "POST, OPTIONS"),
        *tail(again, cors=origin),
    ]


def test_refusals(allowed_origin, transfer_api, client, funded_wallet):
    source = funded_wallet("100.00")

    invalid = transfer(
        transfer_api, source, source, **{"Idempotency-Key": "headers-2", "Origin": "https://other.example"}
    )
    no_key = client.get("/api/transfer/headers-3", headers={"X-Request-ID": REQUEST_ID, "Origin": ORIGIN})
    nowhere = client.get("/api/nope", headers={"X-Request-ID": REQUEST_ID})

    assert invalid.status_code == 400
    assert sent(invalid) == [
        ("Content-Type", "application/json"),
        ("Allow", "POST, OPTIONS"),
        *tail(invalid, cors=False),
    ]
    assert no_key.status_code == 401
    assert sent(no_key) == [
        ("Content-Type", "application/json"),
        ("WWW-Authenticate", "Token"),
        ("Allow", "GET, HEAD, OPTIONS"),
        *tail(no_key),
    ]
    assert nowhere.status_code == 404
    assert sent(nowhere) == [("Content-Type", "application/json"), *tail(nowhere, cors=False)]


def test_a_host_the_service_does_not_serve(client):
    """CommonMiddleware's host check answers before any view: no X-Frame-Options, no Content-Length."""
    response = client.get("/api/transfer/headers-4", headers={"X-Request-ID": REQUEST_ID}, HTTP_HOST="evil.example")

    assert response.status_code == 400
    assert sent(response) == [
        ("Content-Type", "application/json"),
        ("Vary", "origin"),
        *SECURITY,
        ("X-Request-ID", REQUEST_ID),
        ("Cache-Control", "no-store"),
    ]


def test_a_cors_preflight(allowed_origin, client):
    response = client.options(
        "/api/transfer",
        headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST", "X-Request-ID": REQUEST_ID},
    )

    assert response.status_code == 200 and response.content == b""
    assert sent(response) == [
        ("content-length", "0"),
        ("Content-Type", "text/html; charset=utf-8"),
        ("Vary", "origin"),
        *CORS,
        ("access-control-allow-headers", "authorization, content-type, idempotency-key, x-request-id"),
        ("access-control-allow-methods", "DELETE, GET, OPTIONS, PATCH, POST, PUT"),
        ("access-control-max-age", "86400"),
        *SECURITY,
        ("X-Request-ID", REQUEST_ID),
        ("Cache-Control", "no-store"),
    ]


@pytest.fixture
def production_https(settings):
    """The production profile's HTTPS settings (wallet_project/settings.py)."""
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = 31536000
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = settings.SECURE_HSTS_PRELOAD = True


@FROM
def test_under_production_https(production_https, allowed_origin, transfer_api, funded_wallet, origin):
    source, destination = funded_wallet("100.00"), funded_wallet("0.00")
    https = {"X-Forwarded-Proto": "https", **origin}

    first = transfer(transfer_api, source, destination, **{"Idempotency-Key": "headers-5", **https})
    again = transfer(transfer_api, source, destination, **{"Idempotency-Key": "headers-5", **https})
    plain = transfer(transfer_api, source, destination, **{"Idempotency-Key": "headers-5", **origin})

    assert first.status_code == 201
    assert sent(first) == [
        ("Content-Type", "application/json"),
        ("Allow", "POST, OPTIONS"),
        *tail(first, cors=origin, hsts=True),
    ]
    assert again.status_code == 200
    assert sent(again)[0] == ("Idempotent-Replayed", "true")
    assert sent(again)[1:] == [
        ("Content-Type", "application/json"),
        ("Allow", "POST, OPTIONS"),
        *tail(again, cors=origin, hsts=True),
    ]
    # Plain HTTP is sent to HTTPS before anything else runs; no HSTS over HTTP.
    assert plain.status_code == 301
    assert sent(plain) == [
        ("Content-Type", "text/html; charset=utf-8"),
        ("Location", "https://testserver/api/transfer"),
        *SECURITY,
        ("X-Request-ID", REQUEST_ID),
        ("Cache-Control", "no-store"),
    ]


def test_a_view_s_own_cache_control_is_kept_with_no_store(rf):
    """no-store goes into a Cache-Control the view set, as patch_cache_control puts it."""
    from django.http import HttpResponse
    from django.utils.cache import patch_cache_control

    from wallet_project.middleware import RequestMiddleware

    def view(request):
        response = HttpResponse()
        response["Cache-Control"] = "private, max-age=60"
        return response

    expected = view(None)
    patch_cache_control(expected, no_store=True)

    response = RequestMiddleware(view)(rf.get("/api/anything", HTTP_X_REQUEST_ID=REQUEST_ID))

    assert list(response.items()) == [*expected.items(), ("X-Request-ID", REQUEST_ID)]


def test_a_request_id_header_name_httpresponse_refuses_stops_the_start(monkeypatch):
    """The request id is written straight into the header store, past
    HttpResponse's check of a header's name: a name it would refuse (here
    one with a line break, a response-splitting name) stops the middleware
    being made, at start-up, instead of being sent."""
    from django.http import BadHeaderError
    from django_guid.config import settings as guid_settings

    from wallet_project.middleware import RequestMiddleware

    monkeypatch.setitem(guid_settings.settings, "GUID_HEADER_NAME", "X-Request-ID\r\nX-Evil")

    with pytest.raises(BadHeaderError):
        RequestMiddleware(lambda request: None)
