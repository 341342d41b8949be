"""The door of every money request: its idempotency key and its body, read
by one reader for single movements, batches and holds alike (MoneyRequest),
the rules of the key wherever it comes from (validate_idempotency_key,
key_from_header, idempotency_key_of), and the one step that charges the
rate limit and lets the request in (admit).
"""

import hashlib
import re
import string
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property

from rest_framework import serializers
from rest_framework.request import Request

from transfers import locks
from transfers.models import Found
from wallet_project.api import ApiViewSet
from wallet_project.throttling import charged_if_malformed


def read_money_request(request: Request, serializer_class: type[serializers.Serializer]) -> tuple[dict, str]:
    """The validated body of a money request (transfer, deposit, withdrawal,
    batch, hold), without its idempotencyKey field, and the request's
    idempotency key, from the Idempotency-Key header or that field
    (idempotency_key_of: both given and different is an error).

    Raises ValidationError (400) naming every problem with the body and the
    key at once: a client learns in one answer that a batch lacks both its
    key and `atomic`.
    """
    serializer = serializer_class(data=request.data, context={"request": request})
    if serializer.is_valid():
        fields = dict(serializer.validated_data)
        body_key, errors = fields.pop("idempotency_key", None), {}
    else:
        fields, errors = {}, dict(serializer.errors)
        # The key is still read from what was sent, unless its field itself is what is wrong.
        data = request.data if isinstance(request.data, dict) else {}
        body_key = None if "idempotencyKey" in errors else data.get("idempotencyKey")
        if body_key is not None and not isinstance(body_key, str):
            # A serializer that stopped before its fields (an unknown field:
            # RefusesUnknownFields) never read it: what its field would say.
            errors["idempotencyKey"], body_key = [str(serializers.CharField.default_error_messages["invalid"])], None
    header = request.headers.get(IDEMPOTENCY_HEADER)
    try:
        key = idempotency_key_of(header=header, body=body_key)
    except serializers.ValidationError as exc:
        # A key field that is not text (`"idempotencyKey": 5`) was sent: its
        # own error says so, where the reader, not given it, would say
        # "Required". A header's fault is added to it, not put in its place.
        if header is not None or "idempotencyKey" not in errors:
            for field, messages in exc.detail.items():
                errors[field] = [*errors.get(field, []), *messages]
    if errors:
        raise serializers.ValidationError(errors)
    return fields, key


class MoneyRequest:
    """A money request (transfer, deposit, withdrawal, batch, hold) as its view
    reads it: its idempotency key, read once, its body digest, and its
    validated body, read only when the answer needs it.

    The key comes from a well-formed Idempotency-Key header without reading
    the body, so that a byte-identical retry of a finished request can be
    answered from what it made alone (transfers.models.Found.answers_unread);
    otherwise (the key in the body only, or a malformed header) the body is
    read first, by read_money_request. Either way ValidationError (400).
    """

    def __init__(self, request: Request, serializer_class: type[serializers.Serializer]):
        self.request, self.serializer_class = request, serializer_class
        # Before anything parses the body: the digest reads it as sent.
        self.body_digest = _body_digest(request)
        try:
            key = key_from_header(request.headers.get(IDEMPOTENCY_HEADER))
        except serializers.ValidationError:
            # Not ignored: read_money_request reads the header again and
            # reports its fault in one 400 with the body's.
            key = None
        # The header's key when it has one: a body key must then be the same
        # (read_money_request refuses one that differs, when fields() reads it).
        self.key = key if key is not None else self._read[1]

    @cached_property
    def _read(self) -> tuple[dict, str]:
        return read_money_request(self.request, self.serializer_class)

    def fields(self) -> dict:
        """The validated body, but for its key; ValidationError (400) as
        read_money_request."""
        return self._read[0]


def _body_digest(request: Request) -> str:
    """sha256 of the request as sent: its path, content type and body. Two
    requests with the same digest parse and validate alike (the client and
    the key are matched separately)."""
    # The Django request itself: each attribute read through DRF's Request
    # is a Python-level __getattr__ and a failed lookup first.
    django_request = request._request
    path, content_type = django_request.path.encode(), django_request.META.get("CONTENT_TYPE", "").encode()
    digest = hashlib.sha256(
        b"".join((len(path).to_bytes(4, "big"), path, len(content_type).to_bytes(4, "big"), content_type))
    )
    digest.update(django_request.body)
    return digest.hexdigest()


@dataclass(frozen=True)
class Admitted:
    """A money request let in by `admit`, charged: its key, its body digest,
    what the key already names (`found`), and either `unread` (a
    byte-identical retry of a finished request: answer `found.row`) or the
    validated body, but for its key (`fields`, for the service)."""

    key: str
    body_digest: str
    found: Found
    unread: bool
    fields: dict


def _one(_) -> int:
    return 1


@contextmanager
def admit(
    request: Request,
    view: ApiViewSet,
    serializer_class: type[serializers.Serializer],
    find: Callable[..., Found],
    *,
    units: Callable[[dict], int] = _one,
    replay_units: Callable[[Found], int] = _one,
    lock_key: Callable[[str], str] | None = None,
) -> Iterator[Admitted]:
    """Let one money request in (a transfer, a deposit, a withdrawal, a batch,
    a hold placed, captured, voided or extended): read its key once
    (MoneyRequest), look the key up (`find`: services.movement_find,
    services.batch_find, holds.hold_find, or nothing), validate its body
    unless a byte-identical retry of a finished request is answered unread
    (Found.answers_unread), and charge it. The view answers it inside the
    block (`with admit(...) as entry:`).

    The charging rule, for every money request, written here only
    (docs/api.md, "Rate limits"): a request is charged once, before anything
    is locked or stored, so that a 429 leaves its key free:
    - malformed: one unit of new work, whatever its key names
      (wallet_project.throttling.charged_if_malformed, the one rule);
    - under a key whose request is finished (a replay, answered unread or
      read, and a reused key's 422): the `replay` scope (replays),
      `replay_units(found)` units for one answered unread (what the first
      request was charged), else `units(fields)`;
    - anything else (new work, or a key still PENDING): `units(fields)` of
      the `new` scope. A batch is one unit per payout, anything else one.

    First-time work takes the service's idempotency lock in the charge's
    round trip (`lock_key(key)`: the name locks.unit_lock_key gives the lock
    of the request's unit, the one its service takes with
    locks.idempotency_lock; transfers/locks.py, taken_with_charge): one Redis
    round trip for a first-time request. Only once let in: a 429 takes no
    lock. A lock the service does not take over is released when the block
    exits.

    `view` is the ApiViewSet whose action's throttle_scopes entry is
    ChargedOnLookup: DRF let the request past its throttles uncharged, so
    until the charge a client found in the authentication cache is
    unconfirmed (clients/authentication.py); reading the key and `find` only
    read, and the charge's Redis round trip confirms the client.

    Raises ValidationError, ParseError (400) or UnsupportedMediaType (415),
    charged; Throttled (429) over the limit; AuthenticationFailed (401) or
    PermissionDenied (403) if the confirmed client may not."""
    with charged_if_malformed(request, view):
        money = MoneyRequest(request, serializer_class)
    found = find(client=request.user, idempotency_key=money.key)
    if found.answers_unread(money.body_digest):
        view.charge(request, replay=True, units=replay_units(found))
        yield Admitted(money.key, money.body_digest, found, unread=True, fields={})
        return
    with charged_if_malformed(request, view):
        fields = money.fields()
    lock = None
    if lock_key is not None and not found.finished:
        lock = locks.charge_lock(request.user.pk, lock_key(money.key))
    if not view.charge(request, replay=found.finished, units=units(fields), lock=lock):
        lock = None
    with locks.taken_with_charge(lock):
        yield Admitted(money.key, money.body_digest, found, unread=False, fields=fields)


def nothing_found(*, client, idempotency_key: str) -> Found:
    """admit's `find` for a request whose key is looked up by its service
    (a hold's capture or void under its lock, a set's from its holds, an
    extension in the statement that does it): charged as new work."""
    return Found(None)


# --- The idempotency key --------------------------------------------------------------
# How an idempotency key is read: one rule for every place a key comes from.
#
# docs/api.md, "Idempotency: moving money exactly once": a key comes in the Idempotency-Key header
# or the idempotencyKey body field (both present and different: 400), is 1 to
# 255 printable characters, scoped to the calling client, and a given string is
# one key, never two. So:
#
# - the header holds one key: a bare value, or an RFC 8941 structured-field
#   string (`"abc"` means `abc`, as the IETF draft writes it). A header sent
#   more than once arrives joined with commas (WSGI servers do so), and a list
#   is a list either way: a comma anywhere in a header's key is a 400, never a
#   new key. Quoting does not help: `"jo` sent twice with `in"` arrives as
#   `"jo,in"`, a well-formed string. A key that holds a comma goes in the body;
# - whitespace means one thing wherever the key comes from: a key never starts
#   or ends with it (400). HTTP itself strips it around a header's value, so
#   without this rule " K2 " in the body and "K2" in the header would be two
#   keys for what a person reads as one;
# - header values are ASCII (RFC 9110); a non-ASCII key goes in the body;
# - a key never starts with "reference/": GET /api/transfer/{key} shares its
#   path with GET /api/transfer/reference/{reference}, and a percent-encoded
#   slash reaches the application decoded, so such a key could never be looked
#   up again (and could shadow a reference). Every key that can be stored can
#   be read back by its own route;
# - a key never starts with "hold:": a hold's capture records its TRANSFER
#   under the client's key `hold:<hold id>` (transfers/engine.py,
#   _capture_log), so a client's transfer or payout under that key would take
#   it, and the hold could never be captured;
# - no part of a key between slashes is "." or "..": HTTP clients remove such
#   dot segments from a path before they send it (RFC 3986, 5.2.4; curl,
#   requests and browsers do, and %2E is the same character to them), so
#   GET /api/transfer/a/../b reached the lookup of key "b", another
#   transaction, and "." or ".." reached no transfer route at all.

IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
# The keys the service names itself, never a client's, and why (the refusal says it).
_WHY_RESERVED = {
    # The lookup by reference's path (transfers/urls.py).
    "reference/": "GET /api/transfer/reference/... looks transactions up by reference.",
    # A hold's capture records its TRANSFER under this key (transfers/engine.py, _capture_log).
    "hold:": "a hold's capture is recorded under hold:<hold id>.",
}
RESERVED_PREFIXES = tuple(_WHY_RESERVED)
_NOT_RESERVED = f"(?!{'|'.join(re.escape(prefix) for prefix in RESERVED_PREFIXES)})"
# The keys as the schema describes them (the body field and the header),
# exactly as validate_idempotency_key and key_from_header read them, so that
# a generated client sends what is accepted and nothing else is (a test
# compares them on many sampled keys). A key never has a dot segment ("." or
# ".." between slashes, the first lookahead) nor starts with a reserved prefix.
_NO_DOT_SEGMENT = r"(?!(.*/)?\.\.?(/|$))"
# The body: printable characters, no whitespace at either end. JSON Schema
# has no class for "printable", so the unprintable ones are listed: controls,
# separators and spaces other than " ", format characters and private use
# (a JSON body holds no lone surrogate: the parser refuses one). Only code
# points Unicode has not assigned yet, and a few format characters beyond
# the first plane, are refused beyond what the pattern says.
_UNPRINTABLE = (
    r"\x00-\x1f\x7f-\xa0\xad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u1680\u180e"
    r"\u2000-\u200f\u2028-\u202f\u205f-\u2064\u2066-\u206f\u3000\ue000-\uf8ff\ufeff\ufff9-\ufffb"
)
_PRINTABLE = rf"[^{_UNPRINTABLE}]"
_PRINTABLE_NOT_SPACE = rf"[^\s{_UNPRINTABLE}]"
BODY_KEY_PATTERN = (
    rf"^{_NOT_RESERVED}{_NO_DOT_SEGMENT}{_PRINTABLE_NOT_SPACE}({_PRINTABLE}{{0,253}}{_PRINTABLE_NOT_SPACE})?$"
)
# The header: printable ASCII without a comma (a list), either bare (not
# starting with '"') or an RFC 8941 string ("..." with \" and \\ escaped),
# with optional whitespace around it, which HTTP strips.
_BARE = (
    rf"{_NOT_RESERVED}(?!(.*/)?\.\.?(/|[ \t]*$))"
    r"[!#-+\--~]([ -+\--~]{0,253}[!-+\--~])?"
)
_QUOTED_UNIT = r"([ !#-+\--\[\]-~]|\\[\"\\])"
_QUOTED_UNIT_NOT_SPACE = r"([!#-+\--\[\]-~]|\\[\"\\])"
_QUOTED = (
    rf'"{_NOT_RESERVED}(?!(.*/)?\.\.?(/|"[ \t]*$))'
    rf'{_QUOTED_UNIT_NOT_SPACE}({_QUOTED_UNIT}{{0,253}}{_QUOTED_UNIT_NOT_SPACE})?"'
)
HEADER_KEY_PATTERN = rf"^[ \t]*({_BARE}|{_QUOTED})[ \t]*$"
# RFC 8941 section 3.3.3: an sf-string holds printable ASCII, with \" and \\ escaped.
_SF_STRING_CHARACTERS = set(string.printable) - set("\t\n\r\x0b\x0c")


def validate_idempotency_key(value: str) -> str:
    """`value` if it can be a key, wherever it came from; else
    serializers.ValidationError saying what is wrong with it."""
    if not value or not value.strip():
        raise serializers.ValidationError("The idempotency key must not be blank.")
    if len(value) > MAX_KEY_LENGTH:
        raise serializers.ValidationError(f"The idempotency key must be at most {MAX_KEY_LENGTH} characters.")
    if not value.isprintable():
        raise serializers.ValidationError("The idempotency key must be printable characters only.")
    if value != value.strip():
        raise serializers.ValidationError("The idempotency key must not start or end with whitespace.")
    if any(segment in (".", "..") for segment in value.split("/")):
        raise serializers.ValidationError(
            "The idempotency key must not have '.' or '..' between slashes (or as the whole key): HTTP clients "
            "remove such parts from the path of GET /api/transfer/{key}, which would not find it."
        )
    for prefix, why in _WHY_RESERVED.items():
        if value.startswith(prefix):
            raise serializers.ValidationError(f"The idempotency key must not start with {prefix!r}: {why}")
    return value


def key_from_header(value: str | None) -> str | None:
    """The key an Idempotency-Key header value names, or None when the
    header is absent. Raises serializers.ValidationError for a list (or a
    repeated header), a malformed structured-field string, non-ASCII, or a key
    validate_idempotency_key refuses."""
    if value is None:
        return None
    # Optional whitespace around a field value is HTTP syntax, not the value
    # (RFC 9110 section 5.5); most servers strip it before the application sees it.
    value = value.strip(" \t")
    key = _structured_field_string(value) if value.startswith('"') else value
    if "," in key:
        # A repeated header, joined by the server, cannot be told from one
        # holding a comma, quoted or not: never read it as a key.
        raise serializers.ValidationError(
            f"The {IDEMPOTENCY_HEADER} header must hold one key, sent once: it held a comma (a list, or the "
            "header sent twice). Send a key that contains a comma in the idempotencyKey field."
        )
    if not key.isascii():
        raise serializers.ValidationError(
            f"The {IDEMPOTENCY_HEADER} header must be ASCII; send a non-ASCII key in the idempotencyKey field."
        )
    return validate_idempotency_key(key)


def _structured_field_string(value: str) -> str:
    """RFC 8941 sf-string: `"` chars `"`, with only \\" and \\\\ as escapes,
    and nothing after the closing quote (no parameters, no second member)."""
    key, escaped = [], False
    for position, character in enumerate(value[1:], start=1):
        if escaped:
            if character not in '"\\':
                break
            key.append(character)
            escaped = False
        elif character == "\\":
            escaped = True
        elif character == '"':
            if position != len(value) - 1:
                break
            return "".join(key)
        elif character not in _SF_STRING_CHARACTERS:
            break
        else:
            key.append(character)
    raise serializers.ValidationError(
        f'The {IDEMPOTENCY_HEADER} header is not one structured-field string ("..." with only \\" and \\\\ '
        "escaped, nothing after it)."
    )


def idempotency_key_of(*, header: str | None, body: str | None) -> str:
    """The request's key from its header value and body field (either may be
    None). Raises serializers.ValidationError({"idempotencyKey": [...]}) when
    neither is given, either is malformed, or both are given and differ."""
    try:
        from_header = key_from_header(header)
        from_body = validate_idempotency_key(body) if body is not None else None
    except serializers.ValidationError as exc:
        raise serializers.ValidationError({"idempotencyKey": exc.detail}) from None
    if from_header is not None and from_body is not None and from_header != from_body:
        raise serializers.ValidationError(
            {"idempotencyKey": [f"The {IDEMPOTENCY_HEADER} header and the idempotencyKey field differ."]}
        )
    key = from_body if from_body is not None else from_header
    if key is None:
        raise serializers.ValidationError(
            {"idempotencyKey": [f"Required, in the {IDEMPOTENCY_HEADER} header or the idempotencyKey field."]}
        )
    return key
