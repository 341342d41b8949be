"""Every error message says what went wrong and what to do about it: a
client reading only the message can fix its request."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from conftest import make_api_client
from transfers.models import TransactionLog
from wallet_project.tests import assert_error_envelope

pytestmark = pytest.mark.django_db

STATUS = {"authentication_failed": 401, "not_authenticated": 401, "not_found": 404, "permission_denied": 403}


def test_bearer_scheme_is_refused_by_name_with_the_token_scheme_to_use(treasury_api):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {treasury_api.api_key}")

    response = client.get("/api/wallets?userId=7d0e1c5e-8f6a-4a43-9e4f-0e8d6c1f2a10")

    body = assert_error_envelope(response, status=STATUS["authentication_failed"], code="authentication_failed")
    assert "Authorization: Token <key>" in body["message"]
    assert "Bearer" in body["message"]
    assert "not provided" not in body["message"]


def test_unprintable_scheme_is_not_echoed(treasury_api):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="B\x01earer x")

    body = assert_error_envelope(
        client.get("/api/wallets"), status=STATUS["authentication_failed"], code="authentication_failed"
    )

    assert "\x01" not in body["message"]
    assert "another scheme" in body["message"]


def test_no_key_says_how_to_send_one():
    body = assert_error_envelope(
        APIClient().get("/api/wallets"), status=STATUS["not_authenticated"], code="not_authenticated"
    )

    assert body["message"] == "No API key was sent: send it as `Authorization: Token <key>`."


def test_unknown_key_says_what_to_do():
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token wk_nothere_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx")

    body = assert_error_envelope(
        client.get("/api/wallets"), status=STATUS["authentication_failed"], code="authentication_failed"
    )

    assert "Unknown or revoked API key" in body["message"]


@pytest.mark.parametrize(
    ("method", "path", "use"),
    [
        ("post", "/api/wallets/", "/api/wallets"),
        ("post", "/api/transfer/", "/api/transfer"),
        ("get", "/api/wallets/7d0e1c5e-8f6a-4a43-9e4f-0e8d6c1f2a10/transactions/", None),
    ],
)
def test_trailing_slash_is_named(treasury_api, method, path, use):
    response = getattr(treasury_api, method)(path, {}, format="json")

    body = assert_error_envelope(response, status=STATUS["not_found"], code="not_found")
    assert "no trailing slash" in body["message"]
    assert use is None or f"use {use}." in body["message"]


def test_malformed_wallet_id_is_named(treasury_api):
    response = treasury_api.get("/api/wallets/not-a-uuid")

    body = assert_error_envelope(response, status=STATUS["not_found"], code="not_found")
    assert body["message"].startswith("'not-a-uuid' is not a wallet id: ids are UUIDs")


def test_malformed_wallet_id_of_a_money_route_is_named_and_moves_nothing(treasury_api):
    response = treasury_api.post("/api/wallets/12345/deposit", {"amount": "1.00", "idempotencyKey": "k"}, format="json")

    body = assert_error_envelope(response, status=STATUS["not_found"], code="not_found")
    assert "'12345' is not a wallet id" in body["message"]
    assert not TransactionLog.objects.exists()


def test_unknown_path_points_to_the_docs(treasury_api):
    body = assert_error_envelope(treasury_api.get("/api/nothing-here"), status=STATUS["not_found"], code="not_found")

    assert "/api/docs/" in body["message"]


def test_forbidden_action_names_the_missing_permission(funded_wallet, transfer_api):
    wallet = funded_wallet("10.00")

    response = transfer_api.post(
        f"/api/wallets/{wallet.pk}/deposit", {"amount": "1.00", "idempotencyKey": "k"}, format="json"
    )

    body = assert_error_envelope(response, status=STATUS["permission_denied"], code="permission_denied")
    assert "transfers.create_deposit" in body["message"]
    assert "group" in body["message"]


@pytest.mark.parametrize(
    ("action", "message"),
    [("deposit", "Deposit completed"), ("withdraw", "Withdrawal completed")],
)
def test_money_message_names_the_movement(funded_wallet, treasury_api, action, message):
    wallet = funded_wallet("10.00")

    response = treasury_api.post(
        f"/api/wallets/{wallet.pk}/{action}", {"amount": "1.00", "idempotencyKey": f"k-{action}"}, format="json"
    )

    assert response.status_code == 201
    assert response.json()["data"]["message"] == message


def test_unknown_group_lists_the_groups():
    make_api_client("Transfer client")  # the migrated groups exist

    with pytest.raises(CommandError) as refused:
        call_command("create_api_client", "loan-service", "--group", "Transfer clients", stdout=StringIO())

    assert "No such group: Transfer clients" in str(refused.value)
    assert '"Transfer client"' in str(refused.value)
    assert '"Treasury client"' in str(refused.value)
