"""What every API view shares and builds on: the base viewset (ApiViewSet:
strict query parameters, the credentials check, charging a money request
to the rate limit), the success half of the envelope (ok) and the one
cursor pagination every list uses (EnvelopeCursorPagination).

The policies REST framework's settings plug into every view (permissions,
content negotiation, body parsing) are wallet_project/policies.py; the
error half of the envelope is wallet_project/exceptions.py.
"""

import json
from urllib.parse import parse_qs, urlsplit

from django.core import signing
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import HttpResponse
from rest_framework import status as http_status
from rest_framework import viewsets
from rest_framework.exceptions import AuthenticationFailed, ValidationError
from rest_framework.pagination import Cursor, CursorPagination
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.utils.urls import replace_query_param

from wallet_project.throttling import Charge, ChargedOnLookup, ChargeLock, action_scope, charged_if_malformed

# --- The base viewset -----------------------------------------------------------------


class ApiViewSet(viewsets.GenericViewSet):
    """What every API route does alike, once its caller is known.

    Query parameters are strict (docs/api.md). An action reads only the
    parameters its `query_parameters` entry names (none if it has no entry)
    and `format`, which content negotiation reads on every route: any other
    is a 400 naming it, never silently ignored (`/api/tiers?curency=NGN`
    would otherwise list every currency's tiers). The entries are the names
    the schema documents for each operation; a test holds the two together.
    OPTIONS describes the route and reads none, so a browser's preflight
    that repeats a GET's query is not refused; a method the route does not
    take is its 405, whatever the query.

    A query parameter is given once: QueryDict.get() reads the
    last of several, so `?status=COMPLETED&status=FAILED` would silently mean
    FAILED, and which one a client meant is a guess. Repeated, it is a 400
    naming it, unless the route reads it as a list (repeatable_query_parameters,
    e.g. GET /api/events?type=a&type=b). Checked after authentication, so a
    caller without a key still learns only that (401).

    An action whose throttle_scopes entry is ChargedOnLookup charges its
    request itself, once it knows what it costs: `charge`.
    """

    query_parameters: dict[str, tuple[str, ...]] = {}
    repeatable_query_parameters: tuple[str, ...] = ()
    # Set by charge(): DRF makes a view instance per request.
    request_charge: Charge | None = None
    # Set by the charge's throttle: whether its lock was taken.
    charge_locked = False

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        # DRF charged every other action before this point; one that charges
        # itself is charged here as any malformed money request is.
        with charged_if_malformed(request, self):
            self._check_query(request)

    def _check_query(self, request) -> None:
        query = request.query_params
        if not query or self.action not in self.action_map.values():
            return  # OPTIONS (DRF's "metadata"), or a method the route does not take: its 405 follows
        read = {*self.query_parameters.get(self.action, ()), api_settings.URL_FORMAT_OVERRIDE}
        unknown = sorted(set(query) - read)
        if unknown:
            raise ValidationError({name: ["Unknown parameter."] for name in unknown})
        repeated = sorted(
            name for name, values in query.lists() if len(values) > 1 and name not in self.repeatable_query_parameters
        )
        if repeated:
            raise ValidationError({name: ["Give this parameter once."] for name in repeated})

    # A request let in on a cached API key runs unconfirmed until its rate
    # limit's round trip reads the credentials version (wallet_project/throttling.py,
    # clients/authentication.py). A request refused before that is confirmed
    # first: a permission granted a moment ago counts, and a revoked key gets
    # its 401 whatever else was wrong with the request.

    def permission_denied(self, request, message=None, code=None):
        if _confirm_credentials(request):
            return self.check_permissions(request)  # under the client as it is now
        return super().permission_denied(request, message, code)

    def finalize_response(self, request, response, *args, **kwargs):
        try:
            _confirm_credentials(request)
        except AuthenticationFailed as exc:
            response = self.handle_exception(exc)
        return super().finalize_response(request, response, *args, **kwargs)

    def charge(self, request, *, replay: bool, units: int = 1, lock: ChargeLock | None = None) -> bool:
        """Charge this request to the rate limit through DRF's throttles:
        `units` of the action's ChargedOnLookup scope for a replay or for new
        work (wallet_project/throttling.py), taking `lock` in the same round
        trip once it is let in. Raises Throttled (429) over the limit, before
        the caller has locked or stored anything. Returns whether the lock
        was taken (False: taken by another, Redis unreachable, or none)."""
        entry = action_scope(self, request.method)
        if not isinstance(entry, ChargedOnLookup):
            raise TypeError(f"{type(self).__name__}.{self.action} is charged by DRF before it runs, not by its view")
        self.request_charge = Charge(entry.replay if replay else entry.new, units, lock)
        self.charge_locked = False
        self.check_throttles(request)
        return self.charge_locked


def _confirm_credentials(request) -> bool:
    """Confirm the cached client a request runs on, if it has not been
    (the authenticator's confirm: True if the client was read again)."""
    authenticator = getattr(request, "_authenticator", None)
    return getattr(authenticator, "unconfirmed_key", None) is not None and authenticator.confirm(request)


# --- Responses and pagination ---------------------------------------------------------
# The success half of the API's envelope: {"success": true, "data": ...},
# and the one cursor pagination every list uses.


def ok(data, *, status: int = http_status.HTTP_200_OK, headers: dict | None = None) -> Response:
    return Response({"success": True, "data": data}, status=status, headers=headers)


# JSONRenderer's settings (COMPACT_JSON, UNICODE_JSON, STRICT_JSON), made once.
_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def ok_rendered(request, data: dict, *, status: int, headers: dict) -> HttpResponse:
    """ok(), rendered here to the bytes REST framework's JSONRenderer writes
    (compact, UTF-8, U+2028/U+2029 escaped) instead of through its Response:
    for the money answers (transfers/views.py), whose data is plain JSON
    already (strings, numbers, booleans, None; transfers/rendering.py).

    Measured with callgrind, 200 answers in one process without a database
    (money_response, the view's finalize_response and Django's render
    call): 390K -> 244K instructions a transfer's answer, 426K -> 259K a
    replay's. bench/instructions.py (n=40; before run twice), before ->
    after: 5.03M -> 4.87M a transfer (-3 %), 2.74M-2.83M -> 2.60M a replay
    (-5 % to -8 %).

    Negotiation already ran (APIView.initial: a 406 or a bad ?format= never
    gets here). The answer is written here only when it chose JSONRenderer
    with no parameters; anything else (`Accept: application/json; indent=4`)
    is ok()'s, rendered by REST framework as before."""
    if request.accepted_media_type != JSONRenderer.media_type or type(request.accepted_renderer) is not JSONRenderer:
        return ok(data, status=status, headers=headers)
    text = _ENCODER.encode({"success": True, "data": data})
    # As JSONRenderer: these two are valid JSON but not valid JavaScript.
    text = text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return HttpResponse(text.encode(), status=status, headers=headers, content_type=JSONRenderer.media_type)


class EnvelopeCursorPagination(CursorPagination):
    """Newest first, stable under inserts (a cursor, not an offset).

    Its two query parameters are read strictly, here where DRF reads them: a
    `limit` that is not a whole number from 1 to max_page_size, or a `cursor`
    this class did not write, is a 400 naming the parameter (DRF would quietly
    use the default page size, or answer 404, which reads as "no such wallet").

    A cursor is DRF's (offset, reverse, position) signed with the service's
    key (django.core.signing, SECRET_KEY): DRF's own is base64 of a query
    string, and any text that decodes to one (an empty cursor, `x=1`, a
    position the API never gave out) answered 200 with a first or an empty
    page, so a client with a broken cursor read on in silence. Signed, every
    cursor the API did not write is a 400, before anything is queried.
    """

    ordering = ("-created_at", "-id")
    page_size = 50
    page_size_query_param = "limit"
    cursor_query_param = "cursor"
    max_page_size = 200

    def get_schema_operation_parameters(self, view) -> list[dict]:
        """The two parameters as the API reads them (get_page_size, decode_cursor)."""
        return [
            {
                "name": self.cursor_query_param,
                "required": False,
                "in": "query",
                "description": "Where the page starts: the `nextCursor` or `previousCursor` of a page this API "
                "gave out, as it is. Anything else is a 400.",
                # django.core.signing's form: base64url of the position, ':', its signature.
                "schema": {"type": "string", "pattern": r"^\.?[A-Za-z0-9_-]+:[A-Za-z0-9_-]{43}$"},
            },
            {
                "name": self.page_size_query_param,
                "required": False,
                "in": "query",
                "description": f"Page size, {self.page_size} by default.",
                "schema": {"type": "integer", "minimum": 1, "maximum": self.max_page_size},
            },
        ]

    def get_page_size(self, request) -> int:
        values = request.query_params.getlist(self.page_size_query_param)
        if not values:
            return self.page_size
        text = values[-1]
        # isdecimal() and isascii(): "+5", " 5", "5.0" and "٥" are not limits.
        well_formed = len(values) == 1 and text.isascii() and text.isdecimal() and len(text) <= 6
        if not (well_formed and 1 <= int(text) <= self.max_page_size):
            raise ValidationError(
                {self.page_size_query_param: [f"A whole number from 1 to {self.max_page_size}, given once."]}
            )
        return int(text)

    @staticmethod
    def _signer() -> signing.Signer:
        # Made on each use: Signer reads SECRET_KEY when it is made. The salt
        # names the module the class was first written in: changed, it would
        # void every cursor already given out.
        return signing.Signer(salt="wallet_project.responses.EnvelopeCursorPagination")

    def encode_cursor(self, cursor: Cursor) -> str:
        sealed = self._signer().sign_object([cursor.offset, cursor.reverse, cursor.position])
        return replace_query_param(self.base_url, self.cursor_query_param, sealed)

    def decode_cursor(self, request) -> Cursor | None:
        values = request.query_params.getlist(self.cursor_query_param)
        if not values:
            return None
        if len(values) > 1:
            raise self._invalid_cursor()
        try:
            offset, reverse, position = self._signer().unsign_object(values[0])
        except (signing.BadSignature, ValueError, TypeError):
            raise self._invalid_cursor() from None
        return Cursor(offset=offset, reverse=reverse, position=position)

    def paginate_queryset(self, queryset, request, view=None):
        try:
            return super().paginate_queryset(queryset, request, view)
        except DjangoValidationError:
            # A well-formed cursor whose position is not a value of the
            # ordering field (a timestamp here): the model field refused it.
            raise self._invalid_cursor() from None

    def _invalid_cursor(self) -> ValidationError:
        return ValidationError({self.cursor_query_param: ["Not a cursor this API gave out; start again without it."]})

    def get_paginated_response(self, data):
        """The page: `nextCursor` and `previousCursor` are the cursors to pass
        back as `cursor` as they are (null at either end); `next` and
        `previous`, the same as whole URLs, are deprecated."""
        next_link, previous_link = self.get_next_link(), self.get_previous_link()
        return ok(
            {
                "results": data,
                "nextCursor": self._cursor_of(next_link),
                "previousCursor": self._cursor_of(previous_link),
                "next": next_link,
                "previous": previous_link,
            }
        )

    def _cursor_of(self, link: str | None) -> str | None:
        return None if link is None else parse_qs(urlsplit(link).query)[self.cursor_query_param][0]

    def get_paginated_response_schema(self, schema):
        return {
            "type": "object",
            "required": ["success", "data"],
            "properties": {
                "success": {"type": "boolean", "enum": [True]},
                "data": {
                    "type": "object",
                    "required": ["results", "nextCursor", "previousCursor", "next", "previous"],
                    "properties": {
                        "results": schema,
                        "nextCursor": {
                            "type": ["string", "null"],
                            "minLength": 1,
                            "description": "Pass as `cursor` for the next (older) page; null on the last page.",
                        },
                        "previousCursor": {
                            "type": ["string", "null"],
                            "minLength": 1,
                            "description": "Pass as `cursor` for the previous (newer) page; null on the first.",
                        },
                        "next": {
                            "type": ["string", "null"],
                            "format": "uri",
                            "deprecated": True,
                            "description": "Deprecated: the next page's URL; use nextCursor.",
                        },
                        "previous": {
                            "type": ["string", "null"],
                            "format": "uri",
                            "deprecated": True,
                            "description": "Deprecated: the previous page's URL; use previousCursor.",
                        },
                    },
                },
            },
        }
