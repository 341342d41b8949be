"""The OpenAPI 3.1 schema served at /api/schema/: the contract a client
generates its SDK from (docs/api.md, "Generating a client").

Views declare their success body (through `envelope`) and the errors only they
return; `complete_schema`, drf-spectacular's post-processing hook, adds what
every operation shares, from the tables below:

- SUMMARIES: each operation's summary and description, written for a client
  developer (the views' docstrings are written for the people who maintain them);
- the errors that carry `data`: each view declares, per response, what its
  errors' `data` holds (`error(..., data=...)`: the FAILED transaction of a
  transfer's business rule, the FAILED hold of a hold's, the batch of
  `batch_failed`, ...), since one code carries different data on different
  operations; each such response is the Error with that `data`
  (`<Shape>Error`). The error codes themselves come from the registry
  (wallet_project/error_codes.py) as the `ErrorCode` enum;
- EVENT_PAYLOADS: the `data` of each event type, so that an event is one
  schema per type discriminated by `type`, in GET /api/events and in the
  webhooks the schema publishes;
- the statuses any operation can answer (401, 403, 405, 406, 429, 500, 503,
  and the edge's 408, 414, 431, 502, 504; 400, 413 and 415 with a body), the
  headers that carry meaning (X-Request-ID, Retry-After,
  Idempotent-Replayed), and /health.

The ground floor imports no app (docs/design.md): event types and component
names are written here as the text they are; wallet_project/tests/test_schema.py
checks them against the apps.
"""

import copy

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.urls import reverse
from drf_spectacular.utils import OpenApiResponse, inline_serializer
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework import exceptions, serializers
from rest_framework.renderers import JSONRenderer

from wallet_project.api import CANONICAL_UUID_REGEX
from wallet_project.error_codes import ERROR_CODES


class ErrorSerializer(serializers.Serializer):
    """Placeholder for the views' error responses: `complete_schema` replaces
    the component with the typed `Error` (_ERROR_COMPONENT)."""

    success = serializers.BooleanField(default=False)
    message = serializers.CharField()
    code = serializers.CharField()


# A UUID as the API reads one (uuid_from_text, wallet_project/api.py).
UUID_PATTERN = f"^{CANONICAL_UUID_REGEX}$"

_ENVELOPES: dict[str, type] = {}


def envelope(serializer, name: str):
    """The success envelope `{"success": true, "data": <serializer>}` as the
    component `<name>Envelope`, one per shape: every response of that shape
    (a first answer and its replay, a lookup by key and by reference) names
    the same component."""
    component = f"{name}Envelope"
    if component not in _ENVELOPES:
        _ENVELOPES[component] = inline_serializer(
            name=component, fields={"success": serializers.BooleanField(default=True), "data": serializer}
        )
    return _ENVELOPES[component]


# Error components whose `data` has a shape: name -> the component(s) it holds.
_ERRORS_WITH_DATA: dict[str, tuple[str, ...]] = {}
_ERROR_PLACEHOLDERS: dict[str, type] = {}


def error(description: str, data: str | tuple[str, ...] = (), name: str = "") -> OpenApiResponse:
    """A view's error response: the Error envelope; with `data`, the
    component this operation's errors hold in `data` (a tuple: one of those,
    a union the view names with `name`), as `<Shape>Error` (or `name`).
    `data` stays optional: the description says which codes carry it."""
    shapes = (data,) if isinstance(data, str) else tuple(data)
    if not shapes:
        return OpenApiResponse(response=ErrorSerializer, description=description)
    if len(shapes) > 1 and not name:
        raise ValueError(f"Name the error whose data is one of {shapes}.")
    name = name or f"{shapes[0]}Error"
    if _ERRORS_WITH_DATA.setdefault(name, shapes) != shapes:
        raise ValueError(f"{name} already names the error whose data is one of {_ERRORS_WITH_DATA[name]}.")
    if name not in _ERROR_PLACEHOLDERS:  # one class per component: drf-spectacular names it from the class
        _ERROR_PLACEHOLDERS[name] = type(f"{name}Serializer", (ErrorSerializer,), {"__doc__": ErrorSerializer.__doc__})
    return OpenApiResponse(response=_ERROR_PLACEHOLDERS[name], description=description)


# operationId: (summary, description). Every operation has one (a test holds it).
SUMMARIES = {
    "wallets_create": (
        "Open a wallet",
        "Opens a wallet for one of your end users (`userId`, a UUID of your own system) in a currency. "
        "One wallet per user and currency: a second is a 409 `wallet_exists`.",
    ),
    "wallets_list": ("List a user's wallets", "Your wallets of one end user, one per currency."),
    "wallets_retrieve": ("Get a wallet", "One of your wallets with its balance; another client's answers 404."),
    "wallets_transactions_list": (
        "List a wallet's history",
        "The wallet's transactions, newest first, in pages: pass a page's `nextCursor` back as `cursor`. "
        "Filter by `status` and `type`.",
    ),
    "wallets_deposit_create": (
        "Deposit into a wallet",
        "Moves money from the currency's settlement wallet into yours, exactly once per idempotency key: a "
        "retry with the same key and body answers 200 with `Idempotent-Replayed: true`.",
    ),
    "wallets_withdraw_create": (
        "Withdraw from a wallet",
        "Moves money from your wallet to the currency's settlement wallet, exactly once per idempotency key.",
    ),
    "transfer_create": (
        "Transfer between wallets",
        "Moves an amount from one of your wallets to another wallet of the same currency, exactly once per "
        "idempotency key. A business rule that refuses it stores a FAILED transaction (422, in `data`); a "
        "retry replays the same answer.",
    ),
    "transfer_retrieve": (
        "Get a transaction by idempotency key",
        "The transaction your client made under this key (a payout's key included).",
    ),
    "transfer_reference_retrieve": (
        "Get a transaction by reference",
        "A transaction by its reference (TXN-...), if it touched one of your wallets.",
    ),
    "transfers_batch_create": (
        "Send a batch of payouts",
        "Pays up to 1,000 wallets from one source wallet. `atomic: true`: all payouts or none; `false`: each on "
        "its own. Exactly once per batch key and per payout key.",
    ),
    "transfers_batch_retrieve": ("Get a batch", "A batch you sent, with each payout's outcome."),
    "events_list": (
        "List your events",
        "Your events in the order they committed, after `after` (the `nextCursor` of the previous page). "
        "Each event is one schema per `type`; the same bodies are delivered to your webhook endpoints.",
    ),
    "webhook_endpoints_create": (
        "Register a webhook endpoint",
        "Deliveries follow the Standard Webhooks specification, signed with the secret in this answer only.",
    ),
    "webhook_endpoints_list": (
        "List your webhook endpoints",
        "Newest first, in pages like every list; a disabled endpoint says why.",
    ),
    "webhook_endpoints_destroy": ("Delete a webhook endpoint", "No delivery is attempted to it afterwards."),
    "health": ("Check the service's health", "Are PostgreSQL and Redis answering? No authentication."),
    "wallets_partial_update": (
        "Set a wallet's tier or restrictions",
        "Any of `tier` (a name GET /api/tiers lists for the wallet's currency), `postNoDebit`, `postNoCredit`; "
        "`reason` is required to set a restriction. An empty body changes nothing (docs/limits.md).",
    ),
    "tiers_list": (
        "List the KYC tiers",
        "Each tier's caps per currency, as decimal strings or null for none (docs/limits.md).",
    ),
    "wallets_balance_retrieve": (
        "Get a wallet's balance as of an instant",
        "The balance after every movement that completed at or before `at` (default: now).",
    ),
    "wallets_statement_retrieve": (
        "Get a wallet's statement",
        "Opening and closing balances, totals, and every movement with the balance after it, for the days "
        "`from` to `to` (in the business time zone, Africa/Lagos by default), as JSON, CSV or PDF (`format`).",
    ),
    "holds_create": (
        "Place a hold",
        "Reserves an amount on one of your wallets toward another wallet until it expires, exactly once per "
        "idempotency key. The wallet's `available` falls by the amount; its `balance` does not.",
    ),
    "holds_retrieve": ("Get a hold", "One of your holds; another client's answers 404 like an unknown one."),
    "holds_capture": (
        "Capture a hold",
        "Moves the hold's amount (or part of it, `amount`) to its destination as a TRANSFER and releases the "
        "rest. Once per hold: ending an ended hold is a 409 `hold_not_open`.",
    ),
    "holds_void": ("Void a hold", "Releases all the hold reserves. Once per hold."),
    "holds_extend": ("Extend a hold", "Moves the hold's expiry later; an earlier one is refused."),
    "holds_capture_set": (
        "Capture a set of holds",
        "Captures each hold of the set, all or none, in one request.",
    ),
    "holds_void_set": ("Void a set of holds", "Voids each hold of the set, all or none, in one request."),
}

_UNKNOWN_HOLDS = {
    "type": "object",
    "description": "The holds of a set that are unknown or another client's.",
    "additionalProperties": False,
    "required": ["holdIds"],
    # Not named HoldIds: a generated client's model HoldIds would have a field hold_ids that shadows its own
    # local variable in from_dict (openapi-python-client 0.29.1), which mypy --strict refuses.
    "properties": {"holdIds": {"type": "array", "items": {"type": "string", "format": "uuid"}}},
}


# Components whose description is kept (the others' are the serializers' docstrings).
_DESCRIBED = ("Error", "FieldErrors", "ItemErrors", "ReusedPayouts", "UnknownHolds")


_REUSED_PAYOUTS = {
    "type": "object",
    "description": "The payouts of a batch whose keys were already used for other transactions.",
    "additionalProperties": False,
    "required": ["payouts"],
    "properties": {
        "payouts": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["index", "idempotencyKey"],
                "properties": {"index": {"type": "integer", "minimum": 0}, "idempotencyKey": {"type": "string"}},
            },
        }
    },
}

# The `data` of each event type: the transaction or wallet as the API shows
# it to the client the event goes to, or the batch's outcome.
EVENT_PAYLOADS = {
    "transfer.completed": "TransactionDetail",
    "transfer.failed": "TransactionDetail",
    "transfer.reversed": "TransactionDetail",
    "deposit.completed": "TransactionDetail",
    "deposit.failed": "TransactionDetail",
    "withdrawal.completed": "TransactionDetail",
    "withdrawal.failed": "TransactionDetail",
    "batch.finished": "BatchFinished",
    "hold.created": "Hold",
    "hold.captured": "Hold",
    "hold.voided": "Hold",
    "hold.expired": "Hold",
    "hold.extended": "Hold",
    "wallet.frozen": "Wallet",
    "wallet.unfrozen": "Wallet",
    "wallet.tier_changed": "Wallet",
    "ledger.checkpoint": "LedgerCheckpoint",
}
# The ledger chain's head, as reconciliation/chain.py's checkpoint_data writes it.
_LEDGER_CHECKPOINT = {
    "type": "object",
    "description": "The ledger chain's head, published hourly to the auditor's client (docs/operations.md, \"A "
    'provable history"): prove a history up to it with `verify_ledger --checkpoint <checkpoint>`.',
    "required": ["position", "hash", "checkpoint", "transactionId", "chainedAt", "publishedAt"],
    "properties": {
        "position": {"type": "integer", "minimum": 1},
        "hash": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
        "checkpoint": {"type": "string", "pattern": "^[0-9]+:[0-9a-f]{64}$"},
        "transactionId": {"type": "string", "format": "uuid"},
        "chainedAt": {"type": "string", "format": "date-time"},
        "publishedAt": {"type": "string", "format": "date-time"},
    },
}
# BatchFinished: the batch result without its payouts and message (the batch
# with each payout is GET /api/transfers/batch/{batchId}).
_BATCH_FINISHED_OMITS = ("payouts", "message")

HEADERS = {
    "X-Request-ID": {
        "description": "The request's id (the one sent, if it was well formed, else a new one): quote it to "
        "support; the service's log lines carry it.",
        "schema": {"type": "string"},
    },
    "Retry-After": {
        "description": "Seconds to wait before sending the same request again (same idempotency key).",
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
    },
    "Idempotent-Replayed": {
        "description": "This answer replays the first request made under the same idempotency key.",
        "required": True,
        "schema": {"type": "string", "const": "true"},
    },
}

# Statuses every /api/ operation can answer, with what they mean.
_COMMON = {
    "401": "Missing or invalid `Authorization: Token <key>` (code not_authenticated / authentication_failed).",
    "403": "The API client lacks the permission for this action (code permission_denied).",
    "405": "Method not allowed (code method_not_allowed).",
    "406": "Only application/json responses are offered (code not_acceptable).",
    "408": "At the edge: the request did not arrive whole in time (code request_timeout); send it again.",
    "414": "At the edge: the request line is longer than 8 KiB (code uri_too_long).",
    "429": "Rate limited (code throttled); wait Retry-After seconds.",
    "431": "At the edge: a header line is larger than 8 KiB (code headers_too_large).",
    "500": "A bug (code internal_error); nothing was half-done. Quote the X-Request-ID.",
    "502": "At the edge: the service is restarting (code bad_gateway); send the same request again.",
    "503": "PostgreSQL is unavailable (code service_unavailable); retry after Retry-After with the same key.",
    "504": "At the edge: no answer within 60 s (code gateway_timeout); send the same request again.",
}
_WITH_BODY = {
    "400": "Malformed JSON (code parse_error) or invalid fields (code validation_error, with `errors`).",
    "413": "The body is larger than API_MAX_BODY_BYTES (code payload_too_large).",
    "415": "The body is not application/json (code unsupported_media_type).",
}
_RETRY_AFTER = ("409", "429", "503")

_ERROR_COMPONENT = {
    "type": "object",
    "description": 'Every error under /api/: `code` is what a program branches on (docs/api.md, "Error '
    'codes"); `errors` names each invalid field (validation_error). An error that carries `data` is, on the '
    "operations where it can, the Error with that data: MovementResultError (a transfer's, deposit's or "
    "withdrawal's FAILED transaction), HoldError (a FAILED or ended hold), HoldSetError, UnknownHoldsError, "
    "BatchError; each response's description says which codes carry it.",
    "required": ["success", "message", "code"],
    "properties": {
        "success": {"type": "boolean", "const": False},
        "message": {"type": "string", "description": "What went wrong and what to do, for a person."},
        "code": {"$ref": "#/components/schemas/ErrorCode"},
        "errors": {"$ref": "#/components/schemas/FieldErrors"},
    },
}


def _error_with_data(shapes: tuple[str, ...]) -> dict:
    """The Error whose optional `data` is `shapes` (one of them)."""
    refs = [{"$ref": f"#/components/schemas/{shape}"} for shape in shapes]
    component = copy.deepcopy(_ERROR_COMPONENT)
    component["description"] = (
        f"The Error of an operation whose errors may carry `data`: {' or '.join(shapes)} (the response's "
        "description says which codes carry it; the others carry none)."
    )
    component["properties"]["data"] = refs[0] if len(refs) == 1 else {"oneOf": refs}
    return component


_NON_FIELD_ERRORS = settings.REST_FRAMEWORK["NON_FIELD_ERRORS_KEY"]
_MESSAGES = {"type": "array", "items": {"type": "string"}, "minItems": 1}
_FIELD_ERRORS = {
    "type": "object",
    "description": "Messages by field name: a list of messages, or for a list field the messages of its items "
    "by index (ItemErrors).",
    "additionalProperties": {"oneOf": [_MESSAGES, {"$ref": "#/components/schemas/ItemErrors"}]},
}
_ITEM_ERRORS = {
    "type": "object",
    "description": 'Messages of a list field\'s items, by index ("0", "1", ...): a list of messages, or for an '
    f"object item the messages of its fields; `{_NON_FIELD_ERRORS}` holds those of the list as a whole.",
    "propertyNames": {"pattern": f"^([0-9]+|{_NON_FIELD_ERRORS})$"},
    "additionalProperties": {"oneOf": [_MESSAGES, {"$ref": "#/components/schemas/FieldErrors"}]},
}

_SECURITY_SCHEME = {
    "type": "apiKey",
    "in": "header",
    "name": "Authorization",
    "description": "The header's value is `Token <key>`, the word Token, a space and your API key "
    '(docs/api.md, "API keys and groups").',
}


def complete_schema(result, generator, request, public):
    """drf-spectacular post-processing hook: the tables above applied to the
    generated document (see the module's docstring)."""
    components = result.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    _name_pages(result, schemas)
    schemas.update(
        {
            "ErrorCode": {
                "type": "string",
                "enum": list(ERROR_CODES),
                "description": 'Every code the API answers with (docs/api.md, "Error codes").',
            },
            "Error": _ERROR_COMPONENT,
            "FieldErrors": _FIELD_ERRORS,
            "ItemErrors": _ITEM_ERRORS,
            "ReusedPayouts": _REUSED_PAYOUTS,
            "UnknownHolds": _UNKNOWN_HOLDS,
        }
    )
    for name, shapes in _ERRORS_WITH_DATA.items():
        if name in schemas:  # the placeholder of a response some view declares
            schemas[name] = _error_with_data(shapes)
    schemas.pop("ErrorSerializer", None)
    schemas.pop("SuccessEnum", None)  # the envelopes' `success`, a constant (_tidy_components)
    _tidy_components(schemas)
    _add_events(result, schemas)
    components["headers"] = {name: dict(header) for name, header in HEADERS.items()}
    components["securitySchemes"] = {"tokenAuth": _SECURITY_SCHEME}
    for path, operations in result.get("paths", {}).items():
        if not path.startswith("/api/"):
            continue  # /health: no auth, its own two answers
        for method, operation in operations.items():
            _complete_operation(path, method, operation)
    _name_enums(result["paths"], schemas)
    result["paths"].update(HEALTH_PATH)
    for operations in result["paths"].values():
        for operation in operations.values():
            summary, description = SUMMARIES[operation["operationId"]]
            operation["summary"], operation["description"] = summary, description
    result["info"]["description"] = (
        'Moves money between wallets exactly once. Amounts are decimal strings ("1000.50"); every answer is '
        "an envelope: `{success: true, data}` or the Error. The guide: docs/api.md in the repository; "
        'generating a client: docs/api.md, "Generating a client".'
    )
    return result


def _complete_operation(path: str, method: str, operation: dict) -> None:
    extra = dict(_COMMON)
    if method in ("post", "put", "patch"):
        extra.update(_WITH_BODY)
    elif any(parameter.get("in") == "query" for parameter in operation.get("parameters", [])):
        extra["400"] = "Invalid query parameters (code validation_error, with `errors`)."
    if "{" in path:
        extra.setdefault("404", "No such resource (code not_found).")
    responses = operation["responses"]
    error_ref = {"$ref": "#/components/schemas/Error"}
    for code, description in extra.items():
        responses.setdefault(code, {"description": description, "content": {"application/json": {"schema": error_ref}}})
    for code, response in responses.items():
        headers = response.setdefault("headers", {})
        headers["X-Request-ID"] = {"$ref": "#/components/headers/X-Request-ID"}
        if code in _RETRY_AFTER:
            headers["Retry-After"] = {"$ref": "#/components/headers/Retry-After"}
        if code == "200" and "201" in responses and method == "post":
            headers["Idempotent-Replayed"] = {"$ref": "#/components/headers/Idempotent-Replayed"}
    operation["security"] = [{"tokenAuth": []}]
    _unwrap_listed_envelope(operation)


def _unwrap_listed_envelope(operation: dict) -> None:
    """drf-spectacular describes a `list` action's 200 as an array of what
    the view declares; the API answers one envelope whose `data` is the list."""
    content = operation.get("responses", {}).get("200", {}).get("content", {}).get("application/json")
    schema = content and content.get("schema", {})
    if schema and schema.get("type") == "array" and schema.get("items", {}).get("$ref", "").endswith("Envelope"):
        content["schema"] = schema["items"]


def _name_pages(result: dict, schemas: dict) -> None:
    """drf-spectacular's `Paginated<Item>List` (from EnvelopeCursorPagination's
    schema) becomes `<Item>PageEnvelope` around `<Item>Page`, like every envelope."""
    renames = {}
    for name in [n for n in schemas if n.startswith("Paginated") and n.endswith("List")]:
        item = name.removeprefix("Paginated").removesuffix("List")
        wrapper = schemas.pop(name)
        schemas[f"{item}Page"] = wrapper["properties"]["data"]
        schemas[f"{item}PageEnvelope"] = {
            **wrapper,
            "properties": {**wrapper["properties"], "data": {"$ref": f"#/components/schemas/{item}Page"}},
        }
        renames[f"#/components/schemas/{name}"] = f"#/components/schemas/{item}PageEnvelope"
    _rewrite_refs(result, renames)


def _rewrite_refs(node, renames: dict) -> None:
    if isinstance(node, dict):
        if node.get("$ref") in renames:
            node["$ref"] = renames[node["$ref"]]
        for value in node.values():
            _rewrite_refs(value, renames)
    elif isinstance(node, list):
        for value in node:
            _rewrite_refs(value, renames)


def _tidy_components(schemas: dict) -> None:
    """What every component says, made exact: envelopes with `success` a
    constant and both members required; a currency is the CurrencyEnum;
    request bodies refuse unknown fields, as the serializers do; descriptions
    written for the service's maintainers (docstrings) are left out."""
    for name, component in schemas.items():
        properties = component.get("properties", {})
        if name.endswith("Envelope"):
            properties["success"] = {"type": "boolean", "const": True}
            component["required"] = ["success", "data"]
        if properties.get("currency", {}).get("type") == "string":
            properties["currency"] = {"$ref": "#/components/schemas/CurrencyEnum"}
        if name.endswith("Request") and component.get("type") == "object":
            component["additionalProperties"] = False
        if component.get("type") == "object" and name not in _DESCRIBED and name not in _ERRORS_WITH_DATA:
            component.pop("description", None)


def _name_enums(paths: dict, schemas: dict) -> None:
    """A closed list of values is named once: an inline enum (a query
    parameter's, a list's items) with the values of an enum component is a
    reference to it, so that a generator makes one type of it."""
    named = {
        frozenset(component["enum"]): name
        for name, component in schemas.items()
        if "enum" in component and component.get("type") == "string"
    }

    def visit(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if isinstance(value, dict) and "enum" in value and frozenset(value["enum"]) in named:
                    node[key] = {"$ref": f"#/components/schemas/{named[frozenset(value['enum'])]}"}
                else:
                    visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)

    visit(paths)
    visit({name: c for name, c in schemas.items() if "enum" not in c})


def _add_events(result: dict, schemas: dict) -> None:
    """One schema per event type (`<Type>Event`, its `type` a constant and its
    `data` EVENT_PAYLOADS'), `Event` as their union discriminated by `type`,
    and the webhook each is delivered as (OpenAPI 3.1 `webhooks`)."""
    batch = schemas["BatchResult"]
    schemas["BatchFinished"] = {
        "type": "object",
        "description": "A batch's outcome once it finished: GET /api/transfers/batch/{batchId} without `payouts` "
        "and `message`.",
        "properties": {k: v for k, v in batch["properties"].items() if k not in _BATCH_FINISHED_OMITS},
        "required": [k for k in batch["required"] if k not in _BATCH_FINISHED_OMITS],
    }
    schemas["LedgerCheckpoint"] = _LEDGER_CHECKPOINT
    event = schemas.pop("Event")
    mapping = {}
    for event_type, payload in EVENT_PAYLOADS.items():
        name = "".join(part.title() for part in event_type.replace("_", ".").split(".")) + "Event"
        schemas[name] = {
            "type": "object",
            "required": ["id", "type", "createdAt", "data"],
            "properties": {
                **copy.deepcopy(event["properties"]),
                "type": {"type": "string", "const": event_type},
                "data": {"$ref": f"#/components/schemas/{payload}"},
            },
        }
        mapping[event_type] = f"#/components/schemas/{name}"
    schemas["Event"] = {
        "description": "An event, as GET /api/events lists it and a webhook delivers it: one schema per `type`.",
        "oneOf": [{"$ref": ref} for ref in mapping.values()],
        "discriminator": {"propertyName": "type", "mapping": mapping},
    }
    result["webhooks"] = {
        event_type: {
            "post": {
                "operationId": f"webhook_{event_type.replace('.', '_')}",
                "summary": f"The {event_type} event, delivered to your endpoint",
                "description": "Signed per the Standard Webhooks specification: verify `webhook-signature` with "
                "your endpoint's secret before trusting the body. Answer 2xx within the delivery deadline; "
                "anything else is retried with the same `webhook-id`.",
                "parameters": [
                    {"name": name, "in": "header", "required": True, "schema": {"type": "string"}, "description": d}
                    for name, d in (
                        ("webhook-id", "The event's id: the same on every retry of this delivery."),
                        ("webhook-timestamp", "Seconds since the epoch, when this attempt was signed."),
                        ("webhook-signature", "v1,<base64 HMAC-SHA256> of id.timestamp.body with your secret."),
                    )
                ],
                "requestBody": {"required": True, "content": {"application/json": {"schema": {"$ref": ref}}}},
                "responses": {"2XX": {"description": "Received; not delivered again."}},
            }
        }
        for event_type, ref in mapping.items()
    }


# /health is a plain Django view (no DRF, no auth): described here by hand.
_HEALTH_CHECKS = {
    "type": "object",
    "properties": {
        "database": {"type": "string", "enum": ["up", "down"]},
        "redis": {"type": "string", "enum": ["up", "down"]},
    },
}
HEALTH_PATH = {
    "/health": {
        "get": {
            "operationId": "health",
            "tags": ["health"],
            "security": [],
            "responses": {
                "200": {
                    "description": "Both answer.",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["success", "message", "timestamp", "checks"],
                                "properties": {
                                    "success": {"type": "boolean", "const": True},
                                    "message": {"type": "string", "example": "Service is healthy"},
                                    "timestamp": {"type": "string", "format": "date-time"},
                                    "checks": _HEALTH_CHECKS,
                                },
                            }
                        }
                    },
                },
                "503": {
                    "description": "At least one is down; the message names which (code service_unavailable).",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["success", "message", "code", "timestamp", "checks"],
                                "properties": {
                                    "success": {"type": "boolean", "const": False},
                                    "message": {"type": "string", "example": "Service is unhealthy: redis down"},
                                    "code": {"type": "string", "enum": ["service_unavailable"]},
                                    "timestamp": {"type": "string", "format": "date-time"},
                                    "checks": _HEALTH_CHECKS,
                                },
                            }
                        }
                    },
                },
            },
        }
    }
}


class _JsonErrors:
    """Errors of the schema and docs views, and their OPTIONS answer, in the
    API's JSON envelope, not in the YAML or HTML their own renderers would
    produce (the docs page's template cannot render an OPTIONS answer at all)."""

    def finalize_response(self, request, response, *args, **kwargs):
        if getattr(response, "exception", False) or request.method == "OPTIONS":
            request.accepted_renderer = JSONRenderer()
            request.accepted_media_type = JSONRenderer.media_type
        return super().finalize_response(request, response, *args, **kwargs)


class _BrowserLogin:
    """A browser that is not logged in (no session, no key sent, asking for
    HTML) is sent to the admin's login page and back here after it, instead
    of a JSON 401 a person cannot act on; API clients still get the 401 in
    the envelope (docs/api.md, "/api/docs/ and /api/schema/")."""

    def handle_exception(self, exc):
        request = self.request
        if (
            isinstance(exc, exceptions.NotAuthenticated)
            and "Authorization" not in request.headers
            and "text/html" in request.headers.get("Accept", "")
        ):
            return redirect_to_login(request.get_full_path(), reverse("admin:login"))
        return super().handle_exception(exc)


class SchemaView(_BrowserLogin, _JsonErrors, SpectacularAPIView):
    """The schema: JSON to `Accept: application/json` (or `?format=json`),
    YAML otherwise, a browser's `Accept: text/html` included (the schema has
    no HTML form; the page to read it in is /api/docs/)."""

    def perform_content_negotiation(self, request, force=False):
        browser = "text/html" in request.headers.get("Accept", "")
        return super().perform_content_negotiation(request, force=force or browser)


class DocsView(_BrowserLogin, _JsonErrors, SpectacularSwaggerSplitView):
    """The interactive docs. The split view: the page loads its start-up
    script from this same URL (?script=) instead of holding it inline, so
    that the Content-Security-Policy can refuse every inline script
    (settings.py)."""
