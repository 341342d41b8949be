"""Checking what the service answered against its own OpenAPI 3.1 schema
(JSON Schema 2020-12 inside), for the tests that talk to it."""

import jsonschema


def validator(schema: dict, node: dict) -> jsonschema.Draft202012Validator:
    """A validator of `node` (a schema object of the document, `$ref`s into
    its components allowed)."""
    return jsonschema.Draft202012Validator({**node, "components": schema["components"]})


def check_answer(schema: dict, path: str, method: str, status: int, body, headers: dict) -> None:
    """AssertionError unless `status` is declared for the operation and
    `body` and the required headers are what it declares."""
    responses = schema["paths"][path][method]["responses"]
    assert str(status) in responses, f"{method.upper()} {path} answered {status}, which the schema does not declare"
    response = responses[str(status)]
    errors = sorted(validator(schema, response["content"]["application/json"]["schema"]).iter_errors(body), key=str)
    assert not errors, f"{method.upper()} {path} {status}: {[e.message for e in errors][:5]}"
    for name, header in response.get("headers", {}).items():
        header = schema["components"]["headers"][header["$ref"].rsplit("/", 1)[-1]] if "$ref" in header else header
        if header.get("required"):
            assert name in headers, f"{method.upper()} {path} {status} lacks its {name} header"
        if name in headers:
            assert not list(validator(schema, header["schema"]).iter_errors(headers[name])), (name, headers[name])
