"""Schemathesis hooks for wallet_project/tests/test_schemathesis.py: the
rules of a money request that a JSON schema cannot state, applied to each
generated request before it is sent, so that "positive" data is data the
contract accepts.

- A money request (a batch included) needs its idempotency key somewhere,
  and the header and the body field, if both are sent, agree
  (transfers/http.py, read_money_request).
- A transfer's two wallets differ, and are the test client's own funded
  wallets (random UUIDs would only ever reach the 404).
- A batch's payouts go from the client's source wallet to its other wallet,
  each under a key of its own (unique within the batch, as the API requires).
- A hold's wallets as a transfer's; exactly one expiry, in the future (a
  schema cannot say "one of" two optional fields, nor "after now"); a set of
  holds has at least one, each once.
- Metadata's property names are text: OpenAPI 3.0 has no propertyNames, so
  the schema cannot say that a name holds no lone UTF-16 surrogate or NUL
  (wallet_project/parsers.py refuses them, as the contract asks).
"""

import os
import uuid
from datetime import UTC, datetime, timedelta

import schemathesis

MONEY_PATHS = ("/api/transfer", "/api/wallets/{id}/deposit", "/api/wallets/{id}/withdraw")
BATCH_PATH = "/api/transfers/batch"
# Holds (docs/api.md, "Holds"): keyed as money requests; a hold's wallets as
# a transfer's; exactly one expiry, in the future; a set of at least one hold.
HOLD_PATH = "/api/holds"
HOLD_SET_PATHS = ("/api/holds/capture", "/api/holds/void")
HOLD_END_PATHS = ("/api/holds/{hold_id}/capture", "/api/holds/{hold_id}/void", "/api/holds/{hold_id}/extend")
HOLD_PATHS = (HOLD_PATH, *HOLD_SET_PATHS, *HOLD_END_PATHS)
HEADER = "Idempotency-Key"


@schemathesis.hook
def before_call(context, case, kwargs):
    if case.method != "POST" or case.path not in (*MONEY_PATHS, BATCH_PATH, *HOLD_PATHS):
        return
    if case.path in HOLD_PATHS and not isinstance(case.body, dict):
        # A hold's end or extension sent without a body: the key in the header, and an extension's expiry.
        case.body = {"expiresInSeconds": 60} if case.path.endswith("/extend") else {}
    if not isinstance(case.body, dict):
        return
    headers = case.headers if case.headers is not None else {}
    header = next((value for name, value in headers.items() if name.lower() == HEADER.lower()), None)
    if header is not None and "idempotencyKey" in case.body:
        case.body["idempotencyKey"] = header
    elif header is None and "idempotencyKey" not in case.body:
        case.body["idempotencyKey"] = f"st-{uuid.uuid4()}"
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
