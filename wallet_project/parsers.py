"""The API's only parser: one bounded JSON decoder for every request body.

Whatever a client sends, decoding costs time and memory in proportion to the
body's size, which API_MAX_BODY_BYTES bounds, and never in proportion to a
number the client chose (an exponent, a digit count, a nesting depth):

- the body is UTF-8, as RFC 8259 requires of JSON between systems: another
  charset in Content-Type, or one nobody knows (`charset=bogus`), is a 415
  (Python's codecs also name decompressors and transforms: `charset=zlib`
  would inflate a small body into gigabytes);
- numbers are read exactly (integers as `int`, the rest as `Decimal`, never
  through a binary float), and a number whose plain decimal form needs more
  than JSON_MAX_NUMBER_DIGITS digits is refused before anything writes it
  out: `1e1000000` is nine bytes sent but a million digits once PostgreSQL's
  jsonb or Python's `int` writes it. The bound is far above any amount
  (NUMERIC(20,2)) and any identifier a client would put in metadata;
- nesting deeper than JSON_MAX_DEPTH is refused;
- strings (object keys included) holding NUL or a lone UTF-16 surrogate
  (`"\\ud800"`, legal JSON escapes that no UTF-8 text can hold) are refused:
  PostgreSQL and every encoder after this point would fail on them;
- duplicate object keys are refused: `{"amount": 1, "amount": 1000}` must not
  silently mean the last one;
- NaN and Infinity are not JSON and are refused.

Every other refusal is DRF's ParseError: a 400 `parse_error` in the envelope.
"""

import codecs
import json
import re
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.utils.http import parse_header_parameters
from rest_framework.exceptions import ParseError, UnsupportedMediaType
from rest_framework.parsers import JSONParser

from wallet_project.exceptions import PayloadTooLarge

# What no stored text may hold: NUL and the surrogate code points.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def plain_digits(number: Decimal) -> int:
    """How many digits `number` has when written without an exponent, as
    PostgreSQL's numeric (and so jsonb) and Python's `int` write it: integer
    digits plus the digits after the point. `1E+6` has 7, `12.50` has 4,
    `1E-5` has 6 (0.00001). Cost: that of as_tuple(), linear in the digits
    the client sent, never in the exponent."""
    exponent = number.as_tuple().exponent
    return max(1, number.adjusted() + 1) + max(0, -exponent)


class Refused(ValueError):
    """A body that is JSON but that this decoder refuses."""


def _reject_constant(name: str) -> None:
    # NaN and Infinity are not JSON; Python's json accepts them unless told not to.
    raise Refused(f"{name} is not a valid JSON value")


def _reject_duplicate_keys(pairs: list[tuple[str, object]]) -> dict:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise Refused("an object has a duplicate key")
    return obj


def _check(document: object) -> None:
    """Walks the decoded document once (iteratively: no recursion limit to
    hit), refusing nesting deeper than JSON_MAX_DEPTH, any string or key
    that holds NUL or a lone surrogate, and any number of more than
    JSON_MAX_NUMBER_DIGITS digits once written out."""
    max_depth = settings.JSON_MAX_DEPTH
    max_digits = settings.JSON_MAX_NUMBER_DIGITS
    largest_int = 10**max_digits
    pending: list[tuple[object, int]] = [(document, 1)]
    while pending:
        value, depth = pending.pop()
        kind = type(value)
        if kind is str:
            if _UNSTORABLE.search(value):
                raise Refused("a string holds NUL or a lone UTF-16 surrogate")
        elif kind is Decimal:
            if plain_digits(value) > max_digits:
                raise Refused(f"a number has more than {max_digits} digits")
        elif kind is int:
            if not -largest_int < value < largest_int:
                raise Refused(f"a number has more than {max_digits} digits")
        elif kind is dict or kind is list:
            if depth > max_depth:
                raise Refused(f"nested deeper than {max_depth} levels")
            if kind is dict:
                pending.extend((key, depth) for key in value)
                pending.extend((item, depth + 1) for item in value.values())
            else:
                pending.extend((item, depth + 1) for item in value)


def decode_json(raw: bytes) -> object:
    """The bounded decoding of one UTF-8 request body (see the module
    docstring). Fractional numbers and numbers with an exponent come back as
    `Decimal`, integers as `int`. Raises ValueError (a JSON error, or one of
    the refusals above; UnicodeDecodeError included)."""
    text = raw.decode("utf-8")
    too_many_digits = f"a number has more than {settings.JSON_MAX_NUMBER_DIGITS} digits"
    try:
        # Both conversions are C and linear in the digits sent: Decimal keeps
        # an exponent as a number (1e1000000 is cheap until written out), and
        # int() refuses more than 4,300 digits (sys.get_int_max_str_digits).
        # The bounds are applied to what they return, in _check.
        document = json.loads(
            text,
            parse_float=Decimal,
            parse_constant=_reject_constant,
            object_pairs_hook=_reject_duplicate_keys,
        )
    except RecursionError:
        # Python's json gives up near 1,000 levels, long before a deep body
        # costs anything; _check applies the real bound.
        raise Refused(f"nested deeper than {settings.JSON_MAX_DEPTH} levels") from None
    except InvalidOperation:
        # An exponent beyond what Decimal can hold at all (1e10**18).
        raise Refused(too_many_digits) from None
    except ValueError as exc:
        if isinstance(exc, json.JSONDecodeError | Refused):
            raise
        # int()'s own limit of 4,300 digits, worded as ours.
        raise Refused(too_many_digits) from None
    _check(document)
    return document


def declares_utf_8(content_type: str) -> bool:
    """Whether a Content-Type's charset, if it names one, is UTF-8 (in any of
    the names Python gives it: utf-8, UTF8, utf_8). Read from the header
    itself: Django drops a charset it does not know (`charset=bogus`) from
    request.encoding, which would leave a body declared in a charset nobody
    knows read as UTF-8. No charset at all is UTF-8 (RFC 8259)."""
    charset = parse_header_parameters(content_type)[1].get("charset")
    if charset is None:
        return True
    try:
        return codecs.lookup(charset).name == "utf-8"
    except (LookupError, ValueError):  # unknown, or not a name at all (a NUL)
        return False


class DecimalJSONParser(JSONParser):
    """DRF's JSON parser, through decode_json.

    The body is bounded twice: here by Content-Length and by what is read
    (413 before anything is parsed), and by Django's DATA_UPLOAD_MAX_MEMORY_SIZE
    (the largest bound of any route) where DRF reads request.body; the
    exception handler turns that one into the same 413. A view that takes
    larger bodies than API_MAX_BODY_BYTES (a batch of payouts) says so with
    its `max_body_bytes`.
    """

    def parse(self, stream, media_type=None, parser_context=None):
        view = (parser_context or {}).get("view")
        limit = getattr(view, "max_body_bytes", None) or settings.API_MAX_BODY_BYTES
        request = (parser_context or {}).get("request")
        declared = request.META.get("CONTENT_LENGTH") if request is not None else None
        if declared and declared.isdigit() and int(declared) > limit:
            raise PayloadTooLarge()
        raw = stream.read(limit + 1) if stream is not None else b""
        if len(raw) > limit:
            raise PayloadTooLarge()
        if not declares_utf_8(media_type or ""):
            raise UnsupportedMediaType(media_type, detail="JSON bodies are UTF-8; send no other charset.")
        try:
            return decode_json(raw)
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from exc
