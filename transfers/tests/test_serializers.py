"""The money serializers' speed-ups keep their behaviour: the written-out
response matches what DRF's declared fields would render, and shallow-copied
fields stay per instance."""

import uuid
from decimal import Decimal

import pytest
from rest_framework import serializers

from transfers.models import MovementResult, TransactionLog, TransactionStatus, TransactionType
from transfers.serializers import MovementResultSerializer, TransferRequestSerializer
from wallet_project.api import LeanSerializer


def declared_rendering(result: MovementResult) -> dict:
    """What DRF's own Serializer.to_representation makes of the declared fields."""
    return serializers.Serializer.to_representation(MovementResultSerializer(result), result)


@pytest.mark.parametrize(
    ("status", "replayed", "error_message"),
    [
        (TransactionStatus.COMPLETED, False, ""),
        (TransactionStatus.COMPLETED, True, ""),
        (TransactionStatus.FAILED, False, "Insufficient balance."),
        (TransactionStatus.FAILED, True, "Insufficient balance."),
        ("COMPLETED", False, ""),  # a status read back as a plain string
    ],
)
def test_the_written_out_response_matches_the_declared_fields(status, replayed, error_message):
    log = TransactionLog(
        id=uuid.uuid4(),
        type=TransactionType.DEPOSIT,
        status=status,
        reference="TXN-20261124ABCDEFGHJK",
        error_message=error_message,
    )
    result = MovementResult(log=log, replayed=replayed)

    rendered = MovementResultSerializer(result).data

    assert rendered == declared_rendering(result)
    assert list(rendered) == list(MovementResultSerializer().fields)


def test_shallow_copied_fields_belong_to_their_own_serializer():
    first = TransferRequestSerializer(data={})
    second = TransferRequestSerializer(data={})

    for name in first.fields:
        assert first.fields[name] is not second.fields[name]
        assert first.fields[name].parent is first and second.fields[name].parent is second


def test_two_serializers_validate_independently(rf):
    from rest_framework.request import Request

    request = Request(rf.post("/api/transfer", HTTP_IDEMPOTENCY_KEY="k-1"))
    good = {"sourceWalletId": str(uuid.uuid4()), "destinationWalletId": str(uuid.uuid4()), "amount": "1.25"}
    bad = {**good, "amount": "1.234"}

    first = TransferRequestSerializer(data=bad, context={"request": request})
    second = TransferRequestSerializer(data=good, context={"request": request})

    assert first.is_valid() is False and "amount" in first.errors
    assert second.is_valid() is True, second.errors
    assert second.validated_data["amount"] == Decimal("1.25")


def test_a_nested_serializer_is_refused():
    with pytest.raises(TypeError, match="nested"):

        class Nested(LeanSerializer):
            inner = TransferRequestSerializer()
