"""What every API view shares and builds on: the base viewset (ApiViewSet:
strict query parameters, the credentials check, charging a money request
to the rate limit), the success half of the envelope (ok) and the one
cursor pagination every list uses (EnvelopeCursorPagination), and the
serializer base and fields the apps' serializers share (LeanSerializer, the
strict fields, timestamp_text, InstantField, DayField).

The policies REST framework's settings plug into every view (permissions,
content negotiation, body parsing) are wallet_project/policies.py; the
error half of the envelope is wallet_project/exceptions.py.
"""

import argparse
import json
import re
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import cached_property
from urllib.parse import parse_qs, urlsplit

import orjson
from django.core import signing
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import HttpResponse
from django.urls import register_converter
from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers, viewsets
from rest_framework import status as http_status
from rest_framework.exceptions import AuthenticationFailed, ValidationError
from rest_framework.fields import SkipField, empty, get_error_detail
from rest_framework.pagination import Cursor, CursorPagination
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.utils.serializer_helpers import BindingDict
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
        # Set by the throttle that charges it (throttling.ActionScopeThrottle)
        # when its script took the lock.
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
    already (strings, integers, booleans, None; transfers/serializers.py).

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
    return HttpResponse(
        _json_renderers_bytes({"success": True, "data": data}),
        status=status,
        headers=headers,
        content_type=JSONRenderer.media_type,
    )


def _json_renderers_bytes(answer: dict) -> bytes:
    """JSONRenderer's bytes for `answer`: strings, integers, booleans, None,
    lists and dicts of them (no floats: orjson writes 1e-05 as 1e-5, and NaN
    as null where JSONRenderer refuses it).

    orjson writes those exactly as the json module does with JSONRenderer's
    settings (transfers/tests/test_answer_bytes.py holds the two together),
    and the json module makes a new C encoder on every encode() call:
    callgrind, 1,000 transfer answers, 30.6K -> 4.3K instructions each
    (bench/HISTORY.md, 2026-12-07 12:18).
    What orjson refuses (an integer past 64 bits, a lone surrogate) goes the
    json module's way, to its bytes or its error as before."""
    try:
        body = orjson.dumps(answer)
    except TypeError:
        body = _ENCODER.encode(answer).encode()
    # As JSONRenderer: these two are valid JSON but not valid JavaScript.
    if not body.isascii():
        body = body.replace("\u2028".encode(), b"\\u2028").replace("\u2029".encode(), b"\\u2029")
    return body


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


# --- Serializers ----------------------------------------------------------------------

# The serializer base and fields the apps' serializers share: a cheaper base
# for the serializers every money request runs, strict fields, the one
# rendering of a timestamp, and the one reader of an instant and of a day.


class ReadsAsDeclared:
    """The one rule for a class with a short reading path (a way of reading
    input that stands in for DRF's generic steps, for speed): whether a
    class may take it is decided once, when the class is created, and read
    as one flag (`reads_as_declared`), never worked out per call.

    The class that has the path names in `reading_methods` what the path
    stands in for: the methods (or attributes) whose behaviour it
    reproduces. Their values on that class are recorded when it is created,
    and added to those its bases recorded. A class reads as declared when
    each recorded name is still the recorded object on it (it overrides
    none of them) and `_reads_as_declared_too()` holds (a class's own
    further conditions, such as the fields it declares). One that does not
    gets the generic path for everything it reads, so its own method runs
    and every answer, every error included, is its own: a silent slow path
    rather than a refusal, since such a class is correct, only slower.

    What varies per object rather than per class (a field's validators or
    bounds) is that object's own check, made once when it is built."""

    reading_methods: tuple[str, ...] = ()
    reads_as_declared = True
    # {name: the object each recorded class had under it}: bases' and own.
    _read_as: dict[str, object] = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        inherited = {}  # every base's record, so that two lines of bases both count
        for base in reversed(cls.__mro__[1:]):
            inherited.update(base.__dict__.get("_read_as", {}))
        cls.reads_as_declared = (
            all(getattr(cls, name, None) is value for name, value in inherited.items()) and cls._reads_as_declared_too()
        )
        own = cls.__dict__.get("reading_methods", ())
        cls._read_as = {**inherited, **{name: getattr(cls, name, None) for name in own}}

    @classmethod
    def _reads_as_declared_too(cls) -> bool:
        """A class's own further conditions for its short path, beyond
        overriding none of the recorded methods: none by default."""
        return True


class LeanSerializer(ReadsAsDeclared, serializers.Serializer):
    """A Serializer whose fields are shallow copies of the declared ones.

    DRF deep-copies every declared field for each serializer instance
    (Serializer.get_fields), which runs each field's __init__ again: on the
    request and response serializers of a transfer that was more than half of
    their cost (bench/HISTORY.md). A declared field is an unbound template
    no request changes, so a shallow copy, which bind() then makes this
    instance's own, is enough. For flat serializers only: a nested serializer
    would share its own fields between the copies, so one is refused.

    Built from per-class state (__init__), bound field templates (fields)
    and read without DRF's generic per-field steps (to_internal_value):
    with the body digest's direct reads (transfers/views.py), about 86K
    instructions less per transfer body read (callgrind, 200 reads of the
    bench's transfer body: 857K to 771K).
    """

    # A class reads as declared (ReadsAsDeclared) when its fields are its
    # declared ones: `fields` then builds them from bound templates and
    # _writable_plan finds them once per class. A class that builds its own
    # in get_fields gets DRF's path, deep copies and all.
    reading_methods = ("get_fields",)

    def __init_subclass__(cls, **kwargs):
        nested = [name for name, f in cls._declared_fields.items() if isinstance(f, serializers.BaseSerializer)]
        if nested:
            raise TypeError(f"{cls.__name__}: LeanSerializer cannot hold nested serializers ({', '.join(nested)})")
        super().__init_subclass__(**kwargs)

    def __init__(self, instance=None, data=empty, **kwargs):
        """DRF's Serializer.__init__; for the per-request call (data and a
        context, nothing else) without re-running Field.__init__, whose
        walk over the class's MRO collecting error messages was the largest
        own cost of reading a transfer's body (cProfile): its result for no
        arguments is built once per class and copied."""
        if not kwargs.keys() <= {"context"}:
            super().__init__(instance, data, **kwargs)
            return
        state = type(self).__dict__.get("_lean_state")
        if state is None:
            prototype = object.__new__(type(self))
            serializers.Serializer.__init__(prototype)
            state = {k: v for k, v in prototype.__dict__.items() if k not in _PER_INSTANCE}
            type(self)._lean_state = state
        self.__dict__.update(state)
        self._creation_counter = serializers.Field._creation_counter
        serializers.Field._creation_counter += 1
        self.style = {}
        self.error_messages = dict(state["error_messages"])
        self.instance = instance
        if data is not empty:
            self.initial_data = data
        self.partial = False
        self._context = kwargs.get("context", {})

    @cached_property
    def fields(self):
        """DRF's BindingDict of this instance's fields, from templates bound
        once per class (field_name, label, source, source_attrs: what bind()
        derives from the name alone), each shallow-copied and given this
        instance as its parent. A subclass with its own get_fields gets DRF's
        path (reads_as_declared)."""
        if not self.reads_as_declared:
            return super().fields
        fields = BindingDict(self)
        for name, template in _bound_templates(type(self)).items():
            field = _shallow_copy(template)
            field.parent = self
            fields.fields[name] = field
        return fields

    def to_internal_value(self, data):
        """DRF's Serializer.to_internal_value for a flat serializer and a JSON
        object (a dict): the same fields in the same order, the same
        validate_<field> methods, the same errors keyed by field name. Left
        out is what such a body never needs: the HTML-form reading of each
        value (Field.get_value), the generator over writable fields, the
        dotted-source walk (set_value), and the SkipField a missing optional
        field without a default raises (Field.validate_empty_values then
        get_default: skipped, required or not partial, with no default). Any
        other data (a QueryDict, not a mapping) goes to DRF's."""
        if type(data) is not dict:
            return super().to_internal_value(data)
        ret, errors = {}, {}
        for field, validate_method in _writable_plan(self):
            primitive_value = data.get(field.field_name, empty)
            if primitive_value is empty and not field.required and field.default is empty:
                continue
            try:
                validated_value = field.run_validation(primitive_value)
                if validate_method is not None:
                    validated_value = validate_method(validated_value)
            except serializers.ValidationError as exc:
                errors[field.field_name] = exc.detail
            except DjangoValidationError as exc:
                errors[field.field_name] = get_error_detail(exc)
            except SkipField:
                pass
            else:
                if len(field.source_attrs) == 1:
                    ret[field.source_attrs[0]] = validated_value
                else:
                    self.set_value(ret, field.source_attrs, validated_value)
        if errors:
            raise serializers.ValidationError(errors)
        return ret

    def run_validators(self, value):
        """DRF's, but for its read-only defaults (Serializer.run_validators
        adds them to what the validators see): built only when the
        serializer has validators at all."""
        if not self.validators:
            return
        super().run_validators(value)


# What DRF's Serializer.__init__ sets from its arguments, or per instance.
_PER_INSTANCE = frozenset({"instance", "initial_data", "partial", "_context", "_creation_counter", "style"})


def _bound_templates(cls: type[LeanSerializer]) -> dict[str, serializers.Field]:
    """A LeanSerializer class's declared fields, each a copy bound to its
    name (with no parent), built once per class."""
    templates = cls.__dict__.get("_lean_templates")
    if templates is None:
        templates = {}
        for name, declared in cls._declared_fields.items():
            template = _shallow_copy(declared)
            template.bind(name, None)
            templates[name] = template
        cls._lean_templates = templates
    return templates


def _writable_plan(serializer: LeanSerializer) -> list[tuple[serializers.Field, object]]:
    """The serializer's writable fields, in order, each with its bound
    validate_<field_name> method or None. Which ones is found once per
    class whose fields are its declared ones (reads_as_declared), and per
    instance for a class that builds its own in get_fields: a lookup of a
    method a class lacks is a failed attribute search, five per transfer
    body (with the plan kept per class, callgrind, 100 transfer bodies
    read: 699K -> 675K instructions each)."""
    cls = type(serializer)
    fields = serializer.fields
    plan = cls.__dict__.get("_lean_plan")
    if plan is None:
        plan = [
            (name, f"validate_{name}" if hasattr(serializer, f"validate_{name}") else None)
            for name, field in fields.items()
            if not field.read_only
        ]
        if cls.reads_as_declared:
            cls._lean_plan = plan
    return [(fields[name], None if method is None else getattr(serializer, method)) for name, method in plan]


def _shallow_copy(field: serializers.Field) -> serializers.Field:
    """What copy.copy(field) makes, without its generic path through the
    pickle protocol (__reduce_ex__, copyreg): a field is a plain object whose
    state is its __dict__."""
    clone = object.__new__(type(field))
    clone.__dict__.update(field.__dict__)
    return clone


class RefusesUnknownFields:
    """Mixed into an input serializer: a body field it does not declare is a
    400 naming it, not silently ignored (a typo such as "ammount" must not
    look like a request without the field). The OpenAPI schema says the same
    (additionalProperties: false on request bodies, wallet_project/schema.py)."""

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return super().to_internal_value(data)


_TIMESTAMP = serializers.DateTimeField()


def timestamp_text(value: datetime | None) -> str | None:
    """A timestamp as every answer and event shows it: ISO 8601 in UTC with a
    `Z` ("2026-11-30T05:46:47.123456Z"), DRF's DateTimeField rendering, so
    that a hand-written serializer says what the generated ones say. None
    stays None.

    An aware time (every one the service has: USE_TZ) is written here
    directly, as DRF writes it in the UTC the service runs in: DRF's field
    asks for the current time zone on every call, and a hold's answer and
    its event write four timestamps each; through DRF they made rendering a
    hold (transfers.serializers.hold_json) about three times as slow (timeit
    on the shared bench machine). wallet_project/tests/test_fields.py keeps
    the two the same."""
    if value is None:
        return None
    if value.tzinfo is None:
        return _TIMESTAMP.to_representation(value)
    return value.astimezone(UTC).isoformat()[:-6] + "Z"


# The one spelling of an id the API reads (docs/api.md, "Ids"): 36
# characters, hex digits (either case) hyphenated 8-4-4-4-12. Explicit ASCII
# ranges: `\d` or `int(..., 16)` would take other scripts' digits too.
CANONICAL_UUID_REGEX = "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_CANONICAL_UUID = re.compile(CANONICAL_UUID_REGEX)


def uuid_from_text(text: object) -> uuid.UUID:
    """The UUID a client wrote, read from its canonical text only: 36
    characters, 8-4-4-4-12 hex digits with hyphens, either case
    ("4f1c2a9e-0b7d-4c3e-9a51-2d6f8e0b1a7c"). The one reader of an id in a
    body, a path or a query (StrictUUIDField, CanonicalUUIDConverter).

    Python's uuid.UUID reads much more: braces, `urn:` and `uuid:` anywhere,
    no hyphens, and whatever int(..., 16) reads (surrounding whitespace, a
    sign, underscores, other scripts' digits: "٠" is 0), so text that is not
    the id a client wrote would still name a wallet; DRF's UUIDField also
    reads an integer as UUID(int=n). Each is refused here.

    Raises ValueError for anything else (a non-string included)."""
    if type(text) is not str or _CANONICAL_UUID.fullmatch(text) is None:
        raise ValueError("Not a UUID in its canonical form (8-4-4-4-12 hex digits).")
    # Checked above: 32 ASCII hex digits once the hyphens go, so the integer
    # is read directly rather than by uuid.UUID's parse of every spelling
    # (a timeit on the bench machine: 1.9 us a read, against 2.5 us through
    # DRF's UUIDField before).
    return uuid.UUID(int=int(text.replace("-", ""), 16))


class CanonicalUUIDConverter:
    """The path converter of every id in a URL (`<canonical_uuid:...>`, the
    viewsets' lookup_value_converter): uuid_from_text's spelling, either
    case (Django's own `uuid` converter takes lower case only, so an id
    written in capitals was a 404)."""

    regex = CANONICAL_UUID_REGEX

    def to_python(self, value: str) -> uuid.UUID:
        return uuid_from_text(value)

    def to_url(self, value) -> str:
        return str(value)


# Registered where it is defined, so any URLconf that uses it has it: the
# URL modules import their views, which import this module.
register_converter(CanonicalUUIDConverter, "canonical_uuid")


class StrictUUIDField(serializers.UUIDField):
    """A UUID in a body or a query, read by uuid_from_text: its canonical
    text only. DRF's UUIDField also reads an integer (and so `true`) as
    UUID(int=n), which would open a wallet for user 00...01, and every
    spelling uuid.UUID takes (braces, no hyphens, Arabic-Indic digits...)."""

    def to_internal_value(self, data):
        try:
            return uuid_from_text(data)
        except ValueError:
            self.fail("invalid", value=data)


# A whole number as text (a query parameter, or a body that sends one as a
# string): an optional minus and ASCII digits, nothing else.
_WHOLE_NUMBER_TEXT = re.compile(r"-?[0-9]{1,18}")


class StrictIntegerField(serializers.IntegerField):
    """A whole number as written: a JSON number whose value is whole (60,
    and 60.0, which JSON Schema's "integer", the schema's word for this
    field, also takes), or its text in ASCII digits ("60", "-1"). DRF's
    IntegerField reads int(str(value)) after dropping a trailing ".0", so
    the text "60.0", " 60", "+60", "6_0" and digits of other scripts ("٦٠",
    "６０") were 60 seconds or a page of 60."""

    def to_internal_value(self, data):
        # The JSON decoder gives a number with a point as a Decimal (policies.decode_json).
        if type(data) is Decimal and data.is_finite() and data == data.to_integral_value():
            data = int(data)
        if type(data) is not int and not (type(data) is str and _WHOLE_NUMBER_TEXT.fullmatch(data)):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictCharField(serializers.CharField):
    """Text given as a JSON string. DRF's CharField also reads a number as its
    text: `"idempotencyKey": 123` would be the key "123", the same key as the
    string, and a currency of 840 would be looked up as "840". A number where
    text is asked for is a client's bug, answered 400."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    """true or false, nothing else: DRF's BooleanField also reads "yes", 1 and
    "off", and a payout mode is no place to guess."""

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


# RFC 3339's date-time (section 5.6), the one spelling of an instant the API
# reads: full date, "T", hours, minutes, seconds (a fraction allowed), "Z" or
# an offset with a colon, all ASCII. The time, or the offset, may be missing
# here only so that a time without one (or a bare date) gets the message
# that says what is missing. The offset's hours are 00-23 and its minutes
# 00-59 (time-numoffset): fromisoformat reads +05:60 as +06:00 and +01:99 as
# +02:39, where the date and time themselves it checks. re.ASCII: `\d` would
# take other scripts' digits.
_INSTANT = re.compile(
    r"\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}:\d{2}(\.\d+)?(?P<offset>Z|[+-]([01]\d|2[0-3]):[0-5]\d)?)?", re.ASCII
)


@extend_schema_field({"type": "string", "format": "date-time", "example": "2026-12-03T12:00:00+01:00"})
class InstantField(serializers.Field):
    """The one reader of an instant, wherever a client gives one (a query
    parameter, a body field, a management command's option): RFC 3339
    (2026-12-03T12:00:00+01:00, or Z for UTC), read as a UTC datetime.

    Only that spelling: datetime.fromisoformat, and so Django's
    parse_datetime, also read ISO 8601's basic format (20261207T100000Z),
    week and ordinal dates (2026-W49-1T10:00:00Z), a space for the "T",
    hours alone and offsets without a colon, which a client's own parser
    may read otherwise or not at all. A time without an offset, or a bare
    date, names no instant: the reader refuses it rather than guess UTC (a
    client in Lagos who meant its own 10:00 would be an hour off). An
    instant that exists in its own offset but not in UTC
    (0001-01-01T00:00:00+01:00 is in year 0) is refused under the field's
    own name, not left to fail when it is written out. `up_to_now`: refuse
    one still to come (the ledger knows nothing of it)."""

    default_error_messages = {
        "invalid": "An RFC 3339 date and time with its offset, such as 2026-12-03T12:00:00+01:00 or "
        "2026-12-03T11:00:00Z.",
        "naive": "Give the time's offset (Z for UTC, +01:00 for Lagos): without one it names no instant.",
        "range": "Out of range: an instant from 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z.",
        "future": "This instant is still to come: ask for one up to now.",
    }

    def __init__(self, *, up_to_now: bool = False, **kwargs):
        self.up_to_now = up_to_now
        super().__init__(**kwargs)

    def to_internal_value(self, data) -> datetime:
        spelled = _INSTANT.fullmatch(data) if isinstance(data, str) else None
        if spelled is None:
            self.fail("invalid")
        try:
            instant = datetime.fromisoformat(data)
        except ValueError:  # a day or a time that does not exist
            self.fail("invalid")
        if spelled["offset"] is None:
            self.fail("naive")
        try:
            instant = instant.astimezone(UTC)
        except OverflowError:
            self.fail("range")
        if self.up_to_now and instant > timezone.now():
            self.fail("future")
        return instant

    def to_representation(self, value):
        return timestamp_text(value)


# re.ASCII: \d would also take other scripts' digits, which date() reads too.
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
# A day whose every hour is an instant, in any time zone: the first and the
# last day Python has are partly outside them (Lagos's 0001-01-01 starts in year 0).
FIRST_DAY, LAST_DAY = date(1, 1, 2), date(9999, 12, 30)


@extend_schema_field({"type": "string", "format": "date", "pattern": r"^\d{4}-\d{2}-\d{2}$", "example": "2026-12-03"})
class DayField(serializers.Field):
    """The one reader of a day: ISO 8601's `YYYY-MM-DD` exactly (2026-12-06;
    not 2026-12-6, which strptime would read, nor the basic 20261206 or a
    week date, which date.fromisoformat would), a day that exists, from
    FIRST_DAY to LAST_DAY. Which time zone the day is in is the caller's."""

    default_error_messages = {
        "invalid": "A day that exists, as YYYY-MM-DD, such as 2026-12-03.",
        "range": f"Out of range: a day from {FIRST_DAY} to {LAST_DAY}.",
    }

    def to_internal_value(self, data) -> date:
        if not isinstance(data, str) or not _DAY.fullmatch(data):
            self.fail("invalid")
        try:
            day = date.fromisoformat(data)
        except ValueError:
            self.fail("invalid")
        if not FIRST_DAY <= day <= LAST_DAY:
            self.fail("range")
        return day

    def to_representation(self, value):
        return value.isoformat()


def option_reader(field: serializers.Field):
    """A management command option's reader (argparse's `type=`) that reads
    its text as the API reads `field` (InstantField, StrictIntegerField...),
    so that an operator's option takes what a client's request would: the
    field's value, or argparse's error with the text and the field's own
    message (a CommandError under call_command, a usage error in a shell)."""

    def read(text: str):
        try:
            return field.run_validation(text)
        except ValidationError as exc:
            raise argparse.ArgumentTypeError(f"{text!r}: {exc.detail[0]}") from None

    return read
