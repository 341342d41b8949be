"""OpenAPI pieces shared by every endpoint, so the schema tells the truth.

Each view declares its own success body and the errors only it can return
(404, 409, 422); `add_common_error_responses` adds the ones any endpoint can
return (401, 403, 405, 406, 429, 500, 503, and 400/413/415 for bodies).
"""

from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import serializers


class ErrorSerializer(serializers.Serializer):
    success = serializers.BooleanField(default=False)
    message = serializers.CharField()
    code = serializers.CharField(help_text="Machine-readable, e.g. insufficient_balance.")
    errors = serializers.DictField(
        required=False,
        child=serializers.ListField(child=serializers.CharField()),
        help_text="Field validation errors, by field name (400 validation_error only).",
    )
    data = serializers.DictField(required=False, help_text="The FAILED transaction, for business-rule errors.")


def envelope(serializer, name: str):
    return inline_serializer(name=name, fields={"success": serializers.BooleanField(default=True), "data": serializer})


def error(description: str) -> OpenApiResponse:
    return OpenApiResponse(response=ErrorSerializer, description=description)


_COMMON = {
    "401": "Missing or invalid `Authorization: Token <key>` (code not_authenticated / authentication_failed).",
    "403": "The API client lacks the permission for this action (code permission_denied).",
    "405": "Method not allowed (code method_not_allowed).",
    "406": "Only application/json responses are offered (code not_acceptable).",
    "429": "Rate limited (code throttled); see Retry-After.",
    "500": "A bug (code internal_error); nothing was half-done.",
    "503": "PostgreSQL is unavailable (code service_unavailable); retry after Retry-After.",
}
_WITH_BODY = {
    "400": "Malformed JSON (code parse_error) or invalid fields (code validation_error, with `errors`).",
    "413": "The body is larger than API_MAX_BODY_BYTES (code payload_too_large).",
    "415": "The body is not application/json (code unsupported_media_type).",
}


def add_common_error_responses(result, generator, request, public):
    """drf-spectacular post-processing hook."""
    error_ref = {"$ref": "#/components/schemas/Error"}
    result.setdefault("components", {}).setdefault("schemas", {})
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            extra = dict(_COMMON)
            if method in ("post", "put", "patch"):
                extra.update(_WITH_BODY)
            if "{" in path:
                extra.setdefault("404", "No such resource (code not_found).")
            for code, description in extra.items():
                operation["responses"].setdefault(
                    code, {"description": description, "content": {"application/json": {"schema": error_ref}}}
                )
    return result
