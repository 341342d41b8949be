"""A retry byte for byte identical to the request that made a finished log is
answered from the log without its body being parsed or validated
(models.Found.answers_unread); anything else is read and goes through the
whole protocol, so the contract's answers are the same either way."""

import json
from decimal import Decimal

import pytest

from transfers.models import TransactionLog, TransactionStatus
from transfers.serializers import MoneyRequestSerializer
from wallet_project.policies import DecimalJSONParser

# The contract holds straight to PostgreSQL and through PgBouncer alike.
pytestmark = [pytest.mark.django_db, pytest.mark.through_pgbouncer]


@pytest.fixture
def reads(monkeypatch) -> list[str]:
    """Every parse and every validation of a money request's body, in order."""
    seen: list[str] = []
    parse, is_valid = DecimalJSONParser.parse, MoneyRequestSerializer.is_valid

    def counted_parse(self, *args, **kwargs):
        seen.append("parse")
        return parse(self, *args, **kwargs)

    def counted_is_valid(self, *args, **kwargs):
        seen.append("validate")
        return is_valid(self, *args, **kwargs)

    monkeypatch.setattr(DecimalJSONParser, "parse", counted_parse)
    # The transfer serializer inherits it: one patch counts every money request.
    monkeypatch.setattr(MoneyRequestSerializer, "is_valid", counted_is_valid)
    return seen


def post(api, path: str, body: dict, key: str | None = "key-1", content_type: str = "application/json"):
    headers = {"Idempotency-Key": key} if key else {}
    return api.generic("POST", path, json.dumps(body), content_type=content_type, headers=headers)


def transfer_body(source, destination, amount="10.00", **extra) -> dict:
    return {"sourceWalletId": str(source.pk), "destinationWalletId": str(destination.pk), "amount": amount, **extra}


def balances(*wallets):
    return [type(w).objects.get(pk=w.pk).balance for w in wallets]


def test_a_byte_identical_retry_is_replayed_without_reading_its_body(treasury_api, funded_wallet, reads):
    source, destination = funded_wallet("100.00"), funded_wallet("0")
    body = transfer_body(source, destination, metadata={"loan": "L-1"})
    first = post(treasury_api, "/api/transfer", body)
    assert first.status_code == 201
    assert reads == ["parse", "validate"]

    again = post(treasury_api, "/api/transfer", body)

    assert again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["data"] == {**first.json()["data"], "message": "Transaction already processed"}
    assert reads == ["parse", "validate"]  # nothing more was read
    assert balances(source, destination) == [Decimal("90.00"), Decimal("10.00")]
    assert len(TransactionLog.objects.get(idempotency_key="key-1").body_digest) == 64


def test_the_same_request_written_differently_is_read_and_replayed(treasury_api, funded_wallet, reads):
    source, destination = funded_wallet("100.00"), funded_wallet("0")
    assert post(treasury_api, "/api/transfer", transfer_body(source, destination, "10")).status_code == 201

    again = post(treasury_api, "/api/transfer", transfer_body(source, destination, "10.00"))

    assert again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert reads == ["parse", "validate"] * 2
    assert balances(source, destination) == [Decimal("90.00"), Decimal("10.00")]


def test_a_failed_request_retried_byte_for_byte_is_the_same_failure_unread(treasury_api, funded_wallet, reads):
    source, destination = funded_wallet("5.00"), funded_wallet("0")
    body = transfer_body(source, destination, "10.00")
    first = post(treasury_api, "/api/transfer", body)
    assert (first.status_code, first.json()["code"]) == (422, "insufficient_balance")

    again = post(treasury_api, "/api/transfer", body)

    assert (again.status_code, again.json()["code"]) == (422, "insufficient_balance")
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["data"]["transactionId"] == first.json()["data"]["transactionId"]
    assert reads == ["parse", "validate"]
    assert TransactionLog.objects.get(client=treasury_api.user, type="TRANSFER").status == TransactionStatus.FAILED


def test_the_same_body_and_key_for_another_wallets_deposit_is_a_reused_key(treasury_api, funded_wallet, reads):
    # The path is part of what a retry must repeat: the wallet is in it.
    first_wallet, second_wallet = funded_wallet("0"), funded_wallet("0")
    body = {"amount": "50.00"}
    assert post(treasury_api, f"/api/wallets/{first_wallet.pk}/deposit", body).status_code == 201

    other = post(treasury_api, f"/api/wallets/{second_wallet.pk}/deposit", body)

    assert (other.status_code, other.json()["code"]) == (422, "idempotency_key_reused")
    assert reads == ["parse", "validate"] * 2
    assert balances(first_wallet, second_wallet) == [Decimal("50.00"), Decimal("0.00")]


def test_the_same_bytes_as_another_content_type_are_read_and_refused(treasury_api, funded_wallet):
    source, destination = funded_wallet("100.00"), funded_wallet("0")
    body = transfer_body(source, destination)
    assert post(treasury_api, "/api/transfer", body).status_code == 201

    again = post(treasury_api, "/api/transfer", body, content_type="text/plain")

    assert (again.status_code, again.json()["code"]) == (415, "unsupported_media_type")
    assert balances(source, destination) == [Decimal("90.00"), Decimal("10.00")]


def test_with_the_key_in_the_body_only_a_retry_is_read_then_replayed(treasury_api, funded_wallet, reads):
    source, destination = funded_wallet("100.00"), funded_wallet("0")
    body = transfer_body(source, destination, idempotencyKey="in-the-body")
    assert post(treasury_api, "/api/transfer", body, key=None).status_code == 201

    again = post(treasury_api, "/api/transfer", body, key=None)

    assert again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert reads == ["parse", "validate"] * 2
    assert balances(source, destination) == [Decimal("90.00"), Decimal("10.00")]


def test_a_malformed_header_key_is_read_and_reported(treasury_api, funded_wallet, reads):
    source, destination = funded_wallet("100.00"), funded_wallet("0")

    response = post(treasury_api, "/api/transfer", transfer_body(source, destination), key="k" * 256)

    assert response.status_code == 400
    assert "idempotencyKey" in response.json()["errors"]
    assert reads == ["parse", "validate"]
    assert not TransactionLog.objects.filter(client=treasury_api.user, type="TRANSFER").exists()


# --- a batch: the same rule, decided in the same place ---------------------------------


def test_a_byte_identical_batch_retry_is_replayed_without_reading_its_body(monkeypatch, transfer_api, funded_wallet):
    from transfers.serializers import BatchRequestSerializer

    validated = []
    is_valid = BatchRequestSerializer.is_valid
    monkeypatch.setattr(
        BatchRequestSerializer, "is_valid", lambda self, **kw: validated.append(1) or is_valid(self, **kw)
    )
    pool, payee = funded_wallet("100.00"), funded_wallet("0")
    body = {
        "sourceWalletId": str(pool.pk),
        "atomic": False,
        "transfers": [{"destinationWalletId": str(payee.pk), "amount": "10.00", "idempotencyKey": "payout-1"}],
    }
    first = post(transfer_api, "/api/transfers/batch", body, key="batch-1")
    assert first.status_code == 201 and validated == [1]

    again = post(transfer_api, "/api/transfers/batch", body, key="batch-1")

    assert again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["data"] == {**first.json()["data"], "message": "Batch already processed"}
    assert validated == [1]  # nothing more was read
    assert balances(pool, payee) == [Decimal("90.00"), Decimal("10.00")]


def test_a_batch_written_differently_is_read_and_replayed(monkeypatch, transfer_api, funded_wallet):
    pool, payee = funded_wallet("100.00"), funded_wallet("0")
    payouts = [{"destinationWalletId": str(payee.pk), "amount": "10", "idempotencyKey": "payout-1"}]
    body = {"sourceWalletId": str(pool.pk), "atomic": False, "transfers": payouts}
    assert post(transfer_api, "/api/transfers/batch", body, key="batch-1").status_code == 201

    again = post(
        transfer_api, "/api/transfers/batch", {**body, "transfers": [{**payouts[0], "amount": "10.00"}]}, "batch-1"
    )

    assert again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert balances(pool, payee) == [Decimal("90.00"), Decimal("10.00")]
