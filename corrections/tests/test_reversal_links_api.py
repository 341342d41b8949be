"""A reversal and its compensating transaction name each other in the API
(reversalOf, reversedBy), by key and by reference."""

from decimal import Decimal

import pytest

from corrections.tests.people import reversed_with_four_eyes
from transfers import services

pytestmark = pytest.mark.django_db


def test_the_original_and_its_reversal_link_to_each_other(treasury_api, funded_wallet, wallet_owner):
    source, destination = funded_wallet("100.00"), funded_wallet("0")
    original = services.transfer_create(
        client=wallet_owner, source_wallet_id=source.pk, destination_wallet_id=destination.pk,
        amount=Decimal("40.00"), idempotency_key="to-reverse", metadata={},
    ).log  # fmt: skip
    before = treasury_api.get("/api/transfer/to-reverse").json()["data"]
    assert (before["reversalOf"], before["reversedBy"]) == (None, None)

    compensation = reversed_with_four_eyes(original.pk, "paid twice")

    by_key = treasury_api.get("/api/transfer/to-reverse").json()["data"]
    assert (by_key["status"], by_key["reversalOf"], by_key["reversedBy"]) == ("REVERSED", None, str(compensation.pk))
    by_reference = treasury_api.get(f"/api/transfer/reference/{compensation.reference}").json()["data"]
    assert (by_reference["reversalOf"], by_reference["reversedBy"]) == (str(original.pk), None)
