"""Schemathesis hooks for wallet_project/tests/test_schemathesis.py: the
rules of a money request that a JSON schema cannot state, applied to each
generated request before it is sent, so that "positive" data is data the
contract accepts.

- A money request (a batch included) needs its idempotency key somewhere,
  and the header and the body field, if both are sent, agree
  (transfers/views.py, read_money_request).
- A transfer's two wallets differ, and are the test client's own funded
  wallets (random UUIDs would only ever reach the 404).
- A batch's payouts go from the client's source wallet to its other wallet,
  each under a key of its own (unique within the batch, as the API requires).
- A wallet's PATCH names a tier that exists (tier names are data, not a
  schema enum) and gives a reason when it sets a restriction, as the API
  requires (docs/limits.md).
- A balance is asked as of an instant that has come, and a statement for
  days that have begun, `to` not before `from`, at most STATEMENT_MAX_DAYS
  of them; both of the test client's own wallet.
- A hold's wallets as a transfer's; exactly one expiry, in the future (a
  schema cannot say "one of" two optional fields, nor "after now"); a set of
  holds has at least one, each once.
- Metadata's property names are text: the schema cannot say that a name
  holds no lone UTF-16 surrogate or NUL (wallet_project/policies.py refuses
  them, as the contract asks).
- A value the schema allows and the reader refuses is brought within the
  reader's bounds: metadata's stored size (TRANSFER_METADATA_MAX_BYTES), its
  numbers' digits, and the Unicode code points not assigned yet that a body
  key may not hold (transfers/serializers.py, BODY_KEY_PATTERN). The data
  decides, not the generation mode: each such value is checked against its
  own schema (as served, with Schemathesis' validator) and against the
  reader (for a key, the reader itself), so a value its schema refuses, the
  negative data a case is about, is sent as generated in either mode, and a
  value within its schema is never one the server refuses, whichever data
  the seed produces and whichever phase (examples, coverage, fuzzing,
  stateful) sends it.
"""

import contextlib
import datetime as dt
import json
import os
import uuid
import zoneinfo
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import django
import jsonschema_rs
import schemathesis

# Schemathesis loads this module in its own process, where nothing has set
# Django up; the key reader (transfers.serializers) stands on the models.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "wallet_project.settings")
django.setup()

from rest_framework.exceptions import ValidationError  # noqa: E402

from transfers.serializers import key_from_header, validate_idempotency_key  # noqa: E402

# What the reader allows (settings.TRANSFER_METADATA_MAX_BYTES,
# JSON_MAX_NUMBER_DIGITS), with room for how jsonb writes numbers.
METADATA_MAX_BYTES = 4096 - 256
NUMBER_MAX_DIGITS = 40
MONEY_PATHS = ("/api/transfer", "/api/wallets/{id}/deposit", "/api/wallets/{id}/withdraw")
BATCH_PATH = "/api/transfers/batch"
BALANCE_PATH = "/api/wallets/{id}/balance"
STATEMENT_PATH = "/api/wallets/{id}/statement"
# The server's business day (settings.BUSINESS_TIME_ZONE, from the same
# environment: this runs in schemathesis's process, without Django), and
# STATEMENT_MAX_DAYS's default.
BUSINESS_ZONE = zoneinfo.ZoneInfo(os.environ.get("BUSINESS_TIME_ZONE", "Africa/Lagos"))
STATEMENT_MAX_DAYS = 366
# Holds (docs/api.md, "Holds"): keyed as money requests; a hold's wallets as
# a transfer's; exactly one expiry, in the future; a set of at least one hold.
HOLD_PATH = "/api/holds"
HOLD_SET_PATHS = ("/api/holds/capture", "/api/holds/void")
HOLD_END_PATHS = ("/api/holds/{hold_id}/capture", "/api/holds/{hold_id}/void", "/api/holds/{hold_id}/extend")
HOLD_PATHS = (HOLD_PATH, *HOLD_SET_PATHS, *HOLD_END_PATHS)
HEADER = "Idempotency-Key"


@schemathesis.hook
def before_call(context, case, kwargs):
    if case.method == "PATCH" and case.path == "/api/wallets/{id}" and isinstance(case.body, dict):
        _wallet_limits(case.body)
        return
    if case.method == "GET" and case.path in (BALANCE_PATH, STATEMENT_PATH):
        _in_the_past(case)
        return
    if case.method != "POST" or case.path not in (*MONEY_PATHS, BATCH_PATH, *HOLD_PATHS):
        return
    if case.path in HOLD_PATHS and not isinstance(case.body, dict):
        # A hold's end or extension sent without a body: the key in the header, and an extension's expiry.
        case.body = {"expiresInSeconds": 60} if case.path.endswith("/extend") else {}
    if not isinstance(case.body, dict):
        return
    headers = case.headers if case.headers is not None else {}
    header = next((value for name, value in headers.items() if name.lower() == HEADER.lower()), None)
    root = next((b.resolved_schema for b in case.operation.body if b.media_type == case.media_type), None)
    _within_the_readers_bounds(case.body, root)
    _one_key(case.body, header, root)
    if case.path == BATCH_PATH:
        _batch(case.body)
        return
    if case.path in HOLD_SET_PATHS:
        _hold_set(case.body)
        return
    if case.path in (HOLD_PATH, "/api/holds/{hold_id}/extend"):
        _one_expiry(case.body)
    metadata = case.body.get("metadata")
    if isinstance(metadata, dict):
        case.body["metadata"] = {name: value for name, value in metadata.items() if _is_text(name)}
    if case.path in ("/api/transfer", HOLD_PATH):
        case.body["sourceWalletId"] = os.environ["ST_SOURCE_WALLET"]
        case.body["destinationWalletId"] = os.environ["ST_DESTINATION_WALLET"]


def _wallet_limits(body: dict) -> None:
    if "tier" in body:
        body["tier"] = "unrestricted"  # always a tier (wallets/serializers.py)
    reason = body.get("reason")
    if isinstance(reason, str):
        body["reason"] = reason if _is_text(reason) else "st"
    restricting = body.get("postNoDebit") is True or body.get("postNoCredit") is True
    if restricting and not (isinstance(body.get("reason"), str) and body["reason"].strip()):
        body["reason"] = "st"


def _is_text(name: str) -> bool:
    try:
        name.encode()
    except UnicodeEncodeError:  # a lone surrogate
        return False
    return "\x00" not in name


def _batch(body: dict) -> None:
    body["sourceWalletId"] = os.environ["ST_SOURCE_WALLET"]
    for payout in body.get("transfers") or []:
        if isinstance(payout, dict):
            payout["destinationWalletId"] = os.environ["ST_DESTINATION_WALLET"]
            payout["idempotencyKey"] = f"st-{uuid.uuid4()}"
            if isinstance(payout.get("metadata"), dict):
                payout["metadata"] = {k: v for k, v in payout["metadata"].items() if _is_text(k)}


def _in_the_past(case) -> None:
    if case.path_parameters:
        case.path_parameters["id"] = os.environ["ST_SOURCE_WALLET"]
    query = case.query if isinstance(case.query, dict) else {}
    if case.path == BALANCE_PATH:
        at = _parsed(dt.datetime.fromisoformat, query.get("at"))
        now = dt.datetime.now(dt.UTC)
        if at is not None and at.tzinfo is not None and at > now:
            query["at"] = now.isoformat()
        return
    first, last = (_parsed(dt.date.fromisoformat, query.get(name)) for name in ("from", "to"))
    if first is None or last is None:
        return
    first = min(first, dt.datetime.now(BUSINESS_ZONE).date())
    last = min(max(last, first), first + dt.timedelta(days=STATEMENT_MAX_DAYS - 1))
    query["from"], query["to"] = first.isoformat(), last.isoformat()


def _parsed(parse, value):
    try:
        return parse(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _one_key(body: dict, header: str | None, root: dict | None) -> None:
    """A key somewhere, and the same key where both are sent: the body's
    becomes the key the header names, as the reader reads it (a quoted
    "abc" names abc, whitespace around it is HTTP's), when the header names
    one and the body's key is within its schema; a header or a body key
    its schema refuses is the negative data, sent as generated."""
    if header is None:
        body.setdefault("idempotencyKey", f"st-{uuid.uuid4()}")
        return
    if "idempotencyKey" not in body or (
        root is not None and not _allows(root, root, "idempotencyKey", body["idempotencyKey"])
    ):
        return
    with contextlib.suppress(ValidationError):  # the header is the negative data
        body["idempotencyKey"] = key_from_header(header)


def _within_the_readers_bounds(body: dict, root: dict | None) -> None:
    """The body's metadata and keys (a batch's payouts' too) that their schema
    (`root`, the served body schema) allows and the reader refuses, replaced
    by values it accepts; a value its schema refuses is left as generated
    (see the module's docstring)."""
    if root is None:
        return
    parts = [(body, root)]
    payout = _resolved(root, root.get("properties", {}).get("transfers", {}).get("items", {}))
    parts += [(item, payout) for item in body.get("transfers") or [] if isinstance(item, dict)]
    for item, schema in parts:
        metadata = item.get("metadata")
        if isinstance(metadata, dict) and not _storable(metadata) and _allows(root, schema, "metadata", metadata):
            item["metadata"] = {"trimmed": True}
        key = item.get("idempotencyKey")
        if isinstance(key, str) and not _reader_takes(key) and _allows(root, schema, "idempotencyKey", key):
            item["idempotencyKey"] = f"st-{uuid.uuid4()}"


def _resolved(root: dict, node: dict) -> dict:
    """`node`, its reference followed into the served body schema's bundle."""
    while isinstance(node, dict) and "$ref" in node:
        node = root.get("x-bundled", {}).get(node["$ref"].rsplit("/", 1)[-1], {})
    return node


def _allows(root: dict, schema: dict, name: str, value) -> bool:
    """Whether the property `name` of object `schema` allows `value`, as the
    served schema says (OpenAPI 3.1: JSON Schema 2020-12)."""
    node = _resolved(root, schema.get("properties", {}).get(name))
    if not isinstance(node, dict):
        return False
    return jsonschema_rs.Draft202012Validator({**node, "x-bundled": root.get("x-bundled", {})}).is_valid(value)


def _reader_takes(key: str) -> bool:
    try:
        validate_idempotency_key(key)
    except ValidationError:
        return False
    return True


def _storable(metadata: dict) -> bool:
    try:
        text = json.dumps(metadata, ensure_ascii=False, separators=(",", ":"), default=str)
    except (TypeError, ValueError):
        return False
    if len(text.encode(errors="surrogatepass")) > METADATA_MAX_BYTES:
        return False

    def all_text(value) -> bool:  # at every depth, names and strings (wallet_project/policies.py)
        if isinstance(value, str):
            return _is_text(value)
        if isinstance(value, dict):
            return all(_is_text(k) and all_text(v) for k, v in value.items())
        if isinstance(value, list):
            return all(all_text(v) for v in value)
        return True

    if not all_text(metadata):
        return False

    def numbers_fit(value) -> bool:
        if isinstance(value, bool) or value is None or isinstance(value, str):
            return True
        if isinstance(value, (int, float)):
            written = format(Decimal(repr(value)) if isinstance(value, float) else Decimal(value), "f")
            return len(written.lstrip("-").replace(".", "")) <= NUMBER_MAX_DIGITS
        if isinstance(value, dict):
            return all(numbers_fit(v) for v in value.values())
        if isinstance(value, list):
            return all(numbers_fit(v) for v in value)
        return True

    return numbers_fit(metadata)


def _one_expiry(body: dict) -> None:
    """Exactly one of expiresAt and expiresInSeconds, and an instant in the future."""
    if "expiresAt" in body:
        body.pop("expiresInSeconds", None)
        body["expiresAt"] = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    elif "expiresInSeconds" not in body:
        body["expiresInSeconds"] = 60


def _hold_set(body: dict) -> None:
    """At least one hold, each once."""
    items = [item for item in body.get("holds") or [] if isinstance(item, dict)]
    seen, unique = set(), []
    for item in items:
        if repr(item.get("holdId")) not in seen:
            seen.add(repr(item.get("holdId")))
            unique.append(item)
    body["holds"] = unique or [{"holdId": str(uuid.uuid4())}]
