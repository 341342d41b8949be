"""What OPTIONS answers under /api/: the methods the route takes, in the
envelope, and nothing more.

DRF's SimpleMetadata describes a view from its docstring (written for the
people who maintain it, not for clients) and, through the view's serializer,
maps every field of PUT and POST: it fails with a 500 on a viewset without a
`serializer_class` (POST /api/transfer reads its body with a serializer per
action), and it shows the map to any authenticated client, allowed to use the
action or not. The OpenAPI schema (/api/schema/) is where a client learns the
fields; OPTIONS says only which methods the route answers, which the Allow
header of every response says anyway.
"""

from rest_framework.metadata import BaseMetadata


class AllowedMethodsMetadata(BaseMetadata):
    """REST_FRAMEWORK["DEFAULT_METADATA_CLASS"]: `{"success": true, "data":
    {"methods": ["GET", "HEAD", "OPTIONS"]}}`, the route's methods as in Allow."""

    def determine_metadata(self, request, view) -> dict:
        return {"success": True, "data": {"methods": list(view.allowed_methods)}}
