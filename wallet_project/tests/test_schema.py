"""The OpenAPI document at /api/schema/ and the Swagger UI at /api/docs/.

The schema is a promise to every client that generates code from it: it must
be valid OpenAPI 3, list every endpoint of the contract, and name every status
code and body the API can return.
"""

import json
import random
import re
import uuid

import pytest
from django.conf import settings
from django.contrib.staticfiles import finders
from drf_spectacular.validation import validate_schema
from rest_framework.exceptions import ValidationError
from rest_framework.test import APIClient

from conftest import make_api_client
from events.models import Event, EventType
from events.webhooks import event_body
from transfers.tests.factories import ApiUserFactory
from wallet_project.error_codes import ERROR_CODES
from wallet_project.schema import EVENT_PAYLOADS, SUMMARIES
from wallet_project.tests.openapi import validator

pytestmark = pytest.mark.django_db

CONTRACT_OPERATIONS = [
    ("/api/wallets", "post"),
    ("/api/wallets", "get"),
    ("/api/wallets/{id}", "get"),
    ("/api/wallets/{id}", "patch"),
    ("/api/tiers", "get"),
    ("/api/wallets/{id}/transactions", "get"),
    ("/api/wallets/{id}/balance", "get"),
    ("/api/wallets/{id}/statement", "get"),
    ("/api/wallets/{id}/deposit", "post"),
    ("/api/wallets/{id}/withdraw", "post"),
    ("/api/transfer", "post"),
    ("/api/transfer/{idempotency_key}", "get"),
    ("/api/transfer/reference/{reference}", "get"),
    ("/api/events", "get"),
    ("/api/webhook-endpoints", "post"),
    ("/api/webhook-endpoints", "get"),
    ("/api/webhook-endpoints/{id}", "delete"),
    ("/api/transfers/batch", "post"),
    ("/api/transfers/batch/{batch_id}", "get"),
    ("/api/holds", "post"),
    ("/api/holds/{hold_id}", "get"),
    ("/api/holds/{hold_id}/capture", "post"),
    ("/api/holds/{hold_id}/void", "post"),
    ("/api/holds/{hold_id}/extend", "post"),
    ("/api/holds/capture", "post"),
    ("/api/holds/void", "post"),
]
MONEY_OPERATIONS = ["/api/transfer", "/api/wallets/{id}/deposit", "/api/wallets/{id}/withdraw"]
MONEY_STATUSES = ["200", "201", "400", "401", "403", "404", "409", "413", "415", "422", "503"]


@pytest.fixture
def schema(treasury_api) -> dict:
    response = treasury_api.get("/api/schema/", headers={"Accept": "application/json"})
    assert response.status_code == 200, response.content
    return response.json()


def resolve(schema: dict, node: dict) -> dict:
    while "$ref" in node:
        node = schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[-1]]
    return node


def json_schema_of(schema: dict, response: dict) -> dict:
    return resolve(schema, response["content"]["application/json"]["schema"])


# --- access ------------------------------------------------------------------------------


def bad_token_client() -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token " + "0" * 40)
    return client


@pytest.mark.parametrize("make_client", [APIClient, bad_token_client], ids=["no_token", "unknown_token"])
def test_schema_needs_a_token(make_client):
    response = make_client().get("/api/schema/", headers={"Accept": "application/json"})

    assert response.status_code == 401
    assert response.json()["code"] in ("not_authenticated", "authentication_failed")


@pytest.mark.parametrize("make_client", [APIClient, bad_token_client], ids=["no_token", "unknown_token"])
def test_docs_need_a_token(make_client):
    # Its body is HTML, not the envelope: see test_errors.py.
    assert make_client().get("/api/docs/").status_code == 401


def test_docs_asked_for_json_with_an_unknown_token_is_a_4xx_not_a_500():
    client = bad_token_client()
    client.raise_request_exception = False

    response = client.get("/api/docs/", headers={"Accept": "application/json"})

    assert response.status_code in (401, 406)


def test_staff_session_from_the_admin_may_read_the_schema_and_docs():
    user = ApiUserFactory(is_staff=True)
    user.refresh_from_db()  # the session hash must match the stored password
    client = APIClient()
    client.force_login(user)

    response = client.get("/api/schema/", headers={"Accept": "application/json"})

    assert response.status_code == 200
    assert response.json()["openapi"].startswith("3.")
    assert client.get("/api/docs/").status_code == 200


def test_schema_is_served_as_yaml_by_default(treasury_api):
    response = treasury_api.get("/api/schema/")

    assert response.status_code == 200
    assert response.content.startswith(b"openapi: 3.")


# --- a valid document listing the contract ------------------------------------------------------


def test_schema_is_a_valid_openapi_3_document(schema):
    # drf-spectacular ships the official OpenAPI 3.x JSON Schema for this check.
    validate_schema(schema)

    assert schema["openapi"].startswith("3.")
    assert schema["info"]["title"] and schema["info"]["version"]


@pytest.mark.parametrize(("path", "method"), CONTRACT_OPERATIONS, ids=[f"{m}_{p}" for p, m in CONTRACT_OPERATIONS])
def test_every_endpoint_of_the_contract_is_listed(path, method, schema):
    operation = schema["paths"][path][method]

    assert operation["operationId"]
    assert operation["responses"]


def test_schema_lists_nothing_beyond_the_contract(schema):
    listed = {(path, method) for path, operations in schema["paths"].items() for method in operations}

    assert listed == set(CONTRACT_OPERATIONS) | {("/health", "get")}


def test_health_endpoint_is_listed_without_auth_and_with_both_answers(schema):
    health = schema["paths"]["/health"]["get"]

    assert health["security"] == []
    assert set(health["responses"]) == {"200", "503"}
    unhealthy = health["responses"]["503"]["content"]["application/json"]["schema"]
    assert {"success", "message", "code", "checks"} <= set(unhealthy["properties"])


def test_every_operation_requires_the_token(schema):
    scheme = schema["components"]["securitySchemes"]["tokenAuth"]
    assert (scheme["type"], scheme["in"], scheme["name"]) == ("apiKey", "header", "Authorization")
    assert "`Token <key>`" in scheme["description"]
    for path, method in CONTRACT_OPERATIONS:
        assert schema["paths"][path][method]["security"] == [{"tokenAuth": []}], (path, method)


# --- money-moving endpoints ---------------------------------------------------------------------


@pytest.mark.parametrize("path", MONEY_OPERATIONS)
def test_money_endpoint_documents_every_status_it_returns(path, schema):
    responses = schema["paths"][path]["post"]["responses"]

    assert set(MONEY_STATUSES) <= set(responses)


@pytest.mark.parametrize("path", MONEY_OPERATIONS)
def test_money_endpoint_errors_are_the_error_envelope(path, schema):
    responses = schema["paths"][path]["post"]["responses"]

    for status in [s for s in MONEY_STATUSES if int(s) >= 400]:
        content = responses[status]["content"]["application/json"]["schema"]
        # A business rule's 422 carries the FAILED transaction.
        component = "MovementResultError" if status == "422" else "Error"
        assert content == {"$ref": f"#/components/schemas/{component}"}, status
        assert responses[status]["description"], status


@pytest.mark.parametrize("path", MONEY_OPERATIONS)
def test_money_endpoint_success_is_the_envelope_around_the_result(path, schema):
    responses = schema["paths"][path]["post"]["responses"]

    for status in ("200", "201"):
        envelope = json_schema_of(schema, responses[status])
        assert set(envelope["properties"]) == {"success", "data"}
        result = resolve(schema, envelope["properties"]["data"])
        assert set(result["properties"]) == {"id", "transactionId", "status", "reference", "message"}
    assert "Idempotent-Replayed" in responses["200"]["description"]


@pytest.mark.parametrize("path", MONEY_OPERATIONS)
def test_money_endpoint_documents_the_idempotency_key_in_header_and_body(path, schema):
    operation = schema["paths"][path]["post"]
    header = next(p for p in operation["parameters"] if p["name"] == "Idempotency-Key")
    body = json_schema_of(schema, operation["requestBody"])

    assert header["in"] == "header"
    assert not header.get("required", False)
    assert "255" in header["description"]
    assert {"amount", "idempotencyKey", "metadata"} <= set(body["properties"])
    assert "amount" in body["required"]


def test_transfer_request_names_both_wallets(schema):
    body = json_schema_of(schema, schema["paths"]["/api/transfer"]["post"]["requestBody"])

    assert {"sourceWalletId", "destinationWalletId", "amount"} <= set(body["required"])
    assert body["properties"]["sourceWalletId"]["format"] == "uuid"


@pytest.mark.parametrize("path", MONEY_OPERATIONS)
def test_amount_is_documented_as_a_decimal_string_only(path, schema):
    # A generated client sends a string, never a binary float (numbers stay
    # accepted, docs/api.md, but are not what the schema offers).
    body = json_schema_of(schema, schema["paths"][path]["post"]["requestBody"])
    amount = body["properties"]["amount"]

    assert amount["type"] == "string"
    assert "oneOf" not in amount and "anyOf" not in amount


@pytest.mark.parametrize(
    "text",
    [
        "1",
        "1.5",
        "1.50",
        "0.01",
        "0.1",
        "000012.34",
        "999999999999999999.99",
        "0",
        "0.00",
        "0.001",
        "1.",
        ".5",
        "-1",
        "1e2",
        "1_000",
        " 1",
        "1 ",
        "１",
        "+1",
        "1.234",
        "1000000000000000000",
        "abc",
        "",
        "0x10",
        "NaN",
    ],
)
def test_amount_pattern_accepts_exactly_the_strings_the_api_reads(text, schema):
    from transfers.serializers import AmountField

    pattern = json_schema_of(schema, schema["paths"]["/api/transfer"]["post"]["requestBody"])["properties"]["amount"][
        "pattern"
    ]
    try:
        AmountField().run_validation(text)
        read = True
    except ValidationError:
        read = False

    assert bool(re.fullmatch(pattern, text)) is read


# --- the error envelope ------------------------------------------------------------------------


def test_error_component_is_the_typed_envelope(schema):
    error = schema["components"]["schemas"]["Error"]

    assert set(error["properties"]) == {"success", "message", "code", "errors"}
    assert set(error["required"]) == {"success", "message", "code"}
    assert error["properties"]["success"] == {"type": "boolean", "const": False}
    assert error["properties"]["code"] == {"$ref": "#/components/schemas/ErrorCode"}
    assert error["properties"]["errors"] == {"$ref": "#/components/schemas/FieldErrors"}


# The errors that carry `data`, with it: the Error, and `data` what that operation's errors hold.
ERRORS_WITH_DATA = {
    "MovementResultError": {"$ref": "#/components/schemas/MovementResult"},
    "HoldError": {"$ref": "#/components/schemas/Hold"},
    "HoldSetError": {"$ref": "#/components/schemas/HoldSet"},
    "UnknownHoldsError": {"$ref": "#/components/schemas/UnknownHolds"},
    "BatchError": {
        "oneOf": [{"$ref": "#/components/schemas/BatchResult"}, {"$ref": "#/components/schemas/ReusedPayouts"}]
    },
}


@pytest.mark.parametrize("name", ERRORS_WITH_DATA)
def test_an_error_with_data_is_the_error_and_its_data(name, schema):
    error, with_data = (schema["components"]["schemas"][n] for n in ("Error", name))

    assert with_data["properties"] == {**error["properties"], "data": ERRORS_WITH_DATA[name]}
    assert with_data["required"] == error["required"]


@pytest.mark.parametrize(
    ("path", "status", "component"),
    [
        ("/api/transfer", "422", "MovementResultError"),
        ("/api/wallets/{id}/deposit", "422", "MovementResultError"),
        ("/api/wallets/{id}/withdraw", "422", "MovementResultError"),
        # A FAILED hold's 422 carries the hold, not a transaction.
        ("/api/holds", "422", "HoldError"),
        ("/api/holds/{hold_id}/capture", "409", "HoldError"),
        ("/api/holds/{hold_id}/void", "409", "HoldError"),
        ("/api/holds/{hold_id}/extend", "409", "HoldError"),
        ("/api/holds/{hold_id}/extend", "422", "HoldError"),
        ("/api/holds/{hold_id}/capture", "422", "Error"),
        ("/api/holds/{hold_id}/void", "422", "Error"),
        ("/api/holds/capture", "404", "UnknownHoldsError"),
        ("/api/holds/capture", "409", "HoldSetError"),
        ("/api/holds/void", "404", "UnknownHoldsError"),
        ("/api/holds/void", "409", "HoldSetError"),
        ("/api/holds/capture", "422", "Error"),
        ("/api/transfers/batch", "422", "BatchError"),
        ("/api/holds", "404", "Error"),
    ],
)
def test_each_operation_documents_the_data_its_errors_carry(path, status, component, schema):
    content = schema["paths"][path]["post"]["responses"][status]["content"]["application/json"]["schema"]
    assert content == {"$ref": f"#/components/schemas/{component}"}


def test_a_failed_holds_422_and_a_failed_transfers_are_what_their_operations_document(
    schema, treasury_api, funded_wallet
):
    source, destination = funded_wallet("10.00", owner=treasury_api.user), funded_wallet("0", owner=treasury_api.user)
    movement = {"sourceWalletId": str(source.pk), "destinationWalletId": str(destination.pk), "amount": "50.00"}
    hold = treasury_api.post(
        "/api/holds", {**movement, "expiresInSeconds": 600}, format="json", headers={"Idempotency-Key": "h-1"}
    )
    transfer = treasury_api.post("/api/transfer", movement, format="json", headers={"Idempotency-Key": "t-1"})

    for path, answer in (("/api/holds", hold), ("/api/transfer", transfer)):
        assert (answer.status_code, answer.json()["code"]) == (422, "insufficient_balance"), answer.json()
        documented = schema["paths"][path]["post"]["responses"]["422"]["content"]["application/json"]["schema"]
        errors = [e.message for e in validator(schema, documented).iter_errors(answer.json())]
        assert errors == [], (path, errors)
    # Each is its own shape: a hold's data is no transaction, a transfer's no hold.
    assert list(validator(schema, {"$ref": "#/components/schemas/MovementResult"}).iter_errors(hold.json()["data"]))
    assert list(validator(schema, {"$ref": "#/components/schemas/Hold"}).iter_errors(transfer.json()["data"]))


def test_error_code_enum_is_the_registry(schema):
    assert schema["components"]["schemas"]["ErrorCode"]["enum"] == list(ERROR_CODES)


def test_every_error_response_of_every_operation_is_the_envelope(schema):
    for path, operations in schema["paths"].items():
        if not path.startswith("/api/"):
            continue  # /health has its own body, checked above
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if int(status) >= 400:
                    content = response["content"]["application/json"]["schema"]
                    errors = ["Error", *ERRORS_WITH_DATA]
                    assert content in [{"$ref": f"#/components/schemas/{name}"} for name in errors], (path, method)


@pytest.mark.parametrize(("path", "method"), CONTRACT_OPERATIONS, ids=[f"{m}_{p}" for p, m in CONTRACT_OPERATIONS])
def test_every_operation_documents_401_403_and_503(path, method, schema):
    assert {"401", "403", "503"} <= set(schema["paths"][path][method]["responses"])


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/api/wallets/{id}", "404"),
        ("/api/wallets/{id}/transactions", "404"),
        ("/api/transfer/{idempotency_key}", "404"),
        ("/api/transfer/reference/{reference}", "404"),
    ],
)
def test_lookups_document_their_404(path, status, schema):
    assert status in schema["paths"][path]["get"]["responses"]


def test_wallet_creation_documents_201_and_409(schema):
    responses = schema["paths"]["/api/wallets"]["post"]["responses"]

    assert {"201", "400", "409"} <= set(responses)


@pytest.mark.parametrize("path", ["/api/wallets", "/api/wallets/{id}/transactions"])
def test_reads_that_validate_their_query_document_400(path, schema):
    assert "400" in schema["paths"][path]["get"]["responses"]


# --- query parameters: the schema's, and no other ------------------------------------------------


def test_every_api_read_reads_the_query_parameters_its_schema_names_and_refuses_any_other(schema):
    """Each GET operation under /api/ refuses a parameter its schema does not
    name (400 naming it, before the wallet or hold is even looked up), and
    takes every one it names as its own: the names in the views
    (ApiViewSet.query_parameters) and the schema's agree, route by route."""
    api = make_api_client("Treasury client", "Auditor")
    reads = [(path, operation) for path, ops in schema["paths"].items() for method, operation in ops.items()]
    reads = [(path, op) for path, op in reads if path.startswith("/api/") and op is schema["paths"][path].get("get")]
    assert len(reads) >= 12, [path for path, _ in reads]
    for path, operation in reads:
        url = re.sub(r"\{\w+\}", str(uuid.uuid4()), path)
        named = {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
        for name in ["curency", "foo", "fromDate"]:
            response = api.get(url, {name: "1"})
            assert response.status_code == 400, (path, name, response.content)
            assert response.json()["errors"] == {name: ["Unknown parameter."]}, path
        # format is content negotiation's, read on every route.
        for name, value in [*((name, "x") for name in named), ("format", "json")]:
            errors = api.get(url, {name: value}).json().get("errors") or {}
            assert errors.get(name) != ["Unknown parameter."], (path, name)


def test_a_preflight_that_repeats_a_reads_query_is_not_refused(treasury_api):
    response = treasury_api.options(f"/api/wallets?userId={uuid.uuid4()}&status=x")
    assert response.status_code == 200, response.content


@pytest.mark.parametrize("method", ["TRACE", "PUT", "DELETE"])
def test_a_method_a_route_does_not_take_is_405_whatever_its_query(treasury_api, method):
    response = treasury_api.generic(method, "/api/tiers?currency=NGN&currency=USD&foo=1")
    assert (response.status_code, response.json()["code"]) == (405, "method_not_allowed"), response.content


# --- the history endpoint and the log view ------------------------------------------------------------


def test_history_documents_cursor_pagination_in_the_envelope(schema):
    operation = schema["paths"]["/api/wallets/{id}/transactions"]["get"]
    page = json_schema_of(schema, operation["responses"]["200"])

    assert {"cursor", "limit"} <= {p["name"] for p in operation["parameters"]}
    assert set(page["properties"]) == {"success", "data"}
    data = resolve(schema, page["properties"]["data"])
    assert (
        set(data["properties"])
        == set(data["required"])
        == {
            "results",
            "nextCursor",
            "previousCursor",
            "next",
            "previous",
        }
    )
    assert data["properties"]["next"]["deprecated"] and data["properties"]["previous"]["deprecated"]


def test_history_documents_its_status_and_type_filters(schema):
    parameters = {p["name"]: p for p in schema["paths"]["/api/wallets/{id}/transactions"]["get"]["parameters"]}

    assert {"status", "type"} <= set(parameters)


def test_log_view_documents_completed_at_as_nullable(schema):
    assert "null" in schema["components"]["schemas"]["TransactionDetail"]["properties"]["completedAt"]["type"]


def test_log_view_documents_the_key_as_nullable(schema):
    # null when the log belongs to another client (wallet history).
    assert "null" in schema["components"]["schemas"]["TransactionDetail"]["properties"]["idempotencyKey"]["type"]


def test_log_view_documents_the_reversal_links_as_nullable_ids(schema):
    properties = schema["components"]["schemas"]["TransactionDetail"]["properties"]
    for link in ("reversalOf", "reversedBy"):
        assert (properties[link]["format"], properties[link]["type"]) == ("uuid", ["string", "null"]), link


# --- /api/docs/ ------------------------------------------------------------------------------


def test_docs_are_swagger_ui_served_from_the_sidecar_without_a_cdn(treasury_api):
    response = treasury_api.get("/api/docs/")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    page = response.content.decode()
    assert "swagger-ui" in page.lower()
    # Its start-up script is not inline (the Content-Security-Policy refuses
    # inline scripts) but from the docs' own URL, and points at the schema.
    assert '<script src="/api/docs/?script="></script>' in page
    script = treasury_api.get("/api/docs/?script=")
    assert script["Content-Type"].startswith("application/javascript")
    assert "/api/schema/" in script.content.decode()
    external = re.findall(r"https?://[^\s\"'<>]+", page + script.content.decode())
    assert not external, external
    assets = re.findall(r"""(?:src|href)=["']([^"']+\.(?:js|css|png))["']""", page)
    assert assets, "the page loads no Swagger UI assets"
    for asset in assets:
        assert asset.startswith("/static/drf_spectacular_sidecar/"), asset
        assert finders.find(asset.removeprefix("/static/")), f"{asset} is not in the installed sidecar"


# --- requests described exactly as the server reads them ---------------------------------------

# Characters that decide a key's fate, weighted toward the edges of the rules.
_KEY_ATOMS = [
    *"aZ0-~%#+",
    " ",
    "\t",
    '"',
    "\\",
    ",",
    ".",
    "/",
    "..",
    "reference/",
    "hold:",
    "hold",
    ":",
    "é",
    "日",
    "\U0001f600",
    "\x7f",
    "\x00",
    "\x85",
    "\xa0",
    "\u200b",
    "\u2028",
    "\u3000",
    "\ufeff",
    "\ue000",
]


def sampled_keys(count: int, seed: int):
    rng = random.Random(seed)
    for _ in range(count):
        length = rng.choice([0, 1, 2, 3, 5, 8, 40, 254, 255, 256])
        if length > 40:
            key = "".join(rng.choice("ab.") for _ in range(length))
        else:
            key = "".join(rng.choice(_KEY_ATOMS) for _ in range(length))
        if rng.random() < 0.25:
            key = f'"{key}"'
        if rng.random() < 0.1:
            key = rng.choice([" ", "\t"]) + key + rng.choice(["", " "])
        yield key


def reads(reader, value: str) -> bool:
    try:
        reader(value)
    except ValidationError:
        return False
    return True


def test_the_idempotency_key_header_pattern_is_exactly_what_the_reader_accepts(schema):
    from transfers.serializers import key_from_header

    header = next(p for p in schema["paths"]["/api/transfer"]["post"]["parameters"] if p["name"] == "Idempotency-Key")
    pattern = re.compile(header["schema"]["pattern"])

    disagree = [
        key for key in sampled_keys(30000, seed=25) if bool(pattern.fullmatch(key)) != reads(key_from_header, key)
    ]

    assert not disagree, disagree[:10]


def test_the_body_key_pattern_is_what_the_reader_accepts_but_for_unassigned_code_points(schema):
    from transfers.serializers import validate_idempotency_key

    body = json_schema_of(schema, schema["paths"]["/api/transfer"]["post"]["requestBody"])
    pattern = re.compile(body["properties"]["idempotencyKey"]["pattern"])

    disagree = [
        key
        for key in sampled_keys(30000, seed=32)
        if bool(pattern.fullmatch(key)) != reads(validate_idempotency_key, key)
    ]

    assert not disagree, disagree[:10]


def test_an_empty_or_foreign_cursor_is_refused_as_the_schema_says(treasury_api, funded_wallet, schema):
    history = schema["paths"]["/api/wallets/{id}/transactions"]["get"]
    pattern = re.compile(next(p for p in history["parameters"] if p["name"] == "cursor")["schema"]["pattern"])
    wallet = funded_wallet("10.00")

    for cursor in ("", "x", "abc:def"):
        assert not pattern.fullmatch(cursor)
        response = treasury_api.get(f"/api/wallets/{wallet.pk}/transactions", {"cursor": cursor})
        assert response.status_code == 400 and set(response.json()["errors"]) == {"cursor"}, cursor
    deposit = treasury_api.post(
        f"/api/wallets/{wallet.pk}/deposit", {"amount": "1.00", "idempotencyKey": "second"}, format="json"
    )
    assert deposit.status_code == 201, deposit.content
    first = treasury_api.get(f"/api/wallets/{wallet.pk}/transactions", {"limit": 1}).json()["data"]
    assert pattern.fullmatch(first["nextCursor"]) and first["previousCursor"] is None
    second = treasury_api.get(f"/api/wallets/{wallet.pk}/transactions", {"limit": 1, "cursor": first["nextCursor"]})
    assert second.status_code == 200 and second.json()["data"]["results"] != first["results"]


# --- what a generator needs typed ------------------------------------------------------------------


def test_every_reference_names_a_component(schema):
    text = json.dumps(schema)
    refs = set(re.findall(r'"#/components/(\w+)/([\w.-]+)"', text))

    assert refs
    assert not [ref for ref in refs if ref[1] not in schema["components"][ref[0]]]


def test_every_operation_has_a_summary_and_a_description_for_client_developers(schema):
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            assert operation["summary"] and operation["description"], (path, method)
            # Written for the client, not for the people who maintain the service.
            assert ".py" not in operation["description"], (path, method)
    assert set(SUMMARIES) == {o["operationId"] for ops in schema["paths"].values() for o in ops.values()}


@pytest.mark.parametrize(("path", "method"), CONTRACT_OPERATIONS, ids=[f"{m}_{p}" for p, m in CONTRACT_OPERATIONS])
def test_every_answer_declares_its_request_id_and_the_edge_statuses(path, method, schema):
    responses = schema["paths"][path][method]["responses"]

    assert {"401", "403", "408", "414", "429", "431", "500", "502", "503", "504"} <= set(responses)
    for status, response in responses.items():
        assert response["headers"]["X-Request-ID"] == {"$ref": "#/components/headers/X-Request-ID"}, status
        if status in ("409", "429", "503"):
            assert "Retry-After" in response["headers"], status


@pytest.mark.parametrize("path", [*MONEY_OPERATIONS, "/api/transfers/batch"])
def test_a_replay_is_told_apart_by_its_required_header(path, schema):
    responses = schema["paths"][path]["post"]["responses"]
    replayed = schema["components"]["headers"]["Idempotent-Replayed"]

    assert "Idempotent-Replayed" in responses["200"]["headers"]
    assert "Idempotent-Replayed" not in responses["201"]["headers"]
    assert replayed["required"] is True and replayed["schema"] == {"type": "string", "const": "true"}


def test_one_envelope_component_per_shape_with_success_required(schema):
    envelopes = {name: c for name, c in schema["components"]["schemas"].items() if name.endswith("Envelope")}

    for name, envelope in envelopes.items():
        assert envelope["required"] == ["success", "data"], name
        assert envelope["properties"]["success"] == {"type": "boolean", "const": True}, name
    shapes = [json.dumps(e["properties"]["data"], sort_keys=True) for e in envelopes.values()]
    assert len(shapes) == len(set(shapes)), "two envelope components wrap the same shape"


def test_closed_lists_are_named_enums(schema):
    components = schema["components"]["schemas"]

    assert components["CurrencyEnum"]["enum"] == settings.SUPPORTED_CURRENCIES
    assert components["EventTypeEnum"]["enum"] == list(EventType.values)
    for name in ("Wallet", "TransactionDetail", "WalletHistoryEntry"):
        assert components[name]["properties"]["currency"] == {"$ref": "#/components/schemas/CurrencyEnum"}, name
    history = {p["name"]: p for p in schema["paths"]["/api/wallets/{id}/transactions"]["get"]["parameters"]}
    assert history["status"]["schema"] == {"$ref": "#/components/schemas/TransactionStatusEnum"}


# --- events: one schema per type -------------------------------------------------------------------------


def test_each_event_type_has_its_schema_discriminated_by_type(schema):
    event = schema["components"]["schemas"]["Event"]

    assert set(EVENT_PAYLOADS) == set(EventType.values)
    assert event["discriminator"]["propertyName"] == "type"
    assert set(event["discriminator"]["mapping"]) == set(EventType.values)
    for event_type, ref in event["discriminator"]["mapping"].items():
        one = resolve(schema, {"$ref": ref})
        assert one["properties"]["type"] == {"type": "string", "const": event_type}
        assert one["properties"]["data"] == {"$ref": f"#/components/schemas/{EVENT_PAYLOADS[event_type]}"}


def test_each_event_type_is_published_as_a_webhook(schema):
    assert set(schema["webhooks"]) == set(EventType.values)
    for event_type, hook in schema["webhooks"].items():
        body = hook["post"]["requestBody"]["content"]["application/json"]["schema"]
        assert body == {"$ref": schema["components"]["schemas"]["Event"]["discriminator"]["mapping"][event_type]}
        assert {p["name"] for p in hook["post"]["parameters"]} == {
            "webhook-id",
            "webhook-timestamp",
            "webhook-signature",
        }


def test_batch_finished_is_the_batch_result_without_payouts_and_message(schema):
    components = schema["components"]["schemas"]
    finished, result = components["BatchFinished"], components["BatchResult"]

    assert set(finished["properties"]) == set(result["properties"]) - {"payouts", "message"}
    assert set(finished["required"]) == set(finished["properties"])


def test_every_event_the_service_writes_matches_its_schema(treasury_api, funded_wallet, schema):
    from transfers.services import transaction_reverse
    from wallets.services import wallet_set_active

    source, destination = funded_wallet("100.00"), funded_wallet("0")
    paid = treasury_api.post(
        "/api/transfer",
        {"sourceWalletId": str(source.pk), "destinationWalletId": str(destination.pk), "amount": "30.00"},
        format="json",
        headers={"Idempotency-Key": "paid"},
    )
    treasury_api.post(
        "/api/transfer",
        {"sourceWalletId": str(source.pk), "destinationWalletId": str(destination.pk), "amount": "9999.00"},
        format="json",
        headers={"Idempotency-Key": "refused"},
    )
    treasury_api.post(
        f"/api/wallets/{source.pk}/withdraw", {"amount": "1.00"}, format="json", headers={"Idempotency-Key": "w"}
    )
    treasury_api.post(
        "/api/transfers/batch",
        {
            "sourceWalletId": str(source.pk),
            "atomic": False,
            "transfers": [{"destinationWalletId": str(destination.pk), "amount": "2.00", "idempotencyKey": "p1"}],
        },
        format="json",
        headers={"Idempotency-Key": "batch"},
    )
    transaction_reverse(log_id=paid.json()["data"]["id"], reason="test", reversed_by=ApiUserFactory(is_staff=True))
    wallet_set_active(wallet=destination, is_active=False, note="test")

    # What a webhook delivers and GET /api/events lists (the listing waits for
    # older transactions of the shared server to end; the bodies are the same).
    events = [event_body(event) for event in Event.objects.filter(client=treasury_api.user)]

    check = validator(schema, {"$ref": "#/components/schemas/Event"})
    for event in events:
        assert not list(check.iter_errors(event)), (event["type"], [e.message for e in check.iter_errors(event)][:3])
    assert {e["type"] for e in events} >= {
        "deposit.completed",
        "transfer.completed",
        "transfer.failed",
        "transfer.reversed",
        "withdrawal.completed",
        "batch.finished",
        "wallet.frozen",
    }


# --- the schema in a browser -------------------------------------------------------------------------

BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


@pytest.mark.parametrize("accept", ["text/html", BROWSER_ACCEPT])
def test_a_browser_not_logged_in_is_sent_to_the_login_page_for_the_schema(accept):
    response = APIClient().get("/api/schema/", headers={"Accept": accept})

    assert response.status_code == 302
    assert response["Location"] == "/admin/login/?next=/api/schema/"


@pytest.mark.parametrize("accept", ["text/html", BROWSER_ACCEPT])
def test_a_browser_with_a_session_or_key_reads_the_schema(accept, treasury_api):
    response = treasury_api.get("/api/schema/", headers={"Accept": accept})

    assert response.status_code == 200
    assert response.content.startswith(b"openapi: 3.1")


def test_the_schema_is_json_to_a_client_that_asks_for_json(treasury_api):
    response = treasury_api.get("/api/schema/", headers={"Accept": "application/json"})

    assert response["Content-Type"].startswith("application/json")
    assert response.json()["openapi"] == "3.1.0"


def test_a_webhook_url_with_a_query_is_in_the_schema_and_accepted(treasury_api, schema):
    body = json_schema_of(schema, schema["paths"]["/api/webhook-endpoints"]["post"]["requestBody"])
    url = "https://hooks.example.com/wallet/events?tenant=7&kind=all"

    assert re.fullmatch(body["properties"]["url"]["pattern"], url)
    response = treasury_api.post(
        "/api/webhook-endpoints", {"url": url, "eventTypes": ["transfer.completed"]}, format="json"
    )
    assert response.status_code == 201, response.content


@pytest.mark.parametrize(
    "url", ["https://hooks.example.com/a%zz", "https://hooks.example.com/100%", "https://hooks.example.com/?q=%:"]
)
def test_a_webhook_url_with_a_malformed_percent_escape_is_refused_as_the_schema_says(url, treasury_api, schema):
    body = json_schema_of(schema, schema["paths"]["/api/webhook-endpoints"]["post"]["requestBody"])

    assert not re.fullmatch(body["properties"]["url"]["pattern"], url)
    response = treasury_api.post(
        "/api/webhook-endpoints", {"url": url, "eventTypes": ["transfer.completed"]}, format="json"
    )
    assert response.status_code == 400 and "%25" in response.json()["errors"]["url"][0]


def test_a_webhook_url_scheme_in_capitals_is_in_the_schema_and_accepted(treasury_api, schema):
    body = json_schema_of(schema, schema["paths"]["/api/webhook-endpoints"]["post"]["requestBody"])
    url = "HTTPS://hooks.example.com/events"

    assert re.fullmatch(body["properties"]["url"]["pattern"], url)
    response = treasury_api.post(
        "/api/webhook-endpoints", {"url": url, "eventTypes": ["transfer.completed"]}, format="json"
    )
    assert response.status_code == 201 and response.json()["data"]["url"] == "https://hooks.example.com/events"
