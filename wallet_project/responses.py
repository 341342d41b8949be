"""The success half of the API's envelope: {"success": true, "data": ...}."""

from rest_framework import status as http_status
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response


def ok(data, *, status: int = http_status.HTTP_200_OK, headers: dict | None = None) -> Response:
    return Response({"success": True, "data": data}, status=status, headers=headers)


class EnvelopeCursorPagination(CursorPagination):
    """Newest first, stable under inserts (a cursor, not an offset)."""

    ordering = ("-created_at", "-id")
    page_size = 50
    page_size_query_param = "limit"
    max_page_size = 200

    def get_paginated_response(self, data):
        return ok({"results": data, "next": self.get_next_link(), "previous": self.get_previous_link()})

    def get_paginated_response_schema(self, schema):
        return {
            "type": "object",
            "required": ["success", "data"],
            "properties": {
                "success": {"type": "boolean", "enum": [True]},
                "data": {
                    "type": "object",
                    "properties": {
                        "results": schema,
                        "next": {"type": "string", "nullable": True, "format": "uri"},
                        "previous": {"type": "string", "nullable": True, "format": "uri"},
                    },
                },
            },
        }
