"""The outbox (docs/api.md, "Events and webhooks"): events written in the same
database transaction as the change they describe, and read back by their
client in commit order.

Commit order. Ids and sequence numbers are taken when a row is inserted, not
when its transaction commits: under concurrency event 7 may commit after
event 8 did, and a client that had already read 8 would never see 7. So every
event carries the id of the transaction that wrote it (`txid`, PostgreSQL's
xid8), and a reader lists only events whose transaction is older than the
oldest transaction still running (the snapshot's xmin, `HORIZON`). Every such
transaction has finished: its events are visible now or never will be, and
any event committed later has a txid at or above that horizon, so it sorts
after everything already listed. The list is append-only in the cursor's order
(txid, seq), and a client that follows the cursor misses nothing. The cost: an
event appears once every transaction that was running when it committed has
ended, which is milliseconds for this service's short transactions (and at
most DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS for a stuck one).

What a client sees of the cursor reveals nothing: (txid, seq) count every
client's transactions and events, so "<txid>-<seq>" told a client how many
others had between two of its reads. The cursor it gets is the position
sealed for it alone (EventCursor.seal): encrypted and authenticated with a
key derived from SECRET_KEY, bound to the client's id.
"""

import base64
import binascii
import functools
import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESSIV
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.db.models import Q, QuerySet
from django.db.models.expressions import RawSQL
from django.utils import timezone
from django.utils.crypto import salted_hmac

from events.models import Event, EventType
from wallet_project.db.base import run

# Transactions below it have all ended (see the module docstring).
HORIZON_SQL = "pg_snapshot_xmin(pg_current_snapshot())::text::bigint"

_POSITION = struct.Struct(">qq")  # txid, seq: one AES block
_SEALED_LENGTH = 43  # base64url of a 16-byte tag and a 16-byte block, unpadded


@functools.cache
def _cipher(secret_key: str) -> AESSIV:
    """AES-SIV (RFC 5297) under a 512-bit key derived from SECRET_KEY:
    deterministic authenticated encryption, so one position always reads the
    same to its client (a poll with nothing new returns the cursor it sent).
    The salt names where this module was born: changing it would void every
    cursor a client holds."""
    key = salted_hmac("wallets.events.EventCursor", "", secret=secret_key, algorithm="sha512").digest()
    return AESSIV(key)


@dataclass(frozen=True)
class EventCursor:
    """A position in a client's event list: after the event (txid, seq).
    A client sees it sealed for itself (seal, unseal): 43 opaque characters."""

    txid: int
    seq: int

    @classmethod
    def of(cls, event: Event) -> "EventCursor":
        return cls(event.txid, event.seq)

    def seal(self, *, client_id: int) -> str:
        """The cursor as `client_id` sees it: the position encrypted and
        authenticated, the client's id bound to it as associated data."""
        sealed = _cipher(settings.SECRET_KEY).encrypt(_POSITION.pack(self.txid, self.seq), [_bound_to(client_id)])
        return base64.urlsafe_b64encode(sealed).rstrip(b"=").decode()

    @classmethod
    def unseal(cls, text: str, *, client_id: int) -> "EventCursor | None":
        """The position `text` holds, or None when it is not a cursor this
        API sealed for this client (malformed, altered, another client's, or
        sealed under another SECRET_KEY)."""
        if len(text) != _SEALED_LENGTH or not text.isascii():
            return None
        try:
            sealed = base64.urlsafe_b64decode(text + "=")
            # The last character carries bits the decoder drops: several texts
            # decode to one cursor. Only the one this API wrote is that cursor.
            if base64.urlsafe_b64encode(sealed).rstrip(b"=").decode() != text:
                return None
            position = _cipher(settings.SECRET_KEY).decrypt(sealed, [_bound_to(client_id)])
        except (binascii.Error, ValueError, InvalidTag):
            return None
        return cls(*_POSITION.unpack(position))


def _bound_to(client_id: int) -> bytes:
    return f"client:{client_id}".encode()


def insert_events_sql(
    *, rows: str, order: str, client: str, type: str, data: str, created_at: str = "now()", where: str = ""
) -> str:
    """The one statement that writes events, for every writer: each row of
    `rows` (a FROM clause) in `order`, each column (EVENT_COLUMNS) given as
    an SQL expression over it; `created_at` by default the transaction's
    start, the table's own default; `where`, if given, a condition on the
    rows, or one on none of them that PostgreSQL evaluates once, before the
    first row (the settle step's refusal, settle_as_decided: it fails the
    whole statement). The settle step generates its events' part from it
    (transfers/engine.py, SETTLE); everything else goes through
    record_event_rows."""
    values = {"client_id": client, "type": type, "data": data, "created_at": created_at}
    return (
        f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) "  # noqa: S608 (the callers' constants)
        f"SELECT {', '.join(values[column] for column in EVENT_COLUMNS)} FROM {rows}"
        + (f" WHERE {where}" if where else "")
        + f" ORDER BY {order}"
    )


# What a writer gives an event; the other columns (id, seq, txid) are the
# table's defaults.
EVENT_COLUMNS = ("client_id", "type", "data", "created_at")

# The events of event_rows_json, in their order (each row's `n`).
INSERT_EVENT_ROWS = insert_events_sql(
    rows="jsonb_to_recordset(%s::jsonb) AS e(n integer, client integer, type text, data jsonb)",
    order="e.n",
    client="e.client",
    type="e.type",
    data="e.data",
)


def record_event_rows(rows: list[tuple[str, int, dict]]) -> None:
    """Record events, each (type, client id, data): `type` an EventType
    value, `data` the object as the API shows it to that client, in the
    order given, in one INSERT (INSERT_EVENT_ROWS; the ORM's bulk_create
    cost more than a hold's own statements: bench/instructions.py).

    Must run inside the transaction.atomic block that makes the change, so
    that the events exist if and only if it commits (the transactional
    outbox): RuntimeError otherwise. The settle step writes its transactions'
    events in its own statement, from the same insert_events_sql
    (transfers/engine.py)."""
    for type, _, _ in rows:
        if type not in EventType.values:
            raise ValueError(f"unknown event type {type!r}")
    if not connection.in_atomic_block:
        raise RuntimeError("events must be recorded inside the transaction of the change they report")
    if rows:
        run(connection, INSERT_EVENT_ROWS, [event_rows_json(rows)])


def record_events(*, type: str, data_by_client: Mapping[int, dict]) -> None:
    """record_event_rows for one event of `type` per client, with the
    object that client may see (`data_by_client`: client id -> JSON object)."""
    record_event_rows([(type, client_id, data) for client_id, data in data_by_client.items()])


def event_rows_json(rows: list[tuple[str, int, dict]]) -> str:
    """(type, client id, data) rows as INSERT_EVENT_ROWS reads them."""
    return json.dumps(
        [{"n": n, "client": client_id, "type": type, "data": data} for n, (type, client_id, data) in enumerate(rows)],
        separators=(",", ":"),
    )


def client_events(
    *, client: AbstractBaseUser, after: EventCursor | None = None, types: list[str] | None = None, limit: int = 100
) -> list[Event]:
    """The client's events after `after`, oldest first in commit order (see
    the module docstring), at most `limit`, optionally only the given types.
    Only the client's own: events are copies per client."""
    events = Event.objects.filter(client=client, txid__lt=RawSQL(HORIZON_SQL, []))  # noqa: S611 (a constant)
    if after is not None:
        events = events.filter(Q(txid__gt=after.txid) | Q(txid=after.txid, seq__gt=after.seq))
    if types:
        events = events.filter(type__in=types)
    return list(events.order_by("txid", "seq")[:limit])


def current_horizon() -> int:
    """The txid below which every transaction has ended: where a new reader
    (a webhook endpoint created now) starts."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {HORIZON_SQL}")  # noqa: S608 (a constant)
        return cursor.fetchone()[0]


def expired_events(*, now=None, retention: timedelta) -> QuerySet[Event]:
    """Events older than the retention period."""
    return Event.objects.filter(created_at__lt=(now or timezone.now()) - retention)


def events_purge(*, retention: timedelta, batch_size: int = 5000) -> int:
    """Delete events older than `retention` (EVENTS_RETENTION_DAYS), and
    their deliveries, in batches of short transactions. Returns how many."""
    deleted = 0
    while True:
        with transaction.atomic():
            batch = list(expired_events(retention=retention).values_list("pk", flat=True)[:batch_size])
            if not batch:
                return deleted
            Event.objects.filter(pk__in=batch).delete()
            deleted += len(batch)
