"""What a money request may say and how its answers are written: the
serializers of transfers, and the one rendering of each answer.

In the order of the module:
- the bodies' pieces: amounts (AmountField), metadata, the idempotency key's
  rules wherever it comes from (validate_idempotency_key, key_from_header,
  idempotency_key_of; the door that applies them is transfers.views.admit),
  and the single movements' bodies (MoneyRequestSerializer,
  TransferRequestSerializer);
- how a transaction is shown, written once (TRANSACTION_FIELDS), in Python
  and, for the events the engine writes under the row locks, in SQL
  (transaction_json_sql);
- the money answers as plain JSON, rendered by hand, not by a serializer
  (movement_result_json, batch_json, batch_result_json, hold_json:
  docs/design.md, "The steps", step 12); the classes named
  *ResultSerializer describe them in the schema, and BatchResultSerializer
  renders a looked-up batch by calling batch_result_json;
- the lookups' and lists' serializers, and the bodies of batches and holds.
"""

import json
import math
import re
import string
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import (
    MaxLengthValidator,
    MaxValueValidator,
    MinLengthValidator,
    MinValueValidator,
    ProhibitNullCharactersValidator,
)
from django.db import models
from django.utils import timezone
from drf_spectacular.utils import extend_schema_field, extend_schema_serializer
from rest_framework import serializers
from rest_framework.fields import empty
from rest_framework.validators import ProhibitSurrogateCharactersValidator

from transfers.models import (
    BatchStatus,
    Expiry,
    HoldStatus,
    TransactionLog,
    TransactionStatus,
    TransactionType,
    business_today,
)
from transfers.selectors import SHOWS_REQUEST_DETAILS_SQL, shows_request_details
from wallet_project.api import (
    DayField,
    InstantField,
    LeanSerializer,
    ReadsAsDeclared,
    RefusesUnknownFields,
    StrictBooleanField,
    StrictCharField,
    StrictIntegerField,
    StrictUUIDField,
    timestamp_text,
)
from wallets.models import CENT, DECIMAL_PLACES, MAX_AMOUNT, MAX_DIGITS, MIN_AMOUNT, WalletKind

# --- amounts ------------------------------------------------------------------

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
class AmountField(ReadsAsDeclared, serializers.DecimalField):
    """A positive amount with at most two decimal places.

    Accepts a JSON number (parsed as Decimal by the API's parser) or a decimal
    string. Rejects booleans (``True`` is an int to Python), floats (they only
    arrive if something bypassed the Decimal parser), NaN, Infinity, zero,
    negatives, extra places and anything beyond NUMERIC(20,2). Never rounds.
    """

    # What plain_amount stands in for (ReadsAsDeclared): a subclass that
    # reads, checks or rounds its own way gets DRF's path for every amount.
    reading_methods = (
        "validate_empty_values", "to_internal_value", "validate_precision", "quantize", "run_validators",
    )  # fmt: skip

    default_error_messages = {
        "not_a_number": "A valid number or decimal string is required.",
    }

    def __init__(self, **kwargs):
        kwargs.setdefault("max_digits", MAX_DIGITS)
        kwargs.setdefault("decimal_places", DECIMAL_PLACES)
        kwargs.setdefault("min_value", MIN_AMOUNT)
        kwargs.setdefault("max_value", MAX_AMOUNT)
        super().__init__(**kwargs)
        # Whether run_validation may take its short path (plain_amount): the
        # class's flag, and this field's own arguments.
        self.plain = self.reads_as_declared and takes_plain_amounts(self)

    def run_validation(self, data=empty):
        """DRF's, with a short path for an amount as clients send one
        (plain_amount: every check DRF's path makes, without its generic
        steps). Anything else, and so every error, takes DRF's path. About
        100K instructions less per transfer body read (callgrind, 200 reads
        of the bench's transfer body: 771K to 668K)."""
        if self.plain:
            amount = plain_amount(self, data)
            if amount is not None:
                return amount
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


def takes_plain_amounts(field: serializers.DecimalField) -> bool:
    """Whether plain_amount may read for `field`: DECIMAL_PLACES places,
    both bounds, a range that holds no number DRF's digit checks refuse
    (max_digits, max_whole_digits), no validators but the two DRF adds for
    the bounds (only_bound_validators), and no localized input (DRF's path
    rewrites its separators). These are the field's own arguments; whether
    its class reads as AmountField does is the class's flag
    (reads_as_declared), which AmountField.__init__ adds."""
    return (
        field.decimal_places == DECIMAL_PLACES
        and field.min_value is not None
        and field.max_value is not None
        and field.max_value < 10 ** (field.max_digits - field.decimal_places)
        and only_bound_validators(field)
        and not field.localize
    )


def only_bound_validators(field: serializers.DecimalField) -> bool:
    """Whether `field`'s validators are exactly the two DRF's DecimalField
    adds for its bounds: Django's own MinValueValidator and
    MaxValueValidator (not a subclass) at min_value and max_value. A count
    alone would let a custom validator that replaced one of them slip past
    the short path, which runs no validators."""
    return len(field.validators) == 2 and {(type(v), getattr(v, "limit_value", None)) for v in field.validators} == {
        (MinValueValidator, field.min_value),
        (MaxValueValidator, field.max_value),
    }


def plain_amount(field: serializers.DecimalField, data) -> Decimal | None:
    """`data` read as DRF's path reads it for `field` (one that
    takes_plain_amounts): a Decimal or int from the parser, or a decimal
    string no longer than DRF's MAX_STRING_LENGTH, finite, with at most
    DECIMAL_PLACES places, within the bounds; quantized as DRF's
    DecimalField does, without its generic steps (two string conversions,
    a Decimal context copied, the bounds' validators). None for anything
    else: DRF's path then answers (every error is its).

    Every check DRF's path makes is here, in one place, for every field that
    reads this way: a check left out lets through what DRF would refuse (the
    string length was, once: "0" * 1000 + "1" is in range).
    transfers/tests/test_serializers.py compares the two paths."""
    kind = type(data)
    if kind is str:
        if len(data) > field.MAX_STRING_LENGTH or not DECIMAL_STRING.fullmatch(data):
            return None
        amount = Decimal(data)
    elif kind is Decimal or kind is int:
        amount = data if kind is Decimal else Decimal(data)
    else:
        return None
    if (
        amount.is_finite()
        and amount.as_tuple().exponent >= -field.decimal_places
        and field.min_value <= amount <= field.max_value
    ):
        return amount.quantize(CENT)
    return None


# The bounds the reader puts on metadata, as the schema can state them: an
# object; a string can be no longer than the whole (`{"":"..."}` is 7 bytes
# more); a number has at most JSON_MAX_NUMBER_DIGITS digits before its point.
# The stored size, the nesting depth and the digits after a point are checked
# on the whole, which a JSON schema cannot state: the description says them.
_METADATA_SCHEMA = {
    "type": "object",
    "description": f"Your own notes on the movement, given back as sent to your client only. Any JSON object of "
    f"at most {settings.TRANSFER_METADATA_MAX_BYTES} bytes once stored as compact UTF-8 JSON, nested no deeper "
    f"than the body's {settings.JSON_MAX_DEPTH} levels in all, numbers of at most "
    f"{settings.JSON_MAX_NUMBER_DIGITS} digits written out; integers are kept exactly, fractional numbers as "
    "binary floats (send strings to keep them exact).",
    "additionalProperties": {
        "maxLength": settings.TRANSFER_METADATA_MAX_BYTES - 7,
        "exclusiveMaximum": 10**settings.JSON_MAX_NUMBER_DIGITS,
        "exclusiveMinimum": -(10**settings.JSON_MAX_NUMBER_DIGITS),
    },
    "example": {"loanId": "L-1042", "installment": 3},
}


# The compact JSON the size limit measures, its encoder made once: json.dumps
# builds a JSONEncoder on every call given options (callgrind, 1,000 bodies'
# metadata {"bench": "i"}: bench/HISTORY.md, 2026-12-07 12:18).
_STORED_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


@extend_schema_field(_METADATA_SCHEMA)
class MetadataField(serializers.JSONField):
    """A JSON object that takes at most TRANSFER_METADATA_MAX_BYTES once stored.

    Metadata describes a movement; it is not money. The API's parser has
    already refused what no text can store (NUL, lone surrogates) and numbers
    of more than JSON_MAX_NUMBER_DIGITS digits (wallet_project/policies.py).
    Here integers are kept exactly; fractional numbers are stored as JSON
    numbers through a binary float (a client that needs them exact sends
    strings). The size limit is measured on what is stored, not on what was
    sent: the compact UTF-8 JSON of the stored value with its numbers written
    out as PostgreSQL's jsonb keeps them (`1e30` is 31 bytes, not 4), so a
    short body cannot become a large row.
    """

    default_error_messages = {
        "not_an_object": "Metadata must be a JSON object.",
        "too_large": "Metadata must be at most {limit} bytes of JSON once stored.",
        "not_finite": "Metadata numbers must be finite.",
    }

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            self.fail("not_an_object")
        floats: list[float] = []
        stored = self._storable(data, floats)
        limit = settings.TRANSFER_METADATA_MAX_BYTES
        size = len(_STORED_JSON.encode(stored).encode())
        if floats:
            # json writes a float as repr() ("1e+30"); jsonb keeps it as a plain numeric.
            size += sum(len(format(Decimal(repr(number)), "f")) - len(repr(number)) for number in floats)
        if size > limit:
            self.fail("too_large", limit=limit)
        return stored

    def _storable(self, value, floats: list[float]):
        """What PostgreSQL's jsonb accepts, built from what the parser gives:
        Decimals become ints (integral, however written: 1, 1.0, 1e0 and
        10e-1 are one number, and a retry that writes it otherwise must be
        a replay, not a reused key) or finite floats, collected in `floats`
        for the size measure."""
        if isinstance(value, Decimal):
            if value == value.to_integral_value():
                # Cheap: the parser bounds the digits (JSON_MAX_NUMBER_DIGITS).
                return int(value)
            number = float(value)
            if not math.isfinite(number):
                self.fail("not_finite")
            floats.append(number)
            return number
        if isinstance(value, dict):
            return {key: self._storable(item, floats) for key, item in value.items()}
        if isinstance(value, list):
            return [self._storable(item, floats) for item in value]
        return value


# --- The idempotency key --------------------------------------------------------------
# How an idempotency key is read: one rule for every place a key comes from.
#
# docs/api.md, "Idempotency: moving money exactly once": a key comes in the Idempotency-Key header
# or the idempotencyKey body field (both present and different: 400), is 1 to
# 255 printable characters, scoped to the calling client, and a given string is
# one key, never two. So:
#
# - the header holds one key: a bare value, or an RFC 8941 structured-field
#   string (`"abc"` means `abc`, as the IETF draft writes it). A header sent
#   more than once arrives joined with commas (WSGI servers do so), and a list
#   is a list either way: a comma anywhere in a header's key is a 400, never a
#   new key. Quoting does not help: `"jo` sent twice with `in"` arrives as
#   `"jo,in"`, a well-formed string. A key that holds a comma goes in the body;
# - whitespace means one thing wherever the key comes from: a key never starts
#   or ends with it (400). HTTP itself strips it around a header's value, so
#   without this rule " K2 " in the body and "K2" in the header would be two
#   keys for what a person reads as one;
# - header values are ASCII (RFC 9110); a non-ASCII key goes in the body;
# - a key never starts with "reference/": GET /api/transfer/{key} shares its
#   path with GET /api/transfer/reference/{reference}, and a percent-encoded
#   slash reaches the application decoded, so such a key could never be looked
#   up again (and could shadow a reference). Every key that can be stored can
#   be read back by its own route;
# - a key never starts with "hold:": a hold's capture records its TRANSFER
#   under the client's key `hold:<hold id>` (transfers/engine.py,
#   _capture_log), so a client's transfer or payout under that key would take
#   it, and the hold could never be captured;
# - no part of a key between slashes is "." or "..": HTTP clients remove such
#   dot segments from a path before they send it (RFC 3986, 5.2.4; curl,
#   requests and browsers do, and %2E is the same character to them), so
#   GET /api/transfer/a/../b reached the lookup of key "b", another
#   transaction, and "." or ".." reached no transfer route at all.

IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
# The keys the service names itself, never a client's, and why (the refusal says it).
_WHY_RESERVED = {
    # The lookup by reference's path (transfers/urls.py).
    "reference/": "GET /api/transfer/reference/... looks transactions up by reference.",
    # A hold's capture records its TRANSFER under this key (transfers/engine.py, _capture_log).
    "hold:": "a hold's capture is recorded under hold:<hold id>.",
}
RESERVED_PREFIXES = tuple(_WHY_RESERVED)
_NOT_RESERVED = f"(?!{'|'.join(re.escape(prefix) for prefix in RESERVED_PREFIXES)})"
# The keys as the schema describes them (the body field and the header),
# exactly as validate_idempotency_key and key_from_header read them, so that
# a generated client sends what is accepted and nothing else is (a test
# compares them on many sampled keys). A key never has a dot segment ("." or
# ".." between slashes, the first lookahead) nor starts with a reserved prefix.
_NO_DOT_SEGMENT = r"(?!(.*/)?\.\.?(/|$))"
# The body: printable characters, no whitespace at either end. JSON Schema
# has no class for "printable", so the unprintable ones are listed: controls,
# separators and spaces other than " ", format characters and private use
# (a JSON body holds no lone surrogate: the parser refuses one). Only code
# points Unicode has not assigned yet, and a few format characters beyond
# the first plane, are refused beyond what the pattern says.
_UNPRINTABLE = (
    r"\x00-\x1f\x7f-\xa0\xad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u1680\u180e"
    r"\u2000-\u200f\u2028-\u202f\u205f-\u2064\u2066-\u206f\u3000\ue000-\uf8ff\ufeff\ufff9-\ufffb"
)
_PRINTABLE = rf"[^{_UNPRINTABLE}]"
_PRINTABLE_NOT_SPACE = rf"[^\s{_UNPRINTABLE}]"
BODY_KEY_PATTERN = (
    rf"^{_NOT_RESERVED}{_NO_DOT_SEGMENT}{_PRINTABLE_NOT_SPACE}({_PRINTABLE}{{0,253}}{_PRINTABLE_NOT_SPACE})?$"
)
# The header: printable ASCII without a comma (a list), either bare (not
# starting with '"') or an RFC 8941 string ("..." with \" and \\ escaped),
# with optional whitespace around it, which HTTP strips.
_BARE = (
    rf"{_NOT_RESERVED}(?!(.*/)?\.\.?(/|[ \t]*$))"
    r"[!#-+\--~]([ -+\--~]{0,253}[!-+\--~])?"
)
_QUOTED_UNIT = r"([ !#-+\--\[\]-~]|\\[\"\\])"
_QUOTED_UNIT_NOT_SPACE = r"([!#-+\--\[\]-~]|\\[\"\\])"
_QUOTED = (
    rf'"{_NOT_RESERVED}(?!(.*/)?\.\.?(/|"[ \t]*$))'
    rf'{_QUOTED_UNIT_NOT_SPACE}({_QUOTED_UNIT}{{0,253}}{_QUOTED_UNIT_NOT_SPACE})?"'
)
HEADER_KEY_PATTERN = rf"^[ \t]*({_BARE}|{_QUOTED})[ \t]*$"
# RFC 8941 section 3.3.3: an sf-string holds printable ASCII, with \" and \\ escaped.
_SF_STRING_CHARACTERS = set(string.printable) - set("\t\n\r\x0b\x0c")


def validate_idempotency_key(value: str) -> str:
    """`value` if it can be a key, wherever it came from; else
    serializers.ValidationError saying what is wrong with it."""
    if not value or not value.strip():
        raise serializers.ValidationError("The idempotency key must not be blank.")
    if len(value) > MAX_KEY_LENGTH:
        raise serializers.ValidationError(f"The idempotency key must be at most {MAX_KEY_LENGTH} characters.")
    if not value.isprintable():
        raise serializers.ValidationError("The idempotency key must be printable characters only.")
    if value != value.strip():
        raise serializers.ValidationError("The idempotency key must not start or end with whitespace.")
    if any(segment in (".", "..") for segment in value.split("/")):
        raise serializers.ValidationError(
            "The idempotency key must not have '.' or '..' between slashes (or as the whole key): HTTP clients "
            "remove such parts from the path of GET /api/transfer/{key}, which would not find it."
        )
    for prefix, why in _WHY_RESERVED.items():
        if value.startswith(prefix):
            raise serializers.ValidationError(f"The idempotency key must not start with {prefix!r}: {why}")
    return value


def key_from_header(value: str | None) -> str | None:
    """The key an Idempotency-Key header value names, or None when the
    header is absent. Raises serializers.ValidationError for a list (or a
    repeated header), a malformed structured-field string, non-ASCII, or a key
    validate_idempotency_key refuses."""
    if value is None:
        return None
    # Optional whitespace around a field value is HTTP syntax, not the value
    # (RFC 9110 section 5.5); most servers strip it before the application sees it.
    value = value.strip(" \t")
    key = _structured_field_string(value) if value.startswith('"') else value
    if "," in key:
        # A repeated header, joined by the server, cannot be told from one
        # holding a comma, quoted or not: never read it as a key.
        raise serializers.ValidationError(
            f"The {IDEMPOTENCY_HEADER} header must hold one key, sent once: it held a comma (a list, or the "
            "header sent twice). Send a key that contains a comma in the idempotencyKey field."
        )
    if not key.isascii():
        raise serializers.ValidationError(
            f"The {IDEMPOTENCY_HEADER} header must be ASCII; send a non-ASCII key in the idempotencyKey field."
        )
    return validate_idempotency_key(key)


def _structured_field_string(value: str) -> str:
    """RFC 8941 sf-string: `"` chars `"`, with only \\" and \\\\ as escapes,
    and nothing after the closing quote (no parameters, no second member)."""
    key, escaped = [], False
    for position, character in enumerate(value[1:], start=1):
        if escaped:
            if character not in '"\\':
                break
            key.append(character)
            escaped = False
        elif character == "\\":
            escaped = True
        elif character == '"':
            if position != len(value) - 1:
                break
            return "".join(key)
        elif character not in _SF_STRING_CHARACTERS:
            break
        else:
            key.append(character)
    raise serializers.ValidationError(
        f'The {IDEMPOTENCY_HEADER} header is not one structured-field string ("..." with only \\" and \\\\ '
        "escaped, nothing after it)."
    )


def idempotency_key_of(*, header: str | None, body: str | None) -> str:
    """The request's key from its header value and body field (either may be
    None). Raises serializers.ValidationError({"idempotencyKey": [...]}) when
    neither is given, either is malformed, or both are given and differ."""
    try:
        from_header = key_from_header(header)
        from_body = validate_idempotency_key(body) if body is not None else None
    except serializers.ValidationError as exc:
        raise serializers.ValidationError({"idempotencyKey": exc.detail}) from None
    if from_header is not None and from_body is not None and from_header != from_body:
        raise serializers.ValidationError(
            {"idempotencyKey": [f"The {IDEMPOTENCY_HEADER} header and the idempotencyKey field differ."]}
        )
    key = from_body if from_body is not None else from_header
    if key is None:
        raise serializers.ValidationError(
            {"idempotencyKey": [f"Required, in the {IDEMPOTENCY_HEADER} header or the idempotencyKey field."]}
        )
    return key


@extend_schema_field(
    {
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_KEY_LENGTH,
        "pattern": BODY_KEY_PATTERN,
        "description": "Or the Idempotency-Key header: 1 to 255 printable characters, no whitespace at either "
        "end, no '.' or '..' between slashes, not starting with 'reference/' or 'hold:', scoped to your client.",
    }
)
class IdempotencyKeyField(StrictCharField):
    """The body's idempotency key, as text, optional: what it may be, and
    which key a request has when the Idempotency-Key header names one too, is
    decided by transfers.views.read_money_request (by the key rules above), one
    reader for every money request."""

    def __init__(self, **kwargs):
        super().__init__(source="idempotency_key", required=False, trim_whitespace=False, max_length=None, **kwargs)


# A deposit's or a withdrawal's body only (a transfer's adds its two
# wallets), named as the schema names it (MoneyRequest, the generated
# clients' type): not the serializer of every money request, nor of
# transfers.views.MoneyRequest, which reads any of them by the serializer
# its view gives it. (Not in the docstring: that is the schema's
# description, for client developers.)
@extend_schema_serializer(component_name="Money")
class MoneyRequestSerializer(RefusesUnknownFields, LeanSerializer):
    """A deposit or a withdrawal: an amount, optional metadata, and the
    idempotency key, here or in the Idempotency-Key header (if both, they
    must agree)."""

    amount = AmountField()
    idempotencyKey = IdempotencyKeyField()
    metadata = MetadataField(required=False, default=dict)


@extend_schema_serializer(component_name="Transfer")
class TransferRequestSerializer(MoneyRequestSerializer):
    """A transfer from one of your wallets to another wallet (another
    client's only with the permission to pay other clients), of an amount,
    with optional metadata and the idempotency key, here or in the
    Idempotency-Key header (if both, they must agree)."""

    sourceWalletId = StrictUUIDField(source="source_wallet_id")
    destinationWalletId = StrictUUIDField(source="destination_wallet_id")

    def validate(self, attrs):
        if attrs["source_wallet_id"] == attrs["destination_wallet_id"]:
            raise serializers.ValidationError(
                {"destinationWalletId": ["The destination wallet must differ from the source wallet."]}
            )
        return attrs


# --- how a transaction is shown to a viewer, written once ---------------------------
#
# TRANSACTION_FIELDS is the one field list: the API's serializer
# (TransactionLogSerializer, below) declares its fields from it.
# A transaction looked up by key or reference (TransactionDetailSerializer)
# adds its REVERSAL_LINKS, and so does an event: the SQL that writes a
# transaction into its events (transaction_json_sql, run by the engine under
# the row locks) is generated from DETAIL_FIELDS and the model's columns.
# transfers/tests/test_events.py checks that they agree.
#
# The idempotency key, the metadata and why a movement failed (PAYER_ONLY)
# are shown only to a viewer who may see what the paying client sent
# (selectors.shows_request_details, and its SQL twin SHOWS_REQUEST_DETAILS_SQL);
# anyone else gets null for them.

# (API name, model field; "relation.field" for a field of a related row), in
# the order the API shows them.
TRANSACTION_FIELDS = (
    ("id", "id"),
    ("idempotencyKey", "idempotency_key"),
    ("reference", "reference"),
    ("type", "type"),
    ("status", "status"),
    ("sourceWalletId", "source_wallet_id"),
    ("destinationWalletId", "destination_wallet_id"),
    # What each wallet is: a SETTLEMENT wallet (a deposit's source, a
    # withdrawal's destination) is the service's own, and no client can read it.
    ("sourceWalletKind", "source_wallet.kind"),
    ("destinationWalletKind", "destination_wallet.kind"),
    ("amount", "amount"),
    ("currency", "currency"),
    ("metadata", "metadata"),
    ("errorCode", "error_code"),
    ("errorMessage", "error_message"),
    ("createdAt", "created_at"),
    ("updatedAt", "updated_at"),
    ("completedAt", "completed_at"),
)
FIELD_NAMES = [name for name, _ in TRANSACTION_FIELDS]
# A reversal and its compensating transaction name each other: reversalOf on
# the compensating one, reversedBy (the log whose reversal_of it is) on the
# REVERSED one; null otherwise (docs/api.md).
REVERSAL_LINKS = (("reversalOf", "reversal_of_id"), ("reversedBy", "reversed_by.id"))
DETAIL_FIELDS = TRANSACTION_FIELDS + REVERSAL_LINKS
DETAIL_FIELD_NAMES = [name for name, _ in DETAIL_FIELDS]
# What the paying client sent, and why its movement failed (which says, for
# one, that the payer lacked the money): shown to it (and to auditors) only.
PAYER_ONLY = frozenset({"idempotencyKey", "metadata", "errorCode", "errorMessage"})


def utc_text_sql(column: str) -> str:
    """SQL for a timestamp as DRF's DateTimeField writes it in UTC
    ("2026-11-30T05:46:47.123456Z", no fraction when it is zero)."""
    whole = f"""to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS')"""
    fraction = f"""CASE WHEN mod(extract(microseconds FROM {column})::bigint, 1000000) = 0 THEN ''
        ELSE to_char({column} AT TIME ZONE 'UTC', '.US') END"""
    return f"({whole} || {fraction} || 'Z')"


def _field_sql(path: str, row: str) -> str:
    """SQL for one field of the log in `row` as the API writes it in JSON."""
    if "." in path:
        relation, name = path.split(".")
        link = TransactionLog._meta.get_field(relation)
        related = link.related_model
        if link.concrete:  # the log's foreign key: the row it points at
            match = f"{related._meta.pk.column} = {row}.{link.column}"
        else:  # a one-to-one pointing back at the log: the row that points at it
            match = f"{link.field.column} = {row}.{TransactionLog._meta.pk.column}"
        return f"(SELECT {related._meta.get_field(name).column} FROM {related._meta.db_table} WHERE {match})"  # noqa: S608 (model names)
    field = TransactionLog._meta.get_field(path)
    column = f"{row}.{field.column}"
    if isinstance(field, models.DateTimeField):
        text = utc_text_sql(column)
        return f"CASE WHEN {column} IS NOT NULL THEN {text} END" if field.null else text
    if isinstance(field, models.DecimalField):
        return f"{column}::text"  # NUMERIC(20,2) as text: "12.30", as DRF writes it
    return column


def transaction_json_sql(*, row: str, viewer: str | None, related: dict[str, str] | None = None) -> str:
    """SQL for the transaction in `row` (a transaction_logs row) as a JSON
    object, as a lookup by reference shows it to the client whose id is
    `viewer` (DETAIL_FIELDS: reversal links included). `viewer` None: the
    object before request_details_overlay_sql, for a caller that renders a
    transaction once and lays each viewer's overlay on it. `related`: SQL for
    a related row's field ("relation.field" paths of DETAIL_FIELDS) the caller
    already knows, instead of a subquery for it."""
    related = related or {}
    pairs = ",\n    ".join(f"'{name}', {related.get(path) or _field_sql(path, row)}" for name, path in DETAIL_FIELDS)
    whole = f"jsonb_build_object(\n    {pairs})"
    return whole if viewer is None else f"({whole} || {request_details_overlay_sql(row=row, viewer=viewer)})"


def request_details_overlay_sql(*, row: str, viewer: str) -> str:
    """SQL for what is laid over a transaction's JSON object (`row`: a row
    with the log's client_id) for the client whose id is `viewer`: nothing
    when it may see what the paying client sent (SHOWS_REQUEST_DETAILS_SQL),
    else null for each PAYER_ONLY field. One overlay, so that the viewer test
    is written once in the statement (the engine's settle statement must stay
    under psycopg's 4096-byte prepared-statement cache: test_engine_statements)."""
    shows = SHOWS_REQUEST_DETAILS_SQL.format(viewer=viewer, row=row)
    hidden = "{" + ", ".join(f'"{name}": null' for name in sorted(PAYER_ONLY)) + "}"
    return f"CASE WHEN {shows} THEN '{{}}'::jsonb ELSE '{hidden}'::jsonb END"


# --- money answers (docs/api.md, "Requests and responses") ----------------------------

COMPLETED_MESSAGES = {
    TransactionType.TRANSFER: "Transfer completed successfully",
    TransactionType.DEPOSIT: "Deposit completed",
    TransactionType.WITHDRAWAL: "Withdrawal completed",
}


def movement_result_json(result) -> dict:
    """The answer to a money-moving request (a transfers.models.MovementResult),
    as the first version of the API wrote it: the one rendering of it, for
    its 201, its replays and its 422's data. The transaction's id is `id`, as
    in every lookup; `transactionId` repeats it for the first version's
    clients (deprecated). serializers.MovementResultSerializer describes it
    in the schema; transfers/tests/test_serializers.py checks the two agree."""
    log = result.log
    if result.replayed:
        message = "Transaction already processed"
    elif log.status == TransactionStatus.FAILED:
        message = log.error_message
    else:
        message = COMPLETED_MESSAGES[log.type]
    pk = str(log.pk)
    return {
        "id": pk,
        "transactionId": pk,
        "status": str(log.status),
        "reference": log.reference,
        "message": message,
    }


# --- batches (docs/api.md, "Batch payouts") ---------------------------------------------


def batch_json(batch) -> dict:
    """A batch's outcome as the API shows it (a TransferBatch with the
    fields BATCH_FIELDS names): the `batch.finished` event's data
    (BatchFinished in the schema) and, with the message and each payout's
    outcome after it, every batch answer (serializers.BatchResultSerializer):
    the one rendering of a batch. Amounts with two places, times UTC with Z."""
    return {
        "batchId": str(batch.pk),
        "status": str(batch.status),
        "atomic": batch.atomic,
        "sourceWalletId": str(batch.source_wallet_id),
        "payoutCount": batch.payout_count,
        "totalAmount": f"{batch.total_amount:.2f}",
        "completedCount": batch.completed_count,
        "completedAmount": f"{batch.completed_amount:.2f}",
        "failedCount": batch.failed_count,
        "errorCode": batch.error_code,
        "errorMessage": batch.error_message,
        "failedPayoutIndex": batch.failed_index,
        "createdAt": timestamp_text(batch.created_at),
        "finishedAt": timestamp_text(batch.finished_at),
    }


def batch_result_json(result) -> dict:
    """A batch and each payout's outcome (a transfers.models.BatchResult):
    every batch answer, its replays and its 422's data
    (serializers.BatchResultSerializer describes it in the schema)."""
    return {
        **batch_json(result.batch),
        "message": "Batch already processed" if result.replayed else "Batch processed",
        "payouts": [
            {
                "index": p.index,
                "idempotencyKey": p.idempotency_key,
                "destinationWalletId": str(p.destination_wallet_id),
                "amount": f"{p.amount:.2f}",
                "transactionId": str(p.transaction_id) if p.transaction_id else None,
                "reference": p.reference,
                "status": str(p.status),
                "errorCode": p.error_code,
                "errorMessage": p.error_message,
            }
            for p in result.payouts
        ],
    }


# The model fields batch_json reads, in its order.
BATCH_FIELDS = (
    "id", "status", "atomic", "source_wallet_id", "payout_count", "total_amount", "completed_count",
    "completed_amount", "failed_count", "error_code", "error_message", "failed_index", "created_at", "finished_at",
)  # fmt: skip


# --- holds (docs/api.md, "Holds") ------------------------------------------------------

# What the placing client sent, and why the hold failed: shown to it only
# (the payee's copy of an event has null for them), as a transaction's PAYER_ONLY.
HOLD_PAYER_ONLY = frozenset({"idempotencyKey", "metadata", "errorCode", "errorMessage"})


def hold_json(hold, *, viewer_id: int | None) -> dict:
    """A hold as the API shows it to the client `viewer_id` (its placing
    client sees everything; the payee's owner sees HOLD_PAYER_ONLY as null):
    the one rendering of a hold, for answers and events alike.
    Amounts are strings with two places, times ISO 8601 UTC."""

    def amount(value) -> str | None:
        return None if value is None else f"{value:.2f}"

    when = timestamp_text

    data = {
        "id": str(hold.pk),
        "idempotencyKey": hold.idempotency_key,
        "status": hold.status,
        "sourceWalletId": str(hold.source_wallet_id),
        "destinationWalletId": str(hold.destination_wallet_id),
        "amount": amount(hold.amount),
        "currency": hold.currency,
        "capturedAmount": amount(hold.captured_amount),
        "transactionId": None if hold.transaction_id is None else str(hold.transaction_id),
        "expiresAt": when(hold.expires_at),
        "metadata": hold.metadata,
        "errorCode": hold.error_code or None,
        "errorMessage": hold.error_message or None,
        "createdAt": when(hold.created_at),
        "updatedAt": when(hold.updated_at),
        "endedAt": when(hold.ended_at),
    }
    if viewer_id != hold.client_id:
        data.update(dict.fromkeys(HOLD_PAYER_ONLY))
    return data


# --- the answers' schemas ----------------------------------------------------------


# The first answer's message, by type; the transfer's is the first version's wording.
class MovementResultSerializer(serializers.Serializer):
    """The answer to a money-moving request (a MovementResult): its schema.
    The answer itself is movement_result_json, rendered straight
    to bytes by the views (transfers/views.py, money_response);
    transfers/tests/test_serializers.py checks the fields below say what it writes.

    The transaction's id is `id`, as in every lookup, the history and the
    events (docs/api.md, "Names"); `transactionId` carries the same value for
    the clients written against the first version's answer, and is deprecated."""

    id = serializers.UUIDField(source="log.id", help_text="The transaction's id, as `id` in its lookups.")
    transactionId = serializers.UUIDField(
        source="log.id", help_text="Deprecated: the same value as `id`, kept for existing clients."
    )
    status = serializers.ChoiceField(source="log.status", choices=TransactionStatus.choices)
    reference = serializers.CharField(source="log.reference")
    message = serializers.SerializerMethodField()

    def to_representation(self, result) -> dict:
        return movement_result_json(result)

    def get_message(self, result) -> str:
        return movement_result_json(result)["message"]


class TransactionLogSerializer(serializers.ModelSerializer):
    """A transaction as the API shows it, with the fields of
    TRANSACTION_FIELDS, above. The idempotency key, the metadata and the
    failure's code and message (PAYER_ONLY) are shown only to the
    paying client, or to an auditor (selectors.shows_request_details); anyone
    else who may read the transaction (the owner of a wallet it credited)
    gets null for them."""

    idempotencyKey = serializers.SerializerMethodField()
    metadata = serializers.SerializerMethodField()
    sourceWalletId = serializers.UUIDField(source="source_wallet_id")
    destinationWalletId = serializers.UUIDField(source="destination_wallet_id")
    # What each wallet is: a SETTLEMENT wallet (a deposit's source, a
    # withdrawal's destination) is the service's own, and no client can read it.
    sourceWalletKind = serializers.ChoiceField(source="source_wallet.kind", choices=WalletKind.choices)
    destinationWalletKind = serializers.ChoiceField(source="destination_wallet.kind", choices=WalletKind.choices)
    errorCode = serializers.SerializerMethodField()
    errorMessage = serializers.SerializerMethodField()
    createdAt = serializers.DateTimeField(source="created_at")
    updatedAt = serializers.DateTimeField(source="updated_at")
    completedAt = serializers.DateTimeField(source="completed_at", allow_null=True)

    class Meta:
        model = TransactionLog
        # The one field list (TRANSACTION_FIELDS, above): the events are written from it too.
        fields = FIELD_NAMES
        read_only_fields = fields

    def _shows_request_details(self, log) -> bool:
        request = self.context.get("request")
        return request is None or shows_request_details(log=log, viewer=request.user)

    def get_idempotencyKey(self, log) -> str | None:
        return log.idempotency_key if self._shows_request_details(log) else None

    def get_metadata(self, log) -> dict | None:
        return log.metadata if self._shows_request_details(log) else None

    def get_errorCode(self, log) -> str | None:
        return log.error_code if self._shows_request_details(log) else None

    def get_errorMessage(self, log) -> str | None:
        return log.error_message if self._shows_request_details(log) else None


class TransactionDetailSerializer(TransactionLogSerializer):
    """One transaction looked up by key or reference: the log view, with
    the reversal links. `reversalOf` is the id of the transaction a
    compensating one reverses, `reversedBy` the id of the compensating
    transaction of a REVERSED one; null otherwise. Both transactions move
    money between the same two wallets, so whoever may read one may read the
    other. (Lists and events show the log view without them.)"""

    reversalOf = serializers.UUIDField(source="reversal_of_id", allow_null=True)
    # Annotated by the selector (selectors.with_reversal_links).
    reversedBy = serializers.UUIDField(source="reversed_by_id", allow_null=True)

    class Meta(TransactionLogSerializer.Meta):
        fields = DETAIL_FIELD_NAMES  # DETAIL_FIELDS, above: the events carry them too
        read_only_fields = fields


class WalletHistoryEntrySerializer(TransactionLogSerializer):
    """A transaction as a wallet's history shows it: `direction` is CREDIT
    when this wallet received the amount and DEBIT when it paid it, as a
    statement reads, whatever the status (a FAILED debit is the debit that
    was refused)."""

    # Seen from the wallet in context["wallet_id"] (a UUID): the history's.
    direction = serializers.SerializerMethodField()
    balanceAfter = serializers.SerializerMethodField()

    class Meta(TransactionLogSerializer.Meta):
        fields = [*TransactionLogSerializer.Meta.fields]
        fields.insert(fields.index("amount"), "direction")
        fields.insert(fields.index("amount") + 1, "balanceAfter")
        read_only_fields = fields

    @extend_schema_field(serializers.ChoiceField(choices=["CREDIT", "DEBIT"]))
    def get_direction(self, log) -> str:
        return "CREDIT" if log.destination_wallet_id == self.context["wallet_id"] else "DEBIT"

    @extend_schema_field(
        {
            "type": "string",
            "nullable": True,
            "pattern": r"^-?\d+\.\d{2}$",
            "description": "This wallet's balance once the transaction moved its money, read from the log "
            "(docs/api.md, history). Null when it moved none (PENDING, FAILED), and for transactions settled "
            "before balances after were kept: GET /api/wallets/{id}/balance?at= answers for those.",
        }
    )
    def get_balanceAfter(self, log) -> str | None:
        if log.destination_wallet_id == self.context["wallet_id"]:
            after = log.destination_balance_after
        else:
            after = log.source_balance_after
        return None if after is None else f"{after:.2f}"


# --- balances as of an instant, statements ----------------------------------------


class StrictQuery(serializers.Serializer):
    """Query parameters read as given: an empty one (`at=`) is a value its
    field refuses, not the parameter left out, as DRF would read a QueryDict
    (an HTML form's blank field). Which parameters an action reads at all,
    and that each is given once, ApiViewSet checks (wallet_project/api.py)."""

    def to_internal_value(self, data):
        return super().to_internal_value({name: data[name] for name in data})


class BalanceQuerySerializer(StrictQuery):
    """GET /api/wallets/{id}/balance?at=: `at` omitted is now."""

    at = InstantField(required=False, up_to_now=True, help_text="The instant, RFC 3339 with its offset; omitted: now.")


STATEMENT_FORMATS = ("json", "csv", "pdf")


class StatementQuerySerializer(StrictQuery):
    """GET /api/wallets/{id}/statement?from=&to=&format=: whole days in
    the business time zone (settings.BUSINESS_TIME_ZONE), `from` to `to`
    inclusive, at most STATEMENT_MAX_DAYS."""

    format = serializers.ChoiceField(choices=STATEMENT_FORMATS, required=False, default="json")

    def get_fields(self):
        fields = super().get_fields()
        # `from` is a Python keyword: declared here rather than as an attribute.
        fields["from"] = DayField(help_text="The first day (YYYY-MM-DD, in the business time zone).")
        fields["to"] = DayField(help_text="The last day, included (YYYY-MM-DD).")
        return fields

    def validate(self, attrs):
        first, last = attrs["from"], attrs["to"]
        if last < first:
            raise serializers.ValidationError({"to": ["The last day must not be before the first (from)."]})
        days = (last - first).days + 1
        if days > settings.STATEMENT_MAX_DAYS:
            raise serializers.ValidationError(
                {"to": [f"At most {settings.STATEMENT_MAX_DAYS} days in one statement; this asks for {days}."]}
            )
        if first > business_today():
            raise serializers.ValidationError(
                {"from": [f"This day is still to come in {settings.BUSINESS_TIME_ZONE}."]}
            )
        return attrs


# --- batches of payouts -----------------------------------------------------------


@extend_schema_field({"type": "string", "minLength": 1, "maxLength": MAX_KEY_LENGTH, "pattern": BODY_KEY_PATTERN})
class PayoutKeyField(StrictCharField):
    """A payout's own key, required. validate_idempotency_key alone decides
    what it may be, its length included, as for a single transfer's key:
    DRF's max_length would add a second message to a key too long."""

    def __init__(self, **kwargs):
        super().__init__(
            source="idempotency_key", trim_whitespace=False, validators=[validate_idempotency_key], **kwargs
        )


class PayoutListSerializer(serializers.ListSerializer):
    """A batch's payouts (PayoutRequestSerializer(many=True)): DRF's
    ListSerializer, the list's own checks (a list, not empty, not too long)
    and the errors keyed by each payout's index all its own, with each
    payout read by read_payout where it can be, and by DRF's path
    (the payout serializer's run_validation) otherwise.

    DRF's per-field steps were about a quarter of the service's CPU per
    payout of a batch of 1,000 (bench/HISTORY.md, 2026-12-07 12:14). A
    payout serializer that does not read as PayoutRequestSerializer reads
    (its reads_as_declared, ReadsAsDeclared), is built with validators of
    its own, or is not one at all, gets DRF's path for every payout.

    read_payout is a reader of a flat body beside LeanSerializer's own
    (to_internal_value), kept for its speed: that loop, even with short
    paths for the wallet id and the key in their fields, read the bench's
    1,000 payouts with 82M instructions against 48M (bench/HISTORY.md,
    2026-12-07 14:35)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # The class's flag, and the child's own check (ReadsAsDeclared: what
        # varies per object): read_payout runs no validators, so a child
        # built with some gets DRF's path, which runs them.
        self.reads_payouts = (
            isinstance(self.child, PayoutRequestSerializer)
            and self.child.reads_as_declared
            and not self.child.validators
        )

    def run_child_validation(self, data):
        if self.reads_payouts:
            payout = read_payout(self.child.fields, data)
            if payout is not None:
                return payout
        return super().run_child_validation(data)


# The payout's fields as read_payout reads them: (name, field class, source).
_SHORT_PAYOUT_FIELDS = {
    "destinationWalletId": (StrictUUIDField, "destination_wallet_id"),
    "amount": (AmountField, "amount"),
    "idempotencyKey": (PayoutKeyField, "idempotency_key"),
    "metadata": (MetadataField, "metadata"),
}
_PAYOUT_NAMES = frozenset(_SHORT_PAYOUT_FIELDS)


@extend_schema_serializer(component_name="Payout")
class PayoutRequestSerializer(RefusesUnknownFields, LeanSerializer):
    """One payout of a batch: its own idempotency key is required (it is the
    key of its own transaction, GET /api/transfer/{key}). A field it does not
    declare is a 400, as in every request body (docs/api.md)."""

    destinationWalletId = StrictUUIDField(source="destination_wallet_id")
    amount = AmountField()
    idempotencyKey = PayoutKeyField(
        help_text="The payout's own key: 1 to 255 printable characters, unique within the batch."
    )
    metadata = MetadataField(required=False, default=dict)

    # What read_payout stands in for (ReadsAsDeclared): each would change
    # what DRF's path reads or refuses; get_fields is LeanSerializer's.
    reading_methods = (
        "to_internal_value", "run_validation", "validate_empty_values", "validate", "run_validators",
    )  # fmt: skip

    class Meta:
        list_serializer_class = PayoutListSerializer

    @classmethod
    def _reads_as_declared_too(cls) -> bool:
        """Whether read_payout reads as this class's DRF path reads: the same
        fields, of the same classes and sources, the amount read by
        plain_amount, the key checked by validate_idempotency_key and DRF's
        own two character checks only, no validate_<field> method and no
        validators of its own (Meta.validators)."""
        declared = cls._declared_fields
        key = declared.get("idempotencyKey")
        return (
            {name: (type(f), f.source or name) for name, f in declared.items()} == _SHORT_PAYOUT_FIELDS
            and not any(hasattr(cls, f"validate_{name}") for name in declared)
            and not getattr(getattr(cls, "Meta", None), "validators", None)
            and declared["amount"].plain
            and not declared["destinationWalletId"].validators
            and key.validators[0] is validate_idempotency_key
            and {type(v) for v in key.validators[1:]}
            == {ProhibitNullCharactersValidator, ProhibitSurrogateCharactersValidator}
            and not (key.allow_blank or key.trim_whitespace or key.max_length or key.min_length)
        )


def read_payout(fields, data) -> dict | None:
    """One payout of a batch as PayoutRequestSerializer's DRF path reads it
    (`fields`: the serializer's bound fields): the same dict (the sources as
    keys, in the fields' order; no metadata sent is {}), read without DRF's
    per-field steps. None for anything it does not read, a value DRF's path
    would refuse included (a field missing, unknown or of another JSON type,
    an amount plain_amount leaves to DRF, a wallet id its field refuses, a
    key validate_idempotency_key refuses): DRF's path then reads that payout,
    so every error is its own, with its code, message and the payout's index.

    The wallet id is read by its field's own to_internal_value (the one reader
    of a UUID in a body), the amount by plain_amount, the key by
    validate_idempotency_key: printable, so without the NUL and the
    surrogates DRF's two character checks refuse; metadata, when sent, by its
    field's run_validation."""
    if type(data) is not dict or not data.keys() <= _PAYOUT_NAMES:
        return None
    destination, key = data.get("destinationWalletId"), data.get("idempotencyKey")
    if type(destination) is not str or type(key) is not str or not key:
        return None
    amount = plain_amount(fields["amount"], data.get("amount"))
    if amount is None:
        return None
    try:
        destination = fields["destinationWalletId"].to_internal_value(destination)
        validate_idempotency_key(key)
        metadata = fields["metadata"].run_validation(data["metadata"]) if "metadata" in data else {}
    except (serializers.ValidationError, DjangoValidationError):
        return None
    return {"destination_wallet_id": destination, "amount": amount, "idempotency_key": key, "metadata": metadata}


@extend_schema_serializer(component_name="Batch")
class BatchRequestSerializer(RefusesUnknownFields, serializers.Serializer):
    """POST /api/transfers/batch: a source wallet, the mode and the payouts,
    and the batch's own idempotency key, here or in the Idempotency-Key
    header (if both, they must agree), as for every money request."""

    sourceWalletId = StrictUUIDField(source="source_wallet_id")
    atomic = StrictBooleanField(help_text="true: every payout completes or none does; false: each on its own.")
    idempotencyKey = IdempotencyKeyField()
    # The batch's payouts: "transfers" is the API's name for them since its
    # first version (docs/api.md, "Batch payouts"); the code says payouts.
    transfers = PayoutRequestSerializer(many=True, allow_empty=False)

    def get_fields(self):
        fields = super().get_fields()
        # Read per request, so the setting can change without a restart of the class.
        fields["transfers"].max_length = settings.BATCH_MAX_PAYOUTS
        fields["transfers"].error_messages["max_length"] = (
            f"A batch holds at most {settings.BATCH_MAX_PAYOUTS} payouts."
        )
        # The same bounds as validators, which is where the schema generator
        # reads minItems and maxItems from (allow_empty and max_length refuse first).
        fields["transfers"].validators = [MinLengthValidator(1), MaxLengthValidator(settings.BATCH_MAX_PAYOUTS)]
        return fields

    def validate(self, attrs):
        payouts = attrs["transfers"]
        errors = {}
        to_source = [i for i, p in enumerate(payouts) if p["destination_wallet_id"] == attrs["source_wallet_id"]]
        if to_source:
            errors["transfers"] = [f"Payouts {to_source} pay the source wallet itself; the destination must differ."]
        seen: dict[str, int] = {}
        repeated = []
        for index, payout in enumerate(payouts):
            first = seen.setdefault(payout["idempotency_key"], index)
            if first != index:
                repeated.append(f"payout {index} repeats the key of payout {first}")
        if repeated:
            errors.setdefault("transfers", []).append(
                "Each payout needs its own idempotency key: " + "; ".join(repeated) + "."
            )
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


class PayoutOutcomeSerializer(serializers.Serializer):
    """One payout's outcome (for the schema; batch_result_json writes it)."""

    index = serializers.IntegerField()
    idempotencyKey = serializers.CharField()
    destinationWalletId = serializers.UUIDField()
    amount = serializers.DecimalField(max_digits=20, decimal_places=2)
    transactionId = serializers.UUIDField(
        allow_null=True, help_text="None when the destination was not found: no transaction was stored."
    )
    reference = serializers.CharField(allow_null=True)
    status = serializers.ChoiceField(choices=TransactionStatus.choices, help_text="COMPLETED or FAILED.")
    errorCode = serializers.CharField(help_text="Empty when COMPLETED.")
    errorMessage = serializers.CharField()


class BatchResultSerializer(serializers.Serializer):
    """A batch and each payout's outcome (a BatchResult): its schema. The
    answer itself is batch_result_json, written out (a batch of
    1,000 payouts through DRF's generic field path would cost more than
    settling it) and rendered straight to bytes by the views; its batch
    fields are batch_json's, as its batch.finished event carries them."""

    batchId = serializers.UUIDField()
    status = serializers.ChoiceField(choices=BatchStatus.choices)
    atomic = serializers.BooleanField()
    sourceWalletId = serializers.UUIDField()
    payoutCount = serializers.IntegerField()
    totalAmount = serializers.DecimalField(max_digits=23, decimal_places=2)
    completedCount = serializers.IntegerField()
    completedAmount = serializers.DecimalField(max_digits=23, decimal_places=2)
    failedCount = serializers.IntegerField()
    errorCode = serializers.CharField(help_text="An atomic batch that failed: the first broken rule's code.")
    errorMessage = serializers.CharField()
    failedPayoutIndex = serializers.IntegerField(allow_null=True, help_text="Which payout broke it (atomic).")
    createdAt = serializers.DateTimeField()
    finishedAt = serializers.DateTimeField(allow_null=True)
    message = serializers.CharField()
    payouts = PayoutOutcomeSerializer(many=True)

    def to_representation(self, result) -> dict:
        return batch_result_json(result)


# --- holds (docs/api.md, "Holds") --------------------------------------------------


class ExpiryFields(LeanSerializer):
    """When a hold expires: `expiresAt` (an instant, with its offset) or
    `expiresInSeconds` (from now), exactly one, at most HOLD_MAX_SECONDS
    ahead. Validated into `expiry` (transfers.holds.Expiry)."""

    expiresAt = InstantField(
        source="expires_at", required=False, help_text="RFC 3339 with its offset (Z for UTC), in the future."
    )
    expiresInSeconds = StrictIntegerField(
        source="expires_in_seconds", required=False, min_value=1, max_value=settings.HOLD_MAX_SECONDS
    )

    def validate(self, attrs):
        attrs = super().validate(attrs)
        at, seconds = attrs.pop("expires_at", None), attrs.pop("expires_in_seconds", None)
        longest = settings.HOLD_MAX_SECONDS
        if (at is None) == (seconds is None):
            raise serializers.ValidationError(
                {"expiresAt": ["Give exactly one of expiresAt and expiresInSeconds."]}, code="required"
            )
        if at is not None:
            ahead = (at - timezone.now()).total_seconds()
            if ahead <= 0:
                raise serializers.ValidationError({"expiresAt": ["Must be in the future."]})
            if ahead > longest:
                raise serializers.ValidationError({"expiresAt": [f"At most {longest} seconds from now."]})
        attrs["expiry"] = Expiry(at=at, in_seconds=seconds)
        return attrs


@extend_schema_serializer(component_name="HoldRequest")
class HoldRequestSerializer(RefusesUnknownFields, ExpiryFields):
    """A hold: reserve an amount on one of your wallets toward another
    wallet until it expires, with optional metadata and the idempotency key,
    here or in the Idempotency-Key header (if both, they must agree)."""

    sourceWalletId = StrictUUIDField(source="source_wallet_id")
    destinationWalletId = StrictUUIDField(source="destination_wallet_id")
    amount = AmountField()
    idempotencyKey = IdempotencyKeyField()
    metadata = MetadataField(required=False, default=dict)

    def validate(self, attrs):
        if attrs["source_wallet_id"] == attrs["destination_wallet_id"]:
            raise serializers.ValidationError(
                {"destinationWalletId": ["The destination wallet must differ from the source wallet."]}
            )
        return super().validate(attrs)


@extend_schema_serializer(component_name="HoldCapture")
class HoldCaptureSerializer(RefusesUnknownFields, serializers.Serializer):
    """A capture: `amount` (default: all the hold reserves; at most that),
    and the idempotency key of this capture, here or in the header."""

    amount = AmountField(required=False, default=None, allow_null=True)
    idempotencyKey = IdempotencyKeyField()


@extend_schema_serializer(component_name="HoldVoid")
class HoldVoidSerializer(RefusesUnknownFields, serializers.Serializer):
    """A void: only the idempotency key, here or in the header."""

    idempotencyKey = IdempotencyKeyField()


@extend_schema_serializer(component_name="HoldExtend")
class HoldExtendSerializer(RefusesUnknownFields, ExpiryFields):
    """An extension: the new expiry (later than the current one), and the idempotency key."""

    idempotencyKey = IdempotencyKeyField()


class HoldVoidItemSerializer(RefusesUnknownFields, serializers.Serializer):
    holdId = StrictUUIDField(source="hold_id")


class HoldCaptureItemSerializer(HoldVoidItemSerializer):
    amount = AmountField(required=False, default=None, allow_null=True)


class HoldSetFields(RefusesUnknownFields, serializers.Serializer):
    """A set of your holds ended at once, all or none: at most
    BATCH_MAX_PAYOUTS, each once; and the set's idempotency key, here or in
    the header."""

    idempotencyKey = IdempotencyKeyField()

    def validate_holds(self, items):
        if len(items) > settings.BATCH_MAX_PAYOUTS:
            raise serializers.ValidationError(f"At most {settings.BATCH_MAX_PAYOUTS} holds.")
        ids = [item["hold_id"] for item in items]
        if len(set(ids)) != len(ids):
            raise serializers.ValidationError("Each hold at most once.")
        return items


@extend_schema_serializer(component_name="HoldCaptureSet")
class HoldCaptureSetSerializer(HoldSetFields):
    """Capture each hold of the set (`amount`: default all of it), all or none."""

    holds = HoldCaptureItemSerializer(many=True, allow_empty=False)


@extend_schema_serializer(component_name="HoldVoidSet")
class HoldVoidSetSerializer(HoldSetFields):
    """Void each hold of the set, all or none."""

    holds = HoldVoidItemSerializer(many=True, allow_empty=False)


class HoldSerializer(serializers.Serializer):
    """A hold as the API shows it (hold_json, above, which
    renders it; these fields describe it in the schema). Amounts are
    strings with two places; idempotencyKey, metadata, errorCode and
    errorMessage are null in the payee's copy of an event."""

    id = serializers.UUIDField()
    idempotencyKey = serializers.CharField(allow_null=True)
    status = serializers.ChoiceField(choices=HoldStatus.choices)
    sourceWalletId = serializers.UUIDField()
    destinationWalletId = serializers.UUIDField()
    amount = serializers.CharField()
    currency = serializers.CharField()
    capturedAmount = serializers.CharField(allow_null=True, help_text="CAPTURED: what moved; the rest was released.")
    transactionId = serializers.UUIDField(allow_null=True, help_text="CAPTURED: the TRANSFER that moved it.")
    expiresAt = serializers.DateTimeField()
    metadata = serializers.JSONField(allow_null=True)
    errorCode = serializers.CharField(allow_null=True, help_text="FAILED: the rule that refused it.")
    errorMessage = serializers.CharField(allow_null=True)
    createdAt = serializers.DateTimeField()
    updatedAt = serializers.DateTimeField()
    endedAt = serializers.DateTimeField(allow_null=True)


class WalletBalanceSerializer(serializers.Serializer):
    """A wallet's balance as of an instant: {"wallet", "at", "balance"}."""

    walletId = serializers.UUIDField(source="wallet.pk")
    currency = serializers.CharField(source="wallet.currency")
    at = serializers.DateTimeField(help_text="The instant asked for (now if none was), in UTC.")
    balance = serializers.DecimalField(
        max_digits=20, decimal_places=2, help_text="After every movement that completed at or before `at`."
    )


class StatementMovementSerializer(serializers.Serializer):
    """One movement of a statement, as the statement's wallet sees it (the
    schema of transfers.statement_documents.statement_data's rows)."""

    id = serializers.UUIDField()
    reference = serializers.CharField()
    type = serializers.ChoiceField(choices=TransactionType.choices)
    status = serializers.ChoiceField(
        choices=[TransactionStatus.COMPLETED, TransactionStatus.REVERSED],
        help_text="REVERSED: it moved, and a later transaction (reversalOf naming it) moved it back.",
    )
    direction = serializers.ChoiceField(choices=["CREDIT", "DEBIT"])
    amount = serializers.DecimalField(max_digits=20, decimal_places=2)
    balanceAfter = serializers.DecimalField(
        max_digits=20, decimal_places=2, help_text="The wallet's balance once this movement moved."
    )
    counterpartyWalletId = serializers.UUIDField(help_text="The other wallet of the movement.")
    counterpartyWalletKind = serializers.ChoiceField(choices=WalletKind.choices)
    reversalOf = serializers.UUIDField(
        allow_null=True, help_text="For a compensating transaction: the one it reverses."
    )
    completedAt = serializers.DateTimeField(help_text="When it moved the money.")


class StatementSerializer(serializers.Serializer):
    """GET /api/wallets/{id}/statement as JSON (docs/api.md, "a statement")."""

    walletId = serializers.UUIDField()
    currency = serializers.CharField()
    timeZone = serializers.CharField(
        help_text="The business time zone (IANA name, Africa/Lagos by default): the statement's days."
    )
    periodStart = serializers.DateTimeField(help_text="The start of the first day, in UTC.")
    periodEnd = serializers.DateTimeField(help_text="The start of the day after the last one (excluded), in UTC.")
    openingBalance = serializers.DecimalField(max_digits=20, decimal_places=2)
    totalIn = serializers.DecimalField(max_digits=23, decimal_places=2)
    totalOut = serializers.DecimalField(max_digits=23, decimal_places=2)
    closingBalance = serializers.DecimalField(
        max_digits=20, decimal_places=2, help_text="openingBalance + totalIn - totalOut."
    )
    movementCount = serializers.IntegerField()
    movements = StatementMovementSerializer(many=True, help_text="Oldest first, in the order the balance moved.")
    chainPosition = serializers.IntegerField(
        allow_null=True, help_text="The last movement's position in the ledger's hash chain; null without one."
    )
    chainHash = serializers.CharField(allow_null=True, help_text="That link's SHA-256, hex; null without one.")

    def get_fields(self):
        fields = super().get_fields()
        day = {"format": "%Y-%m-%d"}
        fields["from"] = serializers.DateField(help_text="The first day (in timeZone).", **day)
        fields["to"] = serializers.DateField(help_text="The last day, included.", **day)
        return fields
