"""A movement request as the API receives it: read from the HTTP request,
charged to the client's rate limits (wallet_project/throttling.py) once the
protocol knows whether it is new work or a replay."""

import hashlib
from collections.abc import Callable
from functools import cached_property

from rest_framework.exceptions import ValidationError
from rest_framework.request import Request

from transfers.idempotency import IDEMPOTENCY_HEADER, key_from_header
from transfers.movements import Movement, MovementRequest
from wallet_project.throttling import REPLAYS, TRANSFERS, ClientRateThrottle

# A money view's throttle_scopes entry: ActionScopeThrottle leaves the request
# to the view, which charges it once the idempotency key has been looked up
# (ApiMovementRequest.charge_as_new / charge_as_replay).
CHARGED_WHEN_ANSWERED = None


class ApiMovementRequest(MovementRequest):
    """A movement request read from a DRF request to `view`.

    The body is validated with `serializer_class`, and its validated fields,
    but for the key, become the movement through `movement_of`
    (Movement.transfer, or Movement.deposit bound to the path's wallet).

    The key comes from a well-formed Idempotency-Key header without reading
    the body, so that the protocol can answer a byte-identical retry of a
    finished request from its transaction alone; otherwise (the key in the
    body only, or a malformed header, which validation then reports) the body
    is read first.
    """

    def __init__(self, request: Request, view, serializer_class, movement_of: Callable[..., Movement]):
        self.request, self.view = request, view
        self.serializer_class, self.movement_of = serializer_class, movement_of
        # Before anything parses the body: the digest reads it as sent.
        self.body_digest = _body_digest(request)
        # A malformed header is reported by the body's validation (400).
        header_key = _or_none(key_from_header, request.headers.get(IDEMPOTENCY_HEADER))
        key = header_key if header_key is not None else self._payload["idempotency_key"]
        super().__init__(client=request.user, idempotency_key=key)

    @cached_property
    def _payload(self) -> dict:
        """The validated body. A malformed one never reaches the protocol,
        which charges the others, so it is charged here, as new work, before
        the 400."""
        serializer = self.serializer_class(data=self.request.data, context={"request": self.request})
        if not serializer.is_valid():
            self.charge_as_new()
            raise ValidationError(serializer.errors)
        return dict(serializer.validated_data)

    def read_movement(self) -> Movement:
        fields = dict(self._payload)
        # With a header too, the same key: validation refuses a body key that differs.
        del fields["idempotency_key"]
        return self.movement_of(**fields)

    def charge_as_new(self) -> None:
        self._charge(TRANSFERS)

    def charge_as_replay(self) -> None:
        self._charge(REPLAYS)

    def _charge(self, scope: str) -> None:
        limit = ClientRateThrottle(scope)
        if not limit.allow_request(self.request, self.view):
            self.view.throttled(self.request, limit.wait())


def _or_none(read, value):
    try:
        return read(value)
    except ValidationError:
        return None


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
