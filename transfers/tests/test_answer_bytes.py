"""The money answers are rendered to bytes once (wallet_project.api.ok_rendered),
without REST framework's Response: their bytes and headers are what
JSONRenderer wrote, and content negotiation refuses what it refused."""

import json
import uuid

import pytest
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from wallet_project.api import ok_rendered
from wallet_project.tests import assert_error_envelope

pytestmark = pytest.mark.django_db


def drf_bytes(response) -> bytes:
    """What JSONRenderer writes for the answer's JSON, key order kept."""
    return JSONRenderer().render(json.loads(response.content))


def transfer(api, source, destination, *, key, amount="10.00", headers=None, **fields):
    body = {"sourceWalletId": str(source.pk), "destinationWalletId": str(destination.pk), "amount": amount, **fields}
    return api.post("/api/transfer", body, format="json", headers={"Idempotency-Key": key, **(headers or {})})


def assert_rendered_as_drf_did(response, status):
    assert response.status_code == status
    assert response["Content-Type"] == "application/json"
    assert response.content == drf_bytes(response)
    assert response["Cache-Control"] == "no-store" and response["X-Request-ID"]


def test_a_transfer_and_its_replay_are_drfs_bytes_with_their_headers(transfer_api, funded_wallet):
    source, destination = funded_wallet("100.00"), funded_wallet("0.00")

    first = transfer(transfer_api, source, destination, key="bytes-1", metadata={"note": "café \u2028"})
    again = transfer(transfer_api, source, destination, key="bytes-1", metadata={"note": "café \u2028"})

    assert_rendered_as_drf_did(first, 201)
    assert "Idempotent-Replayed" not in first
    assert_rendered_as_drf_did(again, 200)
    assert again["Idempotent-Replayed"] == "true"
    assert list(first.json()["data"]) == ["id", "transactionId", "status", "reference", "message"]
    assert first.json()["data"]["id"] == again.json()["data"]["id"]


def test_a_deposit_and_a_batch_are_drfs_bytes(treasury_api, transfer_api, funded_wallet):
    wallet, other = funded_wallet("100.00"), funded_wallet("0.00")

    deposit = treasury_api.post(
        f"/api/wallets/{wallet.pk}/deposit", {"amount": "5.00"}, format="json", headers={"Idempotency-Key": "bytes-d"}
    )
    body = {
        "sourceWalletId": str(wallet.pk),
        "atomic": False,
        "transfers": [{"destinationWalletId": str(other.pk), "amount": "1.50", "idempotencyKey": "bytes-p1"}],
    }
    batch = transfer_api.post("/api/transfers/batch", body, format="json", headers={"Idempotency-Key": "bytes-b"})
    batch_again = transfer_api.post("/api/transfers/batch", body, format="json", headers={"Idempotency-Key": "bytes-b"})

    assert_rendered_as_drf_did(deposit, 201)
    assert_rendered_as_drf_did(batch, 201)
    assert_rendered_as_drf_did(batch_again, 200)
    assert batch_again["Idempotent-Replayed"] == "true"
    assert batch.json()["data"]["createdAt"].endswith("Z") and batch.json()["data"]["totalAmount"] == "1.50"


@pytest.mark.parametrize(
    "data",
    [
        {"reference": "line\u2028separator\u2029paragraph", "message": "naïve ₦ 🙂", "n": 3, "ok": True, "none": None},
        {"payouts": [{"amount": "1.50", "errorCode": None}], "failedPayoutIndex": 0, "atomic": False},
        # Every character JSON escapes, and DEL, which it does not.
        {"message": "".join(map(chr, range(0x20))) + '"\\/\x7f', "count": -(2**63)},
        # Past what orjson writes (64 bits): the json module's bytes.
        {"big": 2**64, "negative": -(2**64) - 1, "reference": "\u2028"},
    ],
)
def test_the_bytes_are_json_renderers(data):
    request = Request(APIRequestFactory().post("/api/transfer"))
    request.accepted_renderer, request.accepted_media_type = JSONRenderer(), "application/json"

    response = ok_rendered(request, data, status=201, headers={"Idempotent-Replayed": "true"})

    assert response.content == JSONRenderer().render({"success": True, "data": data})
    assert response.status_code == 201 and response["Idempotent-Replayed"] == "true"


def test_a_json_media_type_with_parameters_is_still_rendered_by_drf(transfer_api, funded_wallet):
    source, destination = funded_wallet("100.00"), funded_wallet("0.00")

    response = transfer(
        transfer_api, source, destination, key="bytes-indent", headers={"Accept": "application/json; indent=2"}
    )

    assert response.status_code == 201
    assert response.content == JSONRenderer().render(response.json(), "application/json; indent=2")
    assert response.content.startswith(b'{\n  "success": true')


@pytest.mark.parametrize(("accept", "query"), [("text/html", ""), ("application/json;q=0", ""), ("", "?format=csv")])
def test_negotiation_refuses_a_money_request_as_it_did(accept, query, transfer_api, funded_wallet):
    source, destination = funded_wallet("100.00"), funded_wallet("0.00")
    body = {"sourceWalletId": str(source.pk), "destinationWalletId": str(destination.pk), "amount": "1.00"}
    key = f"bytes-{uuid.uuid4()}"

    response = transfer_api.post(
        f"/api/transfer{query}", body, format="json", headers={"Idempotency-Key": key, "Accept": accept}
    )

    if query:
        assert_error_envelope(response, status=400, code="validation_error")
    else:
        assert_error_envelope(response, status=406, code="not_acceptable")
    source.refresh_from_db()
    assert source.balance == 100
