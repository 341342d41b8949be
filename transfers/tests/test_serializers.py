"""The money serializers' speed-ups keep their behaviour: the written-out
response matches what DRF's declared fields would render, and shallow-copied
fields stay per instance."""

import random
import uuid
from decimal import Decimal

import pytest
from rest_framework import serializers

from transfers.models import MovementResult, TransactionLog, TransactionStatus, TransactionType
from transfers.serializers import (
    AmountField,
    MovementResultSerializer,
    TransferRequestSerializer,
    plain_amount,
    takes_plain_amounts,
)
from wallet_project.api import LeanSerializer, ReadsAsDeclared
from wallets.models import CENT, MAX_AMOUNT, MIN_AMOUNT


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


def amounts_to_compare(count: int) -> list:
    """`count` inputs an amount field may meet: decimal strings, Decimals and
    ints of every length, sign and number of places (some past the bounds,
    some past DRF's MAX_STRING_LENGTH), and the edges and wrong types."""
    rng = random.Random(27)
    edges = [
        MIN_AMOUNT, MIN_AMOUNT - CENT, MAX_AMOUNT, MAX_AMOUNT + CENT, str(MAX_AMOUNT), str(MAX_AMOUNT + CENT),
        0, -0, "0", "-0", "0.00", Decimal("-0.01"), Decimal("1E+2"), Decimal("1E+20"), Decimal("1.000"),
        Decimal("1.0"), Decimal("NaN"), Decimal("sNaN"), Decimal("Infinity"), Decimal("-Infinity"), "NaN",
        "0" * 1000 + "1", "0" * 999 + "1", "0" * 997 + "1.5", "1." + "0" * 999, 10**18, 10**18 - 1, 1,
        True, False, 1.5, None, "", " 1", "1 ", "1e2", "1_000", "+1", "\uff11", [1], {"a": 1},
    ]  # fmt: skip
    values = list(edges)
    while len(values) < count:
        whole = "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 22)))
        places = rng.choice([0, 0, 1, 2, 2, 2, 3, 4])
        text = whole + ("." + "".join(rng.choice("0123456789") for _ in range(places)) if places else "")
        text = rng.choice(["", "", "", "-", "000"]) + text
        kind = rng.choice([str, Decimal, int] if places == 0 else [str, Decimal])
        values.append(kind(text))
    return values


def test_an_amounts_short_path_answers_as_drfs_path():
    """AmountField.run_validation's short path (plain_amount) returns what
    DRF's path returns for the same field, and every error is DRF's path's:
    the same answer for 6,000 inputs, most of them read by the short path."""
    field = AmountField()
    assert field.plain

    def answer(run, value):
        try:
            amount = run(value)
        except serializers.ValidationError as error:
            return "error", error.detail
        return "ok", amount, str(amount)

    values = amounts_to_compare(6000)
    short = 0
    for value in values:
        short += plain_amount(field, value) is not None
        assert answer(field.run_validation, value) == answer(
            lambda v: serializers.DecimalField.run_validation(field, v), value
        ), value
    assert short > len(values) // 3


def test_an_amount_field_whose_validators_are_not_drfs_bounds_takes_drfs_path():
    """The short path runs no validators: a field that carries any but the
    two DRF adds for its bounds (one swapped for a custom validator, a
    subclass of the bound validator, one added) reads every amount through
    DRF's path, and the custom validator runs."""
    from django.core.validators import MaxValueValidator

    class NoSevens(MaxValueValidator):
        def compare(self, a, b):
            return "7" in str(a)

    def refuse_sevens(value):
        if "7" in str(value):
            raise serializers.ValidationError("No sevens.")

    swapped = AmountField()
    swapped.validators = [swapped.validators[0], refuse_sevens]
    subclassed = AmountField()
    subclassed.validators = [
        v if not isinstance(v, MaxValueValidator) else NoSevens(v.limit_value) for v in subclassed.validators
    ]
    added = AmountField(validators=[refuse_sevens])

    assert AmountField().plain
    for field in (swapped, subclassed, added):
        field.plain = takes_plain_amounts(field)
        assert not field.plain
        with pytest.raises(serializers.ValidationError):
            field.run_validation("17.00")
    assert AmountField().run_validation("17.00") == Decimal("17.00")


class EvenAmounts(AmountField):
    """An amount field that reads its own way: even whole amounts only."""

    def to_internal_value(self, data):
        amount = super().to_internal_value(data)
        if amount % 2:
            self.fail("invalid")
        return amount


def test_an_amount_field_that_reads_its_own_way_gets_drfs_path():
    """A subclass of AmountField with its own to_internal_value: its own
    reading runs for every amount (the short path, plain_amount, would
    have read "3.00" without it)."""
    field = EvenAmounts()

    assert AmountField.reads_as_declared and not EvenAmounts.reads_as_declared and not field.plain
    with pytest.raises(serializers.ValidationError) as refused:
        field.run_validation("3.00")
    assert refused.value.detail == [serializers.DecimalField.default_error_messages["invalid"]]
    assert field.run_validation("4.00") == Decimal("4.00")


def test_whether_a_class_reads_as_declared_is_decided_once_when_it_is_created():
    """ReadsAsDeclared: a class overriding a method its base's short path
    stands in for, or inheriting such an override, does not read as
    declared, whatever it names itself; one that overrides none does. Each
    class's answer is its own flag, set when the class is made."""

    class Reader(ReadsAsDeclared):
        reading_methods = ("read",)

        def read(self):
            return "short"

    class Same(Reader):
        pass

    class Own(Reader):
        def read(self):
            return "own"

    class UnderOwn(Own):
        pass

    class Wider(Own):
        reading_methods = ("read", "also")

    class Refusing(Reader):
        @classmethod
        def _reads_as_declared_too(cls):
            return False

    class Writer(ReadsAsDeclared):
        reading_methods = ("write",)

        def write(self):
            return "short"

    class BothSame(Reader, Writer):
        pass

    class WritesItsOwnWay(Reader, Writer):  # held to both bases' records
        def write(self):
            return "own"

    assert Reader.reads_as_declared and Same.reads_as_declared and BothSame.reads_as_declared
    assert not any(c.reads_as_declared for c in (Own, UnderOwn, Wider, Refusing, WritesItsOwnWay))
    assert all("reads_as_declared" in c.__dict__ for c in (Reader, Same, Own, UnderOwn, Wider, Refusing))


def test_a_lean_serializer_that_builds_its_own_fields_gets_them():
    """A LeanSerializer subclass with its own get_fields gets DRF's fields
    (its own, the declared ones included, each instance its own copies);
    one without gets the bound templates' copies."""

    class WithOwnFields(LeanSerializer):
        amount = serializers.CharField()

        def get_fields(self):
            fields = super().get_fields()
            fields["from"] = serializers.CharField()
            return fields

    first, second = WithOwnFields(data={}), WithOwnFields(data={})

    assert list(first.fields) == ["amount", "from"]
    assert first.fields["amount"] is not second.fields["amount"]
    assert first.fields["from"].parent is first
    assert not WithOwnFields.reads_as_declared and TransferRequestSerializer.reads_as_declared
    assert WithOwnFields(data={"amount": "1", "from": "x"}).is_valid()


def test_a_lean_serializer_itself_reads_as_drfs_serializer():
    """LeanSerializer used as it is, no subclass: no fields, an empty body
    read as DRF's Serializer reads it (its fields are its declared ones)."""
    lean, drf = LeanSerializer(data={"extra": 1}), serializers.Serializer(data={"extra": 1})

    assert lean.is_valid() == drf.is_valid() is True
    assert lean.validated_data == drf.validated_data == {}
    assert dict(lean.fields) == {}


def test_a_lean_serializers_field_validators_run_on_each_instance():
    class WithFieldValidator(LeanSerializer):
        amount = serializers.CharField()
        note = serializers.CharField(read_only=True)

        def validate_amount(self, value):
            if value == "bad":
                raise serializers.ValidationError("No.")
            return value + self.context["suffix"]

    good = WithFieldValidator(data={"amount": "1"}, context={"suffix": "!"})
    other = WithFieldValidator(data={"amount": "2"}, context={"suffix": "?"})
    bad = WithFieldValidator(data={"amount": "bad"}, context={"suffix": "!"})

    assert good.is_valid() and good.validated_data == {"amount": "1!"}
    assert other.is_valid() and other.validated_data == {"amount": "2?"}
    assert not bad.is_valid() and bad.errors == {"amount": ["No."]}
