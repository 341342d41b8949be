"""The API's only parser: JSON with exact decimals and a bounded body."""

import codecs
import json
from decimal import Decimal

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from wallet_project.exceptions import PayloadTooLarge


def _reject_constant(name: str) -> None:
    # NaN and Infinity are not JSON; Python's json accepts them unless told not to.
    raise ValueError(f"{name} is not a valid JSON value")


def _reject_duplicate_keys(pairs: list[tuple[str, object]]) -> dict:
    # {"amount": 1, "amount": 1000} must not silently mean the last one.
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        duplicate = next(key for key, _ in pairs if key in seen or seen.add(key))
        raise ValueError(f"duplicate key {duplicate!r}")
    return obj


class DecimalJSONParser(JSONParser):
    """Parses JSON numbers as `Decimal`, never through a binary float.

    The body is bounded twice: here by Content-Length and by what is read
    (413 before anything is parsed), and by Django's DATA_UPLOAD_MAX_MEMORY_SIZE
    (set to the same value) where DRF reads request.body; the exception handler
    turns that one into the same 413.
    """

    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.API_MAX_BODY_BYTES
        request = (parser_context or {}).get("request")
        declared = request.META.get("CONTENT_LENGTH") if request is not None else None
        if declared and declared.isdigit() and int(declared) > limit:
            raise PayloadTooLarge()
        raw = stream.read(limit + 1) if stream is not None else b""
        if len(raw) > limit:
            raise PayloadTooLarge()
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            text = codecs.decode(raw, encoding)
            return json.loads(
                text,
                parse_float=Decimal,
                parse_constant=_reject_constant,
                object_pairs_hook=_reject_duplicate_keys,
            )
        except RecursionError as exc:
            raise ParseError("JSON parse error - nested too deeply") from exc
        except (ValueError, UnicodeDecodeError) as exc:
            raise ParseError(f"JSON parse error - {exc}") from exc
