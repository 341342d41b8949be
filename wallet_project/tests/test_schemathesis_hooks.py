"""The Schemathesis hooks (schemathesis_hooks.py) decide by the data, not by
the generation mode: a value the served schema allows and the reader
refuses is replaced, one the schema refuses (the negative data a case is
about) is sent as generated, whichever mode or phase made the case. The
schema is the served one; the cases are Schemathesis' own, of its operations."""

import pytest
import schemathesis

from wallet_project.tests import schemathesis_hooks as hooks
from wallet_project.tests.test_schema import schema  # noqa: F401 (a fixture)

pytestmark = pytest.mark.django_db

# A code point Unicode has not assigned: within the body key's pattern, refused by the reader.
UNASSIGNED = "\u0378"
# Each string within metadata's schema (maxLength 4089), together past what the reader stores.
TOO_BIG_TO_STORE = {f"note{n}": "x" * 1500 for n in range(4)}
# One string past metadata's schema.
PAST_THE_SCHEMA = {"note": "x" * 5000}


def bounds(case) -> None:
    hooks._within_the_readers_bounds(case.body, case.operation.body[0].resolved_schema)


def case_of(schema_document: dict, path: str, body: dict):
    operation = schemathesis.openapi.from_dict(schema_document)[path]["POST"]
    return operation.Case(body=body, media_type="application/json")


def test_a_value_the_schema_allows_and_the_reader_refuses_is_replaced(schema):  # noqa: F811
    case = case_of(schema, "/api/transfer", {"idempotencyKey": f"k{UNASSIGNED}", "metadata": TOO_BIG_TO_STORE})
    bounds(case)
    assert hooks._reader_takes(case.body["idempotencyKey"])
    assert case.body["metadata"] == {"trimmed": True}

    payout = {"idempotencyKey": f"p{UNASSIGNED}", "metadata": TOO_BIG_TO_STORE}
    batch = case_of(schema, "/api/transfers/batch", {"idempotencyKey": f"b{UNASSIGNED}", "transfers": [payout]})
    bounds(batch)
    assert hooks._reader_takes(batch.body["idempotencyKey"])
    assert hooks._reader_takes(batch.body["transfers"][0]["idempotencyKey"])
    assert batch.body["transfers"][0]["metadata"] == {"trimmed": True}


@pytest.mark.parametrize(
    "path", ["/api/transfer", "/api/holds", "/api/holds/capture", "/api/holds/{hold_id}/void", "/api/transfers/batch"]
)
def test_a_value_the_schema_refuses_is_sent_as_generated(schema, path):  # noqa: F811
    for key in ["", "a\x00b", " lead", "hold:1", "reference/x", "a/../b", "x" * 256]:
        case = case_of(schema, path, {"idempotencyKey": key, "metadata": dict(PAST_THE_SCHEMA)})
        bounds(case)
        assert case.body["idempotencyKey"] == key
        if "metadata" in case.operation.body[0].resolved_schema["properties"]:
            assert case.body["metadata"] == PAST_THE_SCHEMA


def test_a_value_within_both_is_left_alone(schema):  # noqa: F811
    body = {"idempotencyKey": "order-7/é", "metadata": {"loanId": "L-1042", "installment": 3}}
    case = case_of(schema, "/api/holds", dict(body))
    bounds(case)
    assert case.body == body


def test_the_body_key_becomes_the_key_the_header_names_as_the_reader_reads_it(schema):  # noqa: F811
    for header, key in [('"st-1"', "st-1"), ("  st-2 ", "st-2"), ('"a\\"b"', 'a"b')]:
        case = case_of(schema, "/api/holds/void", {"holds": [], "idempotencyKey": "generated"})
        hooks._one_key(case.body, header, case.operation.body[0].resolved_schema)
        assert case.body["idempotencyKey"] == key


def test_a_header_or_body_key_the_schema_refuses_is_sent_as_generated(schema):  # noqa: F811
    root = case_of(schema, "/api/holds/void", {}).operation.body[0].resolved_schema
    for header, body_key in [("a,b", "ok"), ("hold:1", "ok"), ("ok", " lead"), ("ok", "reference/x")]:
        body = {"idempotencyKey": body_key}
        hooks._one_key(body, header, root)
        assert body["idempotencyKey"] == body_key
