import pytest

pytestmark = pytest.mark.django_db


def test_transfer_moves_money_between_two_wallets(treasury_api, funded_wallet):
    source, destination = funded_wallet("100.00"), funded_wallet("0")
    response = treasury_api.post(
        "/api/transfer",
        {"sourceWalletId": str(source.pk), "destinationWalletId": str(destination.pk), "amount": "40.25"},
        format="json",
        headers={"Idempotency-Key": "k1"},
    )
    assert response.status_code == 201, response.json()
    source.refresh_from_db()
    destination.refresh_from_db()
    assert (str(source.balance), str(destination.balance)) == ("59.75", "40.25")
