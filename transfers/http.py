"""A money request as the API receives it: its idempotency key and its body,
read by one reader for single movements and batches alike."""

import hashlib
from functools import cached_property

from rest_framework import serializers
from rest_framework.request import Request

from transfers.idempotency import IDEMPOTENCY_HEADER, idempotency_key_of, key_from_header


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
    try:
        key = idempotency_key_of(header=request.headers.get(IDEMPOTENCY_HEADER), body=body_key)
    except serializers.ValidationError as exc:
        errors.update(exc.detail)
    if errors:
        raise serializers.ValidationError(errors)
    return fields, key


class MoneyRequest:
    """A money request (transfer, deposit, withdrawal, batch) as its view
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
