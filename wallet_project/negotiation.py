"""DRF's content negotiation with a fast path for what API clients send, and
an explicit ?format= that wins over the Accept header."""

from django.http import Http404
from django.utils.http import parse_header_parameters
from rest_framework.exceptions import ValidationError
from rest_framework.negotiation import DefaultContentNegotiation

# No Accept header means */* (RFC 9110).
ANY = frozenset({"", "*/*"})


class FirstRendererNegotiation(DefaultContentNegotiation):
    """When the client accepts anything (no Accept, or */*) or exactly the first
    renderer's media type, and names no format (no ?format=, no suffix), the
    answer is the first renderer: what DRF's negotiation returns for these,
    without parsing and ranking the Accept header on every request. A format
    named (?format=, a suffix) is served whatever Accept says. Anything else
    (a list, q-values, parameters, another type) goes to DRF's, which also
    gives the 406.

    Its measured gain (bench/instructions.py, on and off, two pairs of runs):
    100K-130K instructions a request, 2 % of a transfer and 4 % of a replay;
    above the 2 % a fast path must earn to stay (bench/HISTORY.md)."""

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
        format = format_suffix or request.query_params.get(self.settings.URL_FORMAT_OVERRIDE)
        if format:
            # An explicit format wins over the Accept header (docs/api.md), as
            # DRF's settings guide describes URL_FORMAT_OVERRIDE: a client that
            # always sends Accept: application/json and asks a statement
            # ?format=csv means the CSV. DRF's own negotiation still matches
            # Accept against the one renderer left and answers a 406.
            renderer = self.filter_renderers(renderers, format)[0]
            return renderer, renderer.media_type
        return super().select_renderer(request, renderers, format_suffix)

    def get_accept_list(self, request):
        """DRF's tokens of the Accept header without those the client refuses
        (`q=0`, RFC 9110 12.4.2: "not acceptable"): DRF ranks media types by
        specificity and ignores q, so `application/json;q=0, text/html` would
        be answered in JSON. Nothing left is a 406, as for an Accept header
        naming only types the API does not offer."""
        return [token for token in super().get_accept_list(request) if not _refused(token)]

    def filter_renderers(self, renderers, format):
        """DRF answers a `?format=` that names none of the view's renderers
        with a 404, as if the resource did not exist: here it is what it
        is, a query parameter with a wrong value (400, naming it)."""
        try:
            return super().filter_renderers(renderers, format)
        except Http404:
            formats = ", ".join(sorted({renderer.format for renderer in renderers}))
            raise ValidationError({self.settings.URL_FORMAT_OVERRIDE: [f"One of: {formats}."]}) from None


def _refused(token: str) -> bool:
    """Whether an Accept token carries q=0 (any spelling: 0, 0.0, 0.000). A q
    that is not a number is left to DRF, which ignores q."""
    q = parse_header_parameters(token)[1].get("q")
    try:
        return q is not None and float(q) == 0
    except ValueError:
        return False
