"""OpenAPI pieces shared by every endpoint, so the schema tells the truth.

Each view declares its own success body and the errors only it can return
(404, 409, 422); `complete_schema` adds the ones any endpoint can return
(401, 403, 405, 406, 429, 500, 503, 400 for bodies and queries, 413/415 for
bodies) and documents /health.
"""

from django.contrib.auth.views import redirect_to_login
from django.urls import reverse
from drf_spectacular.utils import OpenApiResponse, inline_serializer
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework import exceptions, serializers
from rest_framework.renderers import JSONRenderer


class ErrorSerializer(serializers.Serializer):
    success = serializers.BooleanField(default=False)
    message = serializers.CharField()
    code = serializers.CharField(help_text="Machine-readable, e.g. insufficient_balance.")
    errors = serializers.DictField(
        required=False,
        # A list of messages per field; for a list field, messages by item index.
        child=serializers.JSONField(),
        help_text="Field validation errors, by field name (400 validation_error only): a list of messages, or "
        "for a list field an object of them by item index.",
    )
    data = serializers.DictField(required=False, help_text="The FAILED transaction, for business-rule errors.")


# A UUID as the API reads one (wallet_project/fields.py StrictUUIDField):
# hyphenated, either case.
UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"


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


def complete_schema(result, generator, request, public):
    """drf-spectacular post-processing hook: the common errors of every
    operation, and /health (a plain Django view the generator cannot see)."""
    error_ref = {"$ref": "#/components/schemas/Error"}
    result.setdefault("components", {}).setdefault("schemas", {})
    for path, operations in result.get("paths", {}).items():
        if not path.startswith("/api/"):
            continue  # /health: no auth, its own two answers
        for method, operation in operations.items():
            extra = dict(_COMMON)
            if method in ("post", "put", "patch"):
                extra.update(_WITH_BODY)
            elif any(parameter.get("in") == "query" for parameter in operation.get("parameters", [])):
                extra["400"] = "Invalid query parameters (code validation_error, with `errors`)."
            if "{" in path:
                extra.setdefault("404", "No such resource (code not_found).")
            for code, description in extra.items():
                operation["responses"].setdefault(
                    code, {"description": description, "content": {"application/json": {"schema": error_ref}}}
                )
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            _unwrap_listed_envelope(operation, result["components"]["schemas"])
    for name, component in result["components"]["schemas"].items():
        if name.endswith("Request") and component.get("type") == "object":
            # Request bodies: send the documented fields only (unknown ones
            # are ignored today, and may one day be refused).
            component["additionalProperties"] = False
    result["paths"].update(HEALTH_PATH)
    return result


def _unwrap_listed_envelope(operation: dict, components: dict) -> None:
    """drf-spectacular describes a `list` action's 200 as an array of what
    the view declares; the API answers one envelope whose `data` is the list."""
    content = operation.get("responses", {}).get("200", {}).get("content", {}).get("application/json")
    schema = content and content.get("schema", {})
    if not schema or schema.get("type") != "array":
        return
    items = schema.get("items", {})
    named = items.get("$ref", "").removeprefix("#/components/schemas/")
    if "success" in components.get(named, items).get("properties", {}):
        content["schema"] = items


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
            "summary": "Are PostgreSQL and Redis answering? No authentication.",
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
                                    "success": {"type": "boolean", "enum": [True]},
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
                                    "success": {"type": "boolean", "enum": [False]},
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


class SchemaView(_JsonErrors, SpectacularAPIView):
    pass


class DocsView(_JsonErrors, SpectacularSwaggerSplitView):
    """The interactive docs. A browser that is not logged in (no session, no
    key sent) is sent to the admin's login page and back here after it,
    instead of a JSON 401 a person cannot act on; API clients still get the
    401 in the envelope. The split view: the page loads its start-up script
    from this same URL (?script=) instead of holding it inline, so that the
    Content-Security-Policy can refuse every inline script (settings.py)."""

    def handle_exception(self, exc):
        request = self.request
        if (
            isinstance(exc, exceptions.NotAuthenticated)
            and "Authorization" not in request.headers
            and "text/html" in request.headers.get("Accept", "")
        ):
            return redirect_to_login(request.get_full_path(), reverse("admin:login"))
        return super().handle_exception(exc)
