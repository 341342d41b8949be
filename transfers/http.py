"""The door of every money request: its idempotency key and its body, read
by one reader for single movements, batches and holds alike (MoneyRequest),
and the one step that charges the rate limit and lets the request in
(admit)."""

import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property

from rest_framework import serializers
from rest_framework.request import Request

from transfers import locks
from transfers.idempotency import IDEMPOTENCY_HEADER, idempotency_key_of, key_from_header
from transfers.movements import Found
from wallet_project.throttling import charged_if_malformed
from wallet_project.views import ApiViewSet


def read_money_request(request: Request, serializer_class: type[serializers.Serializer]) -> tuple[dict, str]:
    """The validated body of a money request (transfer, deposit, withdrawal,
    batch), without its idempotencyKey field, and the request's idempotency
    key, from the Idempotency-Key header or that field
    (transfers.idempotency.idempotency_key_of: both given and different is
    an error).

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
    answered from what it made alone (transfers.movements.Found.answers_unread);
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
        # (read_money_request refuses one that differs), so which one is
        # taken when both are given does not matter.
        self.key = key if key is not None else self._read[1]

    @cached_property
    def _read(self) -> tuple[dict, str]:
        return read_money_request(self.request, self.serializer_class)

    def fields(self) -> dict:
        """The validated body, but for its key (with a header too, the same
        key: read_money_request refuses a body key that differs)."""
        return self._read[0]


def _body_digest(request: Request) -> str:
    """sha256 of the request as sent: its path, content type and body. Two
    requests with the same digest parse and validate alike (the client and
    the key are matched separately)."""
    digest = hashlib.sha256()
    for part in (request.path.encode(), request.META.get("CONTENT_TYPE", "").encode()):
        digest.update(len(part).to_bytes(4, "big"))
        digest.update(part)
    digest.update(request.body)
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
    round trip (`lock_key(key)`: the key the service gives
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
    under its lock (a hold's capture or void) or in the statement that does
    it (an extension): charged as new work."""
    return Found(None)
