"""Tests of what the whole API shares (the error envelope, the schema, /health),
and the check every app's API tests make of a refused request's answer.

The helper lives here because the envelope is the project's
(wallet_project/exceptions.py). Asserts outside test modules are not rewritten
by pytest, hence the explicit messages.
"""


def assert_error_envelope(response, *, status: int, code: str, field: str | None = None) -> dict:
    """The response is the API's JSON error envelope with this status and code,
    naming `field` in `errors` when given. Returns the body."""
    assert response.status_code == status, (response.status_code, response.content)
    assert response["Content-Type"] == "application/json", response["Content-Type"]
    body = response.json()
    assert body["success"] is False, body
    assert body["code"] == code, body
    assert isinstance(body["message"], str) and body["message"], body
    if field is not None:
        assert field in body.get("errors", {}), body
    return body
