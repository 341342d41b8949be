"""One name per thing (docs/api.md, "Names"): a transaction's id is `id` in
the answer to the money request as in its lookups and history
(`transactionId`, the same value, stays for existing clients), and each side
of a transaction says what kind of wallet it is, so a deposit's source is a
SETTLEMENT wallet, not a mystery 404."""

import pytest

pytestmark = pytest.mark.django_db


def test_a_money_answer_names_the_transaction_id_as_its_lookups_do(treasury_api, funded_wallet):
    wallet = funded_wallet("0")

    answer = treasury_api.post(
        f"/api/wallets/{wallet.pk}/deposit", {"amount": "5.00", "idempotencyKey": "top-up-1"}, format="json"
    )
    looked_up = treasury_api.get("/api/transfer/top-up-1").json()["data"]
    by_reference = treasury_api.get(f"/api/transfer/reference/{looked_up['reference']}").json()["data"]

    assert answer.status_code == 201
    data = answer.json()["data"]
    assert data["id"] == data["transactionId"] == looked_up["id"] == by_reference["id"]


def test_each_side_says_whether_it_is_a_customer_or_the_settlement_wallet(treasury_api, funded_wallet):
    wallet, other = funded_wallet("0"), funded_wallet("0")
    treasury_api.post(f"/api/wallets/{wallet.pk}/deposit", {"amount": "5.00", "idempotencyKey": "in"}, format="json")
    treasury_api.post(f"/api/wallets/{wallet.pk}/withdraw", {"amount": "1.00", "idempotencyKey": "out"}, format="json")
    body = {"sourceWalletId": str(wallet.pk), "destinationWalletId": str(other.pk), "amount": "1.00"}
    treasury_api.post("/api/transfer", {**body, "idempotencyKey": "across"}, format="json")

    history = treasury_api.get(f"/api/wallets/{wallet.pk}/transactions").json()["data"]["results"]
    deposit = treasury_api.get("/api/transfer/in").json()["data"]

    assert [(row["idempotencyKey"], row["sourceWalletKind"], row["destinationWalletKind"]) for row in history] == [
        ("across", "CUSTOMER", "CUSTOMER"),
        ("out", "CUSTOMER", "SETTLEMENT"),
        ("in", "SETTLEMENT", "CUSTOMER"),
    ]
    assert (deposit["sourceWalletKind"], deposit["destinationWalletKind"]) == ("SETTLEMENT", "CUSTOMER")
    # The settlement wallet is not the client's to read: the marker is what tells it so.
    assert treasury_api.get(f"/api/wallets/{deposit['sourceWalletId']}").status_code == 404
