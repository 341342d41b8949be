"""A batch's payouts are read by a short path (transfers.serializers.read_payout)
that answers exactly as DRF's path: the same values, and for every kind of
bad payout the same errors with the same codes under the same index; a
payout serializer that reads otherwise gets DRF's path."""

import uuid
from decimal import Decimal

import pytest
from django.utils import timezone
from rest_framework import serializers
from rest_framework.exceptions import ErrorDetail

from transfers import serializers as transfer_serializers
from transfers.models import REFERENCE_ALPHABET, REFERENCE_FORMAT, new_reference, new_references
from transfers.serializers import PayoutListSerializer, PayoutRequestSerializer
from wallet_project.policies import decode_json

WALLET = "5b971839-c77c-cdbd-76dd-325c1634e9fe"


def good(**change) -> dict:
    payout = {"destinationWalletId": WALLET, "amount": "1.50", "idempotencyKey": f"p-{uuid.uuid4()}"}
    payout.update(change)
    return {name: value for name, value in payout.items() if value is not MISSING}


MISSING = object()

# Every kind of payout a client can send, good and bad, one field at a time
# and some at once: each read alone and all of them in one list.
PAYOUTS = [
    good(),
    good(amount="1"),
    good(amount=Decimal("2.5")),
    good(amount=7),
    good(amount="000000000000000000001.00"),
    good(amount="999999999999999999.99"),
    good(metadata={"loan": "L-1", "n": 3, "rate": Decimal("1.5"), "nested": [{"a": None}]}),
    good(metadata={}),
    good(destinationWalletId=WALLET.replace("-", "")),
    good(destinationWalletId=WALLET.upper()),
    good(idempotencyKey="ключ/один"),
    # not a payout at all
    "payout",
    5,
    None,
    True,
    [],
    [good()],
    {},
    # the wallet
    good(destinationWalletId=MISSING),
    good(destinationWalletId=None),
    good(destinationWalletId=""),
    good(destinationWalletId=5),
    good(destinationWalletId=True),
    good(destinationWalletId="not-a-uuid"),
    good(destinationWalletId=f"{{{WALLET}}}"),
    good(destinationWalletId=f"urn:uuid:{WALLET}"),
    good(destinationWalletId=f" {WALLET}"),
    good(destinationWalletId=[WALLET]),
    # the amount
    good(amount=MISSING),
    good(amount=None),
    good(amount=""),
    good(amount="0"),
    good(amount="0.00"),
    good(amount="-1"),
    good(amount="1.001"),
    good(amount=Decimal("1.001")),
    good(amount="1e2"),
    good(amount=Decimal("1E+2")),
    good(amount=" 1.00"),
    good(amount="1,00"),
    good(amount=True),
    good(amount=1.5),
    good(amount=0),
    good(amount=10**20),
    good(amount="1000000000000000000.00"),
    good(amount="0" * 1000 + "1"),
    good(amount=[1]),
    good(amount={"value": 1}),
    # the key
    good(idempotencyKey=MISSING),
    good(idempotencyKey=None),
    good(idempotencyKey=""),
    good(idempotencyKey=" "),
    good(idempotencyKey=" k"),
    good(idempotencyKey="k\t"),
    good(idempotencyKey=7),
    good(idempotencyKey=["k"]),
    good(idempotencyKey="a/../b"),
    good(idempotencyKey="."),
    good(idempotencyKey="reference/x"),
    good(idempotencyKey="hold:x"),
    good(idempotencyKey="k" * 256),
    good(idempotencyKey="k\x00"),
    good(idempotencyKey="k\ud800"),
    good(idempotencyKey="k\u200b"),
    # metadata
    good(metadata=None),
    good(metadata="notes"),
    good(metadata=[1]),
    good(metadata={"a": "x" * 5000}),
    good(metadata={"a": Decimal("1e400")}),
    # unknown fields, and several faults at once
    good(status="COMPLETED"),
    good(sourceWalletId=WALLET, metdata={}),
    good(amount="0", idempotencyKey="", destinationWalletId="x"),
    good(amount=MISSING, idempotencyKey=MISSING, destinationWalletId=MISSING),
]


def comparable(detail):
    """Errors with each message's code, so that two answers are equal only
    when their codes are too (ErrorDetail compares its text alone with a str)."""
    if isinstance(detail, dict):
        return {key: comparable(value) for key, value in detail.items()}
    if isinstance(detail, list):
        return [comparable(value) for value in detail]
    if isinstance(detail, ErrorDetail):
        return str(detail), detail.code
    return detail


def answer(serializer: serializers.ListSerializer):
    """What a list serializer answers: its values, with their types and
    exact text (Decimal('1.5') is not Decimal('1.50')), or its errors."""
    if serializer.is_valid():
        values = serializer.validated_data
        return "valid", [{key: (type(value), repr(value)) for key, value in p.items()} for p in values]
    return "invalid", comparable(serializer.errors)


def drfs_path(payouts) -> serializers.ListSerializer:
    """The payouts read by DRF's own ListSerializer, each by the payout
    serializer's run_validation."""
    return serializers.ListSerializer(child=PayoutRequestSerializer(), data=payouts, allow_empty=False)


@pytest.mark.parametrize("payout", PAYOUTS)
def test_each_payout_is_answered_as_drfs_path_answers_it(payout):
    payouts = [good(), payout]

    assert answer(PayoutRequestSerializer(many=True, data=payouts)) == answer(drfs_path(payouts))


def test_a_list_of_every_kind_of_payout_is_answered_as_drfs_path_answers_it():
    """All of them at once: every error under its own payout's index."""
    short, drf = PayoutRequestSerializer(many=True, data=PAYOUTS), drfs_path(PAYOUTS)

    assert answer(short) == answer(drf)
    assert set(short.errors) == {index for index, p in enumerate(PAYOUTS) if drf.errors.get(index)}


def test_a_parsed_batch_body_is_answered_as_drfs_path_answers_it():
    """Through the parser, as a request's body is read: numbers as Decimal and int."""
    text = (
        '[{"destinationWalletId": "WALLET", "amount": 12.5, "idempotencyKey": "a"},'
        ' {"destinationWalletId": "WALLET", "amount": 3, "idempotencyKey": "b", "metadata": {"x": 1.25, "y": 10}},'
        ' {"destinationWalletId": "WALLET", "amount": 1.005, "idempotencyKey": "c"}]'
    ).replace("WALLET", WALLET)
    payouts = decode_json(text.encode())

    assert answer(PayoutRequestSerializer(many=True, data=payouts)) == answer(drfs_path(payouts))
    assert answer(PayoutRequestSerializer(many=True, data=payouts[:2])) == answer(drfs_path(payouts[:2]))


def test_good_payouts_are_read_by_the_short_path(monkeypatch):
    """The payout serializer's own run_validation is not called for a good
    payout (a bad one still reaches it)."""
    assert PayoutRequestSerializer.reads_as_declared
    assert isinstance(PayoutRequestSerializer(many=True), PayoutListSerializer)
    called = []
    drf_run_validation = PayoutRequestSerializer.run_validation

    def counted(self, data=serializers.empty):
        called.append(data)
        return drf_run_validation(self, data)

    monkeypatch.setattr(PayoutRequestSerializer, "run_validation", counted)
    monkeypatch.setattr(PayoutRequestSerializer, "reads_as_declared", True)
    payouts = [good(), good(metadata={"a": 1}), good(amount="0")]

    serializer = PayoutRequestSerializer(many=True, data=payouts)

    assert not serializer.is_valid()
    assert called == [payouts[2]]


class RefusesLargeAmounts(PayoutRequestSerializer):
    def validate_amount(self, value):
        if value > 100:
            raise serializers.ValidationError("At most 100 a payout here.")
        return value


class ReadsItsOwnWay(PayoutRequestSerializer):
    def to_internal_value(self, data):
        if data.get("amount") == "13.00":
            raise serializers.ValidationError({"amount": ["Unlucky."]})
        return super().to_internal_value(data)


class ValidatesItsOwnWay(PayoutRequestSerializer):
    def run_validation(self, data=serializers.empty):
        value = super().run_validation(data)
        if value["amount"] == 13:
            raise serializers.ValidationError({"amount": ["Unlucky."]})
        return value


class BuildsItsOwnFields(PayoutRequestSerializer):
    def get_fields(self):
        fields = super().get_fields()
        fields["amount"] = serializers.CharField(max_length=4)
        return fields


@pytest.mark.parametrize(
    ("subclass", "amount", "error"),
    [
        (RefusesLargeAmounts, "500.00", "At most 100 a payout here."),
        (ReadsItsOwnWay, "13.00", "Unlucky."),
        (ValidatesItsOwnWay, "13.00", "Unlucky."),
        (BuildsItsOwnFields, "1000.00", "Ensure this field has no more than 4 characters."),
    ],
    ids=lambda v: v.__name__ if isinstance(v, type) else None,
)
def test_a_payout_serializer_that_reads_its_own_way_gets_drfs_path(subclass, amount, error):
    """A subclass with a validate_<field> method, or its own
    to_internal_value, run_validation or get_fields: its own reading runs."""
    assert not subclass.reads_as_declared
    serializer = subclass(many=True, data=[good(), good(amount=amount)])

    assert isinstance(serializer, PayoutListSerializer)
    assert not serializer.is_valid()
    assert serializer.errors == {1: {"amount": [error]}}


def test_a_payout_serializer_built_with_validators_of_its_own_runs_them():
    """What varies per object rather than per class: validators given to
    the payout serializer when it is built run as on DRF's path."""

    def refuse_thirteen(payout):
        if payout["amount"] == 13:
            raise serializers.ValidationError("Unlucky.")

    child = PayoutRequestSerializer(validators=[refuse_thirteen])
    serializer = PayoutListSerializer(child=child, data=[good(), good(amount="13.00")])

    assert not serializer.is_valid()
    assert serializer.errors == {1: {"nonFieldErrors": ["Unlucky."]}}


def test_the_short_path_is_decided_once_per_class():
    assert PayoutRequestSerializer.reads_as_declared is True
    assert PayoutRequestSerializer.__dict__["reads_as_declared"] is True
    assert "reads_as_declared" not in transfer_serializers.PayoutListSerializer.__dict__


def test_a_batchs_references_are_drawn_together_each_as_new_reference_makes_one():
    """new_references: today's date, ten characters of the alphabet each,
    every one its own; new_reference is the one-reference case."""
    today = "TXN-" + timezone.now().date().strftime("%Y%m%d")
    references = new_references(1000) + [new_reference()]

    assert len(set(references)) == 1001
    for reference in references:
        assert REFERENCE_FORMAT.fullmatch(reference) and reference.startswith(today), reference
        assert len(reference) == len(today) + 10 and set(reference[len(today) :]) <= set(REFERENCE_ALPHABET)
    assert new_references(0) == []
