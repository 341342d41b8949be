"""Schemathesis hooks for wallet_project/tests/test_schemathesis.py: the
rules of a money request that a JSON schema cannot state, applied to each
generated request before it is sent, so that "positive" data is data the
contract accepts.

- A money request needs its idempotency key somewhere, and the header and the
  body field, if both are sent, agree (transfers/idempotency.py).
- A transfer's two wallets differ, and are the test client's own funded
  wallets (random UUIDs would only ever reach the 404).
- Metadata's property names are text: OpenAPI 3.0 has no propertyNames, so
  the schema cannot say that a name holds no lone UTF-16 surrogate or NUL
  (wallet_project/parsers.py refuses them, as the contract asks).
"""

import os
import uuid

import schemathesis

MONEY_PATHS = ("/api/transfer", "/api/wallets/{id}/deposit", "/api/wallets/{id}/withdraw")
HEADER = "Idempotency-Key"


@schemathesis.hook
def before_call(context, case, kwargs):
    if case.method != "POST" or case.path not in MONEY_PATHS or not isinstance(case.body, dict):
        return
    headers = case.headers if case.headers is not None else {}
    header = next((value for name, value in headers.items() if name.lower() == HEADER.lower()), None)
    if header is not None and "idempotencyKey" in case.body:
        case.body["idempotencyKey"] = header
    elif header is None and "idempotencyKey" not in case.body:
        case.body["idempotencyKey"] = f"st-{uuid.uuid4()}"
    metadata = case.body.get("metadata")
    if isinstance(metadata, dict):
        case.body["metadata"] = {name: value for name, value in metadata.items() if _is_text(name)}
    if case.path == "/api/transfer":
        case.body["sourceWalletId"] = os.environ["ST_SOURCE_WALLET"]
        case.body["destinationWalletId"] = os.environ["ST_DESTINATION_WALLET"]


def _is_text(name: str) -> bool:
    try:
        name.encode()
    except UnicodeEncodeError:  # a lone surrogate
        return False
    return "\x00" not in name
