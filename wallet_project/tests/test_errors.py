"""Every response under /api/ is JSON in the envelope, errors included: what
DRF refuses (401, 405, 406, 415), what Django refuses before any view runs
(an unknown path, a bad Host), and what nobody planned (a 500, a database that
is gone)."""

import logging
import uuid

import pytest
from django.db import InterfaceError, OperationalError
from rest_framework.renderers import JSONRenderer
from rest_framework.test import APIClient

from transfers import services
from transfers.tests import ledger_state
from wallet_project.tests import assert_error_envelope
from wallets import selectors

pytestmark = pytest.mark.django_db


def client_like(api: APIClient, **options) -> APIClient:
    """Another APIClient with api's key, built with other options."""
    client = APIClient(**options)
    client.credentials(HTTP_AUTHORIZATION=f"Token {api.api_key}")
    return client


@pytest.fixture
def wallets(funded_wallet):
    return funded_wallet("100.00"), funded_wallet("0")


def transfer_body(source, destination, key: str = "k1") -> dict:
    return {
        "sourceWalletId": str(source.pk),
        "destinationWalletId": str(destination.pk),
        "amount": "10.00",
        "idempotencyKey": key,
    }


# --- 404: paths no view answers -------------------------------------------------------------


@pytest.mark.parametrize("method", ["get", "post", "put", "patch", "delete", "head"])
@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/api/nothing-here", id="unknown_path"),
        pytest.param("/api", id="api_root_without_slash"),
        pytest.param("/api/", id="api_root"),
        pytest.param("/api/wallets/", id="trailing_slash"),
        pytest.param("/api/wallets/not-a-uuid", id="wallet_id_not_a_uuid"),
        pytest.param(f"/api/wallets/{uuid.uuid4()}/freeze", id="unknown_wallet_action"),
        pytest.param("/api/transfers", id="plural_transfer"),
    ],
)
@pytest.mark.parametrize("authenticated", [True, False], ids=["with_token", "without_token"])
def test_unknown_api_path_is_a_json_404(authenticated, path, method, treasury_api):
    client = treasury_api if authenticated else APIClient()

    response = getattr(client, method)(path)

    if method == "head":
        assert (response.status_code, response["Content-Type"]) == (404, "application/json")
    else:
        assert_error_envelope(response, status=404, code="not_found")


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/api/nothing-here", id="unknown_path"),
        pytest.param(f"/api/wallets/{uuid.uuid4()}/deposit/", id="deposit_with_trailing_slash"),
    ],
)
def test_post_to_an_unknown_path_is_a_json_404_when_csrf_is_enforced(path, treasury_api):
    # A real client, unlike Django's test client, does not skip CSRF checks.
    client = client_like(treasury_api, enforce_csrf_checks=True)

    response = client.post(path, {"amount": "1.00"}, format="json")

    assert_error_envelope(response, status=404, code="not_found")


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/api/transfer/order%001", id="key_lookup"),
        pytest.param("/api/transfer/reference/TXN-%00", id="reference_lookup"),
    ],
)
def test_nul_byte_in_a_lookup_is_not_found(path, treasury_api):
    assert_error_envelope(treasury_api.get(path), status=404, code="transaction_not_found")


def test_non_api_paths_keep_django_html_404(treasury_api):
    # The JSON handlers are scoped to /api/: the admin keeps its own pages.
    response = treasury_api.get("/no-such-page")

    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


# --- 405, 406, 415, 413, 400 from Django ------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        pytest.param("get", "/api/transfer", id="GET_transfer"),
        pytest.param("put", "/api/transfer", id="PUT_transfer"),
        pytest.param("delete", "/api/wallets/{wallet}", id="DELETE_wallet"),
        pytest.param("put", "/api/wallets/{wallet}", id="PUT_wallet"),
        pytest.param("put", "/api/wallets", id="PUT_wallets"),
        pytest.param("get", "/api/wallets/{wallet}/deposit", id="GET_deposit"),
        pytest.param("delete", "/api/wallets/{wallet}/withdraw", id="DELETE_withdraw"),
        pytest.param("post", "/api/wallets/{wallet}/transactions", id="POST_history"),
        pytest.param("post", "/api/transfer/order-1", id="POST_log_by_key"),
        pytest.param("delete", "/api/transfer/reference/TXN-20260101AAAAAAAAAA", id="DELETE_log_by_reference"),
    ],
)
def test_method_not_allowed_is_a_json_405_and_changes_nothing(method, path, treasury_api, wallets):
    before = ledger_state()

    response = getattr(treasury_api, method)(path.format(wallet=wallets[0].pk), {}, format="json")

    assert_error_envelope(response, status=405, code="method_not_allowed")
    assert method.upper() not in response["Allow"]
    assert ledger_state() == before


def test_response_type_other_than_json_is_a_json_406(treasury_api, wallets):
    response = treasury_api.get(f"/api/wallets/{wallets[0].pk}", headers={"Accept": "text/html"})

    assert_error_envelope(response, status=406, code="not_acceptable")


@pytest.mark.parametrize(
    "content_type", ["application/x-www-form-urlencoded", "text/plain", "application/xml", "application/octet-stream"]
)
def test_body_that_is_not_json_is_a_json_415_and_moves_nothing(content_type, treasury_api, wallets):
    before = ledger_state()

    response = treasury_api.generic("POST", "/api/transfer", "amount=10.00", content_type=content_type)

    assert_error_envelope(response, status=415, code="unsupported_media_type")
    assert ledger_state() == before


@pytest.mark.parametrize("path", ["/api/transfer", "/api/wallets"])
def test_body_over_the_limit_is_a_json_413(path, settings, treasury_api, wallets):
    body = {**transfer_body(*wallets), "padding": "x" * settings.API_MAX_BODY_BYTES}

    assert_error_envelope(treasury_api.post(path, body, format="json"), status=413, code="payload_too_large")


def test_disallowed_host_is_a_json_400_from_django(treasury_api):
    response = treasury_api.get("/api/wallets", headers={"Host": "attacker.example"})

    assert_error_envelope(response, status=400, code="bad_request")


# --- 401 ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("authorization", "code"),
    [
        pytest.param(None, "not_authenticated", id="no_header"),
        pytest.param("Token", "authentication_failed", id="token_keyword_without_key"),
        pytest.param("Token a b", "authentication_failed", id="token_with_spaces"),
        pytest.param("Token " + "0" * 40, "authentication_failed", id="unknown_token"),
        pytest.param("Basic dXNlcjpwYXNz", "authentication_failed", id="basic_auth_named_as_the_wrong_scheme"),
    ],
)
def test_missing_or_bad_credentials_are_a_json_401(authorization, code, wallets):
    client = APIClient()
    if authorization:
        client.credentials(HTTP_AUTHORIZATION=authorization)
    before = ledger_state()

    response = client.post("/api/transfer", transfer_body(*wallets), format="json")

    assert_error_envelope(response, status=401, code=code)
    assert response["WWW-Authenticate"] == "Token"
    assert ledger_state() == before


@pytest.mark.parametrize("path", ["/api/schema/", "/api/docs/"])
def test_schema_and_docs_refuse_anonymous_callers_in_json(path):
    assert_error_envelope(APIClient().get(path), status=401, code="not_authenticated")


# --- 500 and 503 -----------------------------------------------------------------------------


def raise_(exc: Exception):
    def raiser(**kwargs):
        raise exc

    return raiser


def test_unexpected_exception_in_a_view_is_a_json_500_and_logged(monkeypatch, caplog, treasury_api, wallets):
    monkeypatch.setattr(services, "movement_answer", raise_(RuntimeError("boom")))

    with caplog.at_level(logging.ERROR, logger="wallet_project.exceptions"):
        response = treasury_api.post("/api/transfer", transfer_body(*wallets), format="json")

    body = assert_error_envelope(response, status=500, code="internal_error")
    assert "boom" not in response.content.decode()  # nothing internal leaks to the client
    assert set(body) == {"success", "message", "code"}
    assert any(record.exc_info and record.exc_info[0] is RuntimeError for record in caplog.records)


def test_crash_outside_the_view_is_a_json_500_from_django(monkeypatch, treasury_api, wallets):
    """Rendering happens after DRF's handler has returned: only Django's handler500 is left."""

    def broken_render(self, data, accepted_media_type=None, renderer_context=None):
        raise RuntimeError("renderer crashed")

    monkeypatch.setattr(JSONRenderer, "render", broken_render)
    client = client_like(treasury_api, raise_request_exception=False)

    response = client.get(f"/api/wallets/{wallets[0].pk}")

    assert_error_envelope(response, status=500, code="internal_error")


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(OperationalError("connection refused"), id="operational_error"),
        pytest.param(InterfaceError("connection already closed"), id="interface_error"),
    ],
)
def test_unreachable_database_during_a_transfer_is_503_with_retry_after(
    error, monkeypatch, settings, treasury_api, wallets
):
    monkeypatch.setattr(services, "movement_answer", raise_(error))

    response = treasury_api.post("/api/transfer", transfer_body(*wallets), format="json")

    assert_error_envelope(response, status=503, code="service_unavailable")
    assert response["Retry-After"] == str(settings.RETRY_AFTER_SECONDS)


@pytest.mark.parametrize("endpoint", ["deposit", "withdraw"])
def test_unreachable_database_during_a_deposit_or_withdrawal_is_503(endpoint, monkeypatch, treasury_api, wallets):
    monkeypatch.setattr(
        services, "movement_answer", raise_(OperationalError("server closed the connection unexpectedly"))
    )

    response = treasury_api.post(
        f"/api/wallets/{wallets[0].pk}/{endpoint}", {"amount": "1.00", "idempotencyKey": "k"}, format="json"
    )

    assert_error_envelope(response, status=503, code="service_unavailable")
    assert response["Retry-After"]


def test_unreachable_database_on_a_read_is_503(monkeypatch, treasury_api, wallets):
    monkeypatch.setattr(selectors, "customer_wallet_get", raise_(OperationalError("could not connect to server")))

    response = treasury_api.get(f"/api/wallets/{wallets[0].pk}")

    assert_error_envelope(response, status=503, code="service_unavailable")
    assert response["Retry-After"]
