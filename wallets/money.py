"""Money constants and the one serializer field that reads an amount.

Amounts are exact decimals end to end: NUMERIC(20,2) in PostgreSQL, `Decimal`
in Python, strings like "1000.50" in JSON responses.
"""

import re
from decimal import Decimal

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.fields import empty

MAX_DIGITS = 20
DECIMAL_PLACES = 2
MIN_AMOUNT = Decimal("0.01")
MAX_AMOUNT = settings.LEDGER_MAX_AMOUNT  # the largest NUMERIC(20,2)
CENT = Decimal("0.01")
DECIMAL_STRING = re.compile(r"-?[0-9]+(\.[0-9]+)?", re.ASCII)


# A decimal string, as every answer writes amounts and as a generated client
# should send them: positive, at most 18 digits before the point and 2 after
# (what to_internal_value reads from a string, exactly). A JSON number is read
# too (docs/api.md, "Money model") but is not in the schema, so that no
# generator offers a binary float for money.
AMOUNT_PATTERN = r"^0*([1-9][0-9]{0,17}(\.[0-9]{1,2})?|0\.(0[1-9]|[1-9][0-9]?))$"


@extend_schema_field(
    {
        "type": "string",
        "pattern": AMOUNT_PATTERN,
        "example": "1000.50",
        "description": "A positive amount with at most two decimal places, as a decimal string (up to "
        "999999999999999999.99); never rounded.",
    }
)
class AmountField(serializers.DecimalField):
    """A positive amount with at most two decimal places.

    Accepts a JSON number (parsed as Decimal by the API's parser) or a decimal
    string. Rejects booleans (``True`` is an int to Python), floats (they only
    arrive if something bypassed the Decimal parser), NaN, Infinity, zero,
    negatives, extra places and anything beyond NUMERIC(20,2). Never rounds.
    """

    default_error_messages = {
        "not_a_number": "A valid number or decimal string is required.",
    }

    def __init__(self, **kwargs):
        kwargs.setdefault("max_digits", MAX_DIGITS)
        kwargs.setdefault("decimal_places", DECIMAL_PLACES)
        kwargs.setdefault("min_value", MIN_AMOUNT)
        kwargs.setdefault("max_value", MAX_AMOUNT)
        super().__init__(**kwargs)
        # Whether run_validation may take its short path: bounds whose range
        # holds no number DRF's digit checks refuse, and no validators but the bounds'.
        self.plain = (
            not kwargs.get("validators")
            and self.decimal_places == DECIMAL_PLACES
            and self.min_value is not None
            and self.max_value is not None
            and self.max_value < 10 ** (self.max_digits - self.decimal_places)
        )

    def run_validation(self, data=empty):
        """DRF's, with a short path for an amount as clients send one (a
        Decimal or int from the parser, or a decimal string), within the
        bounds and with at most DECIMAL_PLACES places: quantized as DRF's
        DecimalField does, without its generic steps (two string
        conversions, a Decimal context copied, the bounds' validators).
        Anything else, and so every error, takes DRF's path. About 100K
        instructions less per transfer body read (callgrind, 200 reads of
        the bench's transfer body: 771K to 668K)."""
        kind = type(data)
        # A string longer than DRF's MAX_STRING_LENGTH ("0" * 1000 + "1") is
        # DRF's max_string_length error even when its value is in range.
        if self.plain and (
            kind is Decimal
            or kind is int
            or (kind is str and len(data) <= self.MAX_STRING_LENGTH and DECIMAL_STRING.fullmatch(data))
        ):
            amount = data if kind is Decimal else Decimal(data)
            if (
                amount.is_finite()
                and amount.as_tuple().exponent >= -self.decimal_places
                and self.min_value <= amount <= self.max_value
            ):
                return amount.quantize(CENT)
        return super().run_validation(data)

    def to_internal_value(self, data):
        if isinstance(data, (bool, float)) or not isinstance(data, (str, int, Decimal)):
            self.fail("not_a_number")
        # Decimal() also reads "1e2", "1_000", non-ASCII digits and spaces
        # around the number: a decimal string here is plain ASCII digits with
        # an optional fraction, nothing around them (as a key has no
        # whitespace at either end: one amount, one way to write it as text).
        if isinstance(data, str) and not DECIMAL_STRING.fullmatch(data):
            self.fail("not_a_number")
        return super().to_internal_value(data)
