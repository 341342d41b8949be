"""The API policies settings.REST_FRAMEWORK names for every view: which
client may run which action (ActionPermissions), which renderer answers
(FirstRendererNegotiation) and how a request body is read (the bounded
JSON decoder, DecimalJSONParser).

DRF imports this module while it defines APIView (its class attributes
read these settings), so it must not import rest_framework.views,
.generics or .viewsets, nor anything that does: the base viewset is
wallet_project/api.py. Authentication is clients/authentication.py,
throttling wallet_project/throttling.py.
"""

import codecs
import functools
import json
import re
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.http import Http404
from django.utils.http import parse_header_parameters
from rest_framework.exceptions import ParseError, UnsupportedMediaType, ValidationError
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.parsers import JSONParser
from rest_framework.permissions import BasePermission

from wallet_project.exceptions import PayloadTooLarge

# --- Permissions ----------------------------------------------------------------------


class ActionPermissions(BasePermission):
    """Each viewset names the Django permissions each action needs:

        required_permissions = {"create": ["wallets.add_wallet"], "retrieve": [...]}

    An action missing from the map is refused (deny by default). A request
    that matches no action (an unsupported method) passes, so that DRF
    answers it with 405 rather than 403, and so does OPTIONS.
    """

    def has_permission(self, request, view) -> bool:
        action = getattr(view, "action", None)
        if action is None or action == "metadata":
            # No action: DRF answers 405. "metadata" is OPTIONS, which names
            # the route's methods and nothing more (wallet_project/metadata.py),
            # to a client that is authenticated anyway.
            return True
        required = getattr(view, "required_permissions", {})
        if action not in required:
            self.message = "Permission denied: this action is not open to API clients."
            return False
        missing = [perm for perm in required[action] if not request.user.has_perm(perm)]
        if missing:
            # DRF reads `message` off the refusing permission instance (one per request).
            self.message = (
                f"Permission denied: this API client lacks {', '.join(missing)}. "
                "Ask the operator to add it to a group that has it (docs/api.md, API keys and groups)."
            )
            return False
        return True


# --- Content negotiation --------------------------------------------------------------
# DRF's content negotiation with a fast path for what API clients send, and
# an explicit ?format= that wins over the Accept header.

# No Accept header means */* (RFC 9110).
ANY = frozenset({"", "*/*"})


class FirstRendererNegotiation(DefaultContentNegotiation):
    """When the client accepts anything (no Accept, or */*) or exactly the first
    renderer's media type, and names no format (no ?format=, no suffix), the
    answer is the first renderer: what DRF's negotiation returns for these,
    without parsing and ranking the Accept header on every request. A format
    named (?format=, a suffix) is served whatever Accept says. Anything else
    (a list, q-values, parameters, another type) goes to DRF's, which also
    gives the 406.

    Its measured gain (bench/instructions.py, on and off, two pairs of runs):
    100K-130K instructions a request, 2 % of a transfer and 4 % of a replay;
    above the 2 % a fast path must earn to stay (bench/HISTORY.md)."""

    def select_renderer(self, request, renderers, format_suffix=None):
        first = renderers[0] if renderers else None
        accept = request.META.get("HTTP_ACCEPT", "")
        if (
            first is not None
            and format_suffix is None
            and not request.META.get("QUERY_STRING")
            and (accept in ANY or accept == first.media_type)
        ):
            return first, first.media_type
        format = format_suffix or request.query_params.get(self.settings.URL_FORMAT_OVERRIDE)
        if format:
            # An explicit format wins over the Accept header (docs/api.md), as
            # DRF's settings guide describes URL_FORMAT_OVERRIDE: a client that
            # always sends Accept: application/json and asks a statement
            # ?format=csv means the CSV. DRF's own negotiation still matches
            # Accept against the one renderer left and answers a 406.
            renderer = self.filter_renderers(renderers, format)[0]
            return renderer, renderer.media_type
        return super().select_renderer(request, renderers, format_suffix)

    def select_parser(self, request, parsers):
        """DRF's, answered at once for a body sent as exactly the first
        parser's media type (`application/json`, what API clients send),
        which DRF's would find by parsing both media types into objects and
        matching them. Anything else (a charset or another parameter,
        another type) goes to DRF's."""
        if parsers and request.content_type == parsers[0].media_type:
            return parsers[0]
        return super().select_parser(request, parsers)

    def get_accept_list(self, request):
        """DRF's tokens of the Accept header without those the client refuses
        (`q=0`, RFC 9110 12.4.2: "not acceptable"): DRF ranks media types by
        specificity and ignores q, so `application/json;q=0, text/html` would
        be answered in JSON. Nothing left is a 406, as for an Accept header
        naming only types the API does not offer."""
        return [token for token in super().get_accept_list(request) if not _refused(token)]

    def filter_renderers(self, renderers, format):
        """DRF answers a `?format=` that names none of the view's renderers
        with a 404, as if the resource did not exist: here it is what it
        is, a query parameter with a wrong value (400, naming it)."""
        try:
            return super().filter_renderers(renderers, format)
        except Http404:
            formats = ", ".join(sorted({renderer.format for renderer in renderers}))
            raise ValidationError({self.settings.URL_FORMAT_OVERRIDE: [f"One of: {formats}."]}) from None


def _refused(token: str) -> bool:
    """Whether an Accept token carries q=0 (any spelling: 0, 0.0, 0.000). A q
    that is not a number is left to DRF, which ignores q."""
    q = parse_header_parameters(token)[1].get("q")
    try:
        return q is not None and float(q) == 0
    except ValueError:
        return False


# --- Body parsing ---------------------------------------------------------------------
# The API's only parser: one bounded JSON decoder for every request body.
#
# Whatever a client sends, decoding costs time and memory in proportion to the
# body's size, which API_MAX_BODY_BYTES bounds, and never in proportion to a
# number the client chose (an exponent, a digit count, a nesting depth):
#
# - the body is UTF-8, as RFC 8259 requires of JSON between systems: another
#   charset in Content-Type, or one nobody knows (`charset=bogus`), is a 415
#   (Python's codecs also name decompressors and transforms: `charset=zlib`
#   would inflate a small body into gigabytes);
# - numbers are read exactly (integers as `int`, the rest as `Decimal`, never
#   through a binary float), and a number whose plain decimal form needs more
#   than JSON_MAX_NUMBER_DIGITS digits is refused before anything writes it
#   out: `1e1000000` is nine bytes sent but a million digits once PostgreSQL's
#   jsonb or Python's `int` writes it. The bound is far above any amount
#   (NUMERIC(20,2)) and any identifier a client would put in metadata;
# - nesting deeper than JSON_MAX_DEPTH is refused;
# - strings (object keys included) holding NUL or a lone UTF-16 surrogate
#   (`"\ud800"`, legal JSON escapes that no UTF-8 text can hold) are refused:
#   PostgreSQL and every encoder after this point would fail on them;
# - duplicate object keys are refused: `{"amount": 1, "amount": 1000}` must not
#   silently mean the last one;
# - NaN and Infinity are not JSON and are refused.
#
# Every other refusal is DRF's ParseError: a 400 `parse_error` in the envelope.

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
    """The bounded decoding of one UTF-8 request body (see the comment that opens this
    section). Fractional numbers and numbers with an exponent come back as
    `Decimal`, integers as `int`. Raises ValueError (a JSON error, or one of
    the refusals above; UnicodeDecodeError included)."""
    text = raw.decode("utf-8")
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
        raise Refused(f"a number has more than {settings.JSON_MAX_NUMBER_DIGITS} digits") from None
    except ValueError as exc:
        if isinstance(exc, json.JSONDecodeError | Refused):
            raise
        # int()'s own limit of 4,300 digits, worded as ours.
        raise Refused(f"a number has more than {settings.JSON_MAX_NUMBER_DIGITS} digits") from None
    if _may_refuse(text):
        _check(document)
    return document


# A JSON string, escapes and all, in a text the decoder has read.
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)


@functools.cache
def _number_refused(max_digits: int) -> re.Pattern:
    """Where a text without its strings may hold a number of more than
    `max_digits` digits once written out: more digits than that in a row (a
    point between them), or an exponent (a digit and then e or E)."""
    return re.compile(rf"[0-9][eE]|[0-9.]{{{max_digits + 1}}}", re.ASCII)


def _may_refuse(text: str) -> bool:
    """Whether the document decoded from `text` may hold what _check refuses,
    read from the text alone: NUL or a surrogate in a string, which only a
    \\u escape can put there (the UTF-8 decoding refuses a raw surrogate, the
    JSON decoder a raw NUL); nesting deeper than JSON_MAX_DEPTH (_nests_deeper,
    from the brackets outside strings); a number with more digits
    (_number_refused). A transfer's body holds none, and is not walked. With
    select_parser's short path, about 32K instructions less per transfer body
    read (callgrind, 200 reads of the bench's transfer body: 668K to 636K).
    Nor is a batch's: its thousand payouts hold more brackets than the bound
    but nest three deep, read from its brackets (_nests_deeper). The bench's
    body of 1,000 payouts: decoded in 2.6 ms instead of 3.7 ms, the walk
    alone was 2.8 ms (in-process, best of 50; bench/HISTORY.md, 2026-12-07 12:14)."""
    if "\\u" in text:
        return True
    max_depth = settings.JSON_MAX_DEPTH
    outside_strings = _STRING.sub("", text)
    return (
        # Fewer brackets than the bound cannot nest deeper than it: a
        # transfer's body is not scanned for its depth.
        (text.count("{") + text.count("[") > max_depth and _nests_deeper(outside_strings, max_depth))
        or _number_refused(settings.JSON_MAX_NUMBER_DIGITS).search(outside_strings) is not None
    )


_NOT_A_BRACKET = re.compile(r"[^\[\]{}]+")
# A container with nothing in it but scalars: an innermost one.
_INNERMOST = re.compile(r"\{\}|\[\]")


def _nests_deeper(outside_strings: str, max_depth: int) -> bool:
    """Whether the JSON text `outside_strings` (a document the decoder has
    read, its strings removed) nests objects and arrays deeper than
    `max_depth`, as _check counts it (the document itself is at depth 1).
    Each pass takes the innermost containers away, one level of every
    branch: the text is empty after as many passes as it is deep. At most
    max_depth + 1 passes, each linear in the text: the cost is bounded by
    the body's size, never by a depth the client chose."""
    brackets = _NOT_A_BRACKET.sub("", outside_strings)
    for _ in range(max_depth):
        if not brackets:
            return False
        brackets = _INNERMOST.sub("", brackets)
    return bool(brackets)


def declares_utf_8(content_type: str) -> bool:
    """Whether a Content-Type's charset, if it names one, is UTF-8 (in any of
    the names Python gives it: utf-8, UTF8, utf_8). Read from the header
    itself: Django drops a charset it does not know (`charset=bogus`) from
    request.encoding, which would leave a body declared in a charset nobody
    knows read as UTF-8. No charset at all is UTF-8 (RFC 8259)."""
    if ";" not in content_type:
        return True  # no parameters, so no charset
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
