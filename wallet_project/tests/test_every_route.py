"""Every URL pattern of the URLconf, under every HTTP method, with and without
a token, with real and malformed path parameters: never a 5xx; under /api/
always the JSON envelope, and never kept by a cache.

The routes are read from the URLconf itself, so a route added later is walked
too without anyone listing it here.
"""

import re
import uuid

import pytest
from django.apps import apps
from django.urls import URLPattern, URLResolver, get_resolver

from conftest import make_api_client
from transfers.models import TransactionLog

pytestmark = pytest.mark.django_db

METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"]

# What a path parameter may be, beyond a real value: the wrong type, empty,
# huge, control characters and line breaks, invalid UTF-8, traversal,
# encoded slashes, non-ASCII.
MALFORMED = [
    "not-a-uuid",
    "0",
    "-1",
    "x" * 1500,
    "%00",
    "x%0d%0aforged: yes",
    "%ff%fe",
    "..%2F..%2Fetc%2Fpasswd",
    "reference%2FTXN-0000000000",
    "%E6%97%A5%E6%9C%AC",
    "a%20b",
    str(uuid.uuid4()),  # well-formed, but nobody's
]
# The admin answers an anonymous request with its login redirect, whatever
# the path: a few malformed values show it; the API gets them all.
MALFORMED_FOR_ADMIN = ["0", "x%0d%0aforged", "%ff", "-1"]

PARAMETER = re.compile(r"<(?:[^>:]+:)?(?P<name>[^>]+)>|\(\?P<(?P<group>\w+)>[^)]*\)")


def routes(patterns=None, prefix: str = ""):
    """Every route of the URLconf, as its pattern text from the root."""
    for pattern in get_resolver().url_patterns if patterns is None else patterns:
        text = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            yield from routes(pattern.url_patterns, text)
        else:
            assert isinstance(pattern, URLPattern)
            yield text


def fill(route: str, values: dict[str, str], default: str) -> str:
    """The path for `route` with each parameter set from `values` (by name)
    or to `default`; regex routes lose their anchors, `.*` is any path."""
    path = PARAMETER.sub(lambda m: values.get(m["name"] or m["group"], default), route)
    path = path.replace("^", "").replace("$", "").replace(".*", "no/such/route")
    return "/" + path


def parameters(route: str) -> list[str]:
    return [m["name"] or m["group"] for m in PARAMETER.finditer(route)]


@pytest.fixture
def real_values(treasury_api, funded_wallet) -> dict[str, str]:
    """A real value for each parameter name the URLconf uses."""
    source, destination = funded_wallet("100.00"), funded_wallet("0")
    response = treasury_api.post(
        "/api/transfer",
        {"sourceWalletId": str(source.pk), "destinationWalletId": str(destination.pk), "amount": "1.00"},
        format="json",
        headers={"Idempotency-Key": "walk-the-routes"},
    )
    assert response.status_code == 201, response.content
    log = TransactionLog.objects.get(idempotency_key="walk-the-routes")
    return {
        "pk": str(source.pk),
        "idempotency_key": log.idempotency_key,
        "reference": log.reference,
        "object_id": str(source.pk),
        "id": str(treasury_api.user.pk),
        "content_type_id": "1",
        "app_label": "wallets",
        "url": "no/such/page",
    }


def assert_answer_is_safe(response, path: str, method: str) -> None:
    where = f"{method} {path}"
    assert response.status_code < 500, (where, response.status_code, response.content[:300])
    if not path.startswith("/api/"):
        return
    assert "no-store" in response.get("Cache-Control", ""), (where, response.get("Cache-Control"))
    # The schema document and the docs page are what they are when served;
    # their errors are the envelope like any other.
    if path.startswith(("/api/schema/", "/api/docs/")) and response.status_code < 300:
        return
    assert response["Content-Type"] == "application/json", (where, response["Content-Type"])
    if method != "HEAD":
        body = response.json()
        assert isinstance(body, dict) and isinstance(body.get("success"), bool), (where, body)
        if not body["success"]:
            assert isinstance(body.get("code"), str) and isinstance(body.get("message"), str), (where, body)


ROUTES = sorted(set(routes()))


def test_the_walk_covers_the_money_routes():
    """The walk reads the URLconf: were it to find nothing, it would prove nothing."""
    assert {
        "api/transfer",
        "api/wallets/<canonical_uuid:pk>/deposit",
        "api/wallets/<canonical_uuid:pk>/withdraw",
    } <= set(ROUTES)
    assert any(route.startswith("admin/") for route in ROUTES)


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("with_token", [True, False], ids=["with_token", "without_token"])
def test_every_route_answers_every_method_without_a_5xx(route, with_token, real_values, client):
    api = make_api_client("Treasury client") if with_token else client
    names = parameters(route)
    paths = {fill(route, real_values, "x")}
    if names:
        malformed = MALFORMED_FOR_ADMIN if route.startswith("admin/") else MALFORMED
        paths |= {fill(route, {}, value) for value in malformed}
        # One parameter malformed at a time, the others real.
        paths |= {fill(route, {**real_values, name: value}, "x") for name in names for value in malformed[:3]}

    for path in sorted(paths):
        for method in METHODS:
            response = api.generic(method, path, "{}", content_type="application/json")
            assert_answer_is_safe(response, path, method)


ADMIN_MODEL_ROUTE = re.compile(r"admin/(?P<app>\w+)/(?P<model>\w+)/")
STAFF_METHODS = ["GET", "HEAD", "POST", "OPTIONS"]


@pytest.fixture
def superuser(django_user_model):
    # No password: force_login needs none, and hashing one costs a second here.
    return django_user_model.objects.create(username="walker", is_staff=True, is_superuser=True)


@pytest.mark.parametrize("route", [route for route in ROUTES if route.startswith("admin/")])
def test_every_admin_route_answers_a_superuser_without_a_5xx(route, real_values, superuser, client):
    """Signed in, the admin's views run for real: change pages of real rows,
    and of ids that are not ids. (The test client skips CSRF, so a POST
    reaches the view; an empty form is refused by its validation.)"""
    values = dict(real_values)
    match = ADMIN_MODEL_ROUTE.match(route)
    if match and match["app"] in apps.app_configs:  # not admin/password_change/done/
        first = apps.get_model(match["app"], match["model"]).objects.order_by("pk").first()
        if first is not None:
            values["object_id"] = str(first.pk)
    paths = {fill(route, values, "x")}
    if parameters(route):
        paths |= {fill(route, {}, value) for value in MALFORMED_FOR_ADMIN[:2]}

    for path in sorted(paths):
        for method in STAFF_METHODS:
            client.force_login(superuser)  # a walked logout/ would end the session
            response = client.generic(method, path, "", content_type="application/x-www-form-urlencoded")
            assert_answer_is_safe(response, path, method)


@pytest.mark.parametrize("groups", [(), ("Treasury client",)], ids=["client_without_permissions", "treasury_client"])
@pytest.mark.parametrize(
    ("path", "methods"),
    [
        ("/api/transfer", ["POST", "OPTIONS"]),
        (f"/api/wallets/{uuid.uuid4()}/deposit", ["POST", "OPTIONS"]),
        ("/api/wallets", ["GET", "POST", "HEAD", "OPTIONS"]),
    ],
)
def test_options_names_the_routes_methods_and_nothing_more(path, methods, groups):
    """No docstring, no field map, whatever the client may do: the schema
    describes the fields, to clients that hold a token."""
    response = make_api_client(*groups).options(path)

    assert response.status_code == 200, response.content
    assert response.json() == {"success": True, "data": {"methods": methods}}
    assert response["Allow"] == ", ".join(methods)
    assert response["Cache-Control"] == "no-store"


def test_options_without_a_token_is_401_in_the_envelope(client):
    response = client.options("/api/transfer")

    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"
