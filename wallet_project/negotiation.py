"""DRF's content negotiation with a fast path for what API clients send."""

from rest_framework.negotiation import DefaultContentNegotiation

# No Accept header means */* (RFC 9110).
ANY = frozenset({"", "*/*"})


class FirstRendererNegotiation(DefaultContentNegotiation):
    """When the client accepts anything (no Accept, or */*) or exactly the first
    renderer's media type, and names no format (no ?format=, no suffix), the
    answer is the first renderer: what DRF's negotiation returns for these,
    without parsing and ranking the Accept header on every request. Anything
    else (a list, q-values, parameters, another type) goes to DRF's, which
    also gives the 406."""

    def select_renderer(self, request, renderers, format_suffix=None):
        first = renderers[0] if renderers else None
        accept = request.META.get("HTTP_ACCEPT", "")
        if (
            first is not None
            and format_suffix is None
            and not request.META.get("QUERY_STRING")
            and (accept in ANY or accept == first.media_type)
        ):
            return first, first.media_type
        return super().select_renderer(request, renderers, format_suffix)
