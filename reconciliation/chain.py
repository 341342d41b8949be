"""The ledger chain: a tamper-evident history of finished transactions
(docs/operations.md, "A provable history").

Each finished log (COMPLETED, FAILED or REVERSED) gets one link in
`ledger_chain`: link n's hash is

    sha256(hash of link n-1, or 32 zero bytes for link 1 || canonical form of the log)

The canonical form is one line per field, `name:byte-length:value\\n`, UTF-8,
in the order of CANONICAL_FIELDS; a NULL field is left out (so a column added
later, NULL on older logs, leaves their links as they were). A REVERSED log is
hashed as COMPLETED: a later reversal changes its status but not the history
its link proved (the reversal is a log and a link of its own).

Order: the order of the database transactions that finished the logs
(transaction_logs.finished_txid, filled by a trigger, migration
transfers/0016), then id. A tick appends only logs whose transaction is older
than every transaction still running (the snapshot's xmin, as the events'
cursor does, events/outbox.py): each of those has committed or never will,
so a slow committer's log can never turn up behind the head. The chain is
computed after commit, by the beat task, never under a wallet's row lock.

Verifying recomputes every link in one SQL statement (each link joined to
the one before it, sha256()) in one REPEATABLE READ snapshot, and names the
first broken one. Publishing the head
outside the database (checkpoint_publish) is what makes a rewrite of the
whole chain from some point on detectable: a checkpoint an auditor holds no
longer matches.
"""

import hashlib
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.utils import timezone

from events.models import EventType
from events.outbox import HORIZON_SQL, record_events
from reconciliation.services import Discrepancy
from transfers.models import TransactionLog
from transfers.statements import ChainLink

logger = logging.getLogger(__name__)

GENESIS = bytes(32)  # the "previous hash" of link 1
# pg_try_advisory_xact_lock's key: one chain extender at a time, per database.
CHAIN_LOCK_KEY = 0x6C65646765720001
# A log's place in the chain's order: the transaction that finished it, then
# its id. Logs finished before transfers/0016 have no finished_txid: they
# come first, as 0 (below any real transaction id), in id order. The index
# of transfers/0017 is on exactly this expression, for finished logs.
ORDER_TXID = "coalesce(t.finished_txid, 0)"

_UTC_INSTANT = """'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'"""

# name, SQL giving its text (NULL: left out) on transaction_logs AS t, and
# its length in bytes where every value has the same (a uuid's 36, an
# instant's 27 until the year 9999): written once instead of counted per row,
# a fifth of verify's time.
CANONICAL_FIELDS: list[tuple[str, str, int | None]] = [
    ("id", "t.id::text", 36),
    ("kind", "t.type", None),
    ("status", "CASE WHEN t.status = 'REVERSED' THEN 'COMPLETED' ELSE t.status END", None),
    ("amount", "t.amount::text", None),
    ("currency", "t.currency", None),
    ("source", "t.source_wallet_id::text", 36),
    ("destination", "t.destination_wallet_id::text", 36),
    ("reference", "t.reference", None),
    ("completed_at", f"to_char(t.completed_at AT TIME ZONE 'UTC', {_UTC_INSTANT})", 27),
    ("error_code", "t.error_code", None),
    ("reverses", "t.reversal_of_id::text", 36),
]
# The balances after the movement, where the schema has them (statements,
# issue 31): hashed from the first log that carries them.
BALANCE_COLUMNS = ("source_balance_after", "destination_balance_after")
_COLUMNS = {field.column for field in TransactionLog._meta.concrete_fields}
CANONICAL_FIELDS += [(column, f"t.{column}::text", None) for column in BALANCE_COLUMNS if column in _COLUMNS]


def _canonical_sql() -> str:
    # concat() skips NULLs, and `||` with a NULL is NULL: a NULL field is absent.
    lines = (
        f"'{name}:{length}:' || {value} || E'\\n'"
        if length
        else f"'{name}:' || octet_length({value}) || ':' || {value} || E'\\n'"
        for name, value, length in CANONICAL_FIELDS
    )
    return f"concat({', '.join(lines)})"


CANONICAL_SQL = _canonical_sql()


def canonical_form(fields: Sequence[tuple[str, str | None]]) -> bytes:
    """The canonical form of a log from its fields' text, as an auditor's own
    verifier would compute it (docs/operations.md); CANONICAL_SQL is the same
    in SQL. `fields`: (name, text or None) in CANONICAL_FIELDS order."""
    out = bytearray()
    for name, value in fields:
        if value is not None:
            encoded = value.encode()
            out += f"{name}:{len(encoded)}:".encode() + encoded + b"\n"
    return bytes(out)


def link_hash(previous: bytes, canonical: bytes) -> bytes:
    return hashlib.sha256(previous + canonical).digest()


# --- extending ------------------------------------------------------------------------


def chain_extend(*, batch_size: int | None = None) -> int | None:
    """Append every log finished (and committed) since the head, in chain
    order, `batch_size` links per transaction (LEDGER_CHAIN_BATCH_SIZE).
    Returns how many links were appended, or None when another extender holds
    the chain (pg_try_advisory_xact_lock): safe to run any number of times at
    once, and it never waits."""
    size = batch_size or settings.LEDGER_CHAIN_BATCH_SIZE
    total = 0
    while True:
        appended = _extend_once(size)
        if appended is None:
            return None if total == 0 else total
        total += appended
        if appended < size:
            return total


def _extend_once(size: int) -> int | None:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [CHAIN_LOCK_KEY])
        if not cursor.fetchone()[0]:
            return None
        cursor.execute("SELECT position, txid, log_id, hash FROM ledger_chain ORDER BY position DESC LIMIT 1")
        head = cursor.fetchone()
        if head is None:
            position, after_txid, after_id, previous = 0, -1, uuid.UUID(int=0), GENESIS
        else:
            position, after_txid, after_id, previous = head[0], head[1], head[2], bytes(head[3])
        cursor.execute(
            f"""
            SELECT t.id, {ORDER_TXID}, {CANONICAL_SQL}
              FROM transaction_logs t
             WHERE t.status <> 'PENDING'
               AND {ORDER_TXID} < {HORIZON_SQL}
               AND ({ORDER_TXID}, t.id) > (%s, %s)
             ORDER BY {ORDER_TXID}, t.id
             LIMIT %s
            """,  # noqa: S608 (constants only)
            [after_txid, after_id, size],
        )
        rows = cursor.fetchall()
        if not rows:
            return 0
        positions, log_ids, txids, hashes = [], [], [], []
        for log_id, txid, canonical in rows:
            previous = link_hash(previous, canonical.encode())
            position += 1
            positions.append(position)
            log_ids.append(log_id)
            txids.append(txid)
            hashes.append(previous)
        cursor.execute(
            "INSERT INTO ledger_chain (position, log_id, txid, hash) "
            "SELECT * FROM unnest(%s::bigint[], %s::uuid[], %s::bigint[], %s::bytea[])",
            [positions, log_ids, txids, hashes],
        )
        return len(rows)


# --- reading and verifying ----------------------------------------------------------


@dataclass(frozen=True)
class ChainHead:
    position: int
    hash: str  # hex
    log_id: uuid.UUID
    chained_at: datetime


@dataclass(frozen=True)
class ChainBreak:
    """The first link that does not hold, and why: `missing_link` (positions
    skip: a link was deleted), `deleted` (its log is gone), `reordered` (its
    log's place in the order changed), `altered` (its log's canonical fields,
    or the link's hash, changed)."""

    position: int
    log_id: uuid.UUID
    reason: str


REASONS = {
    "missing_link": "the link before it is missing",
    "deleted": "its transaction was deleted",
    "reordered": "its transaction's place in the order changed",
    "altered": "its transaction or its hash was changed",
}


@dataclass(frozen=True)
class CheckpointCheck:
    position: int
    expected: str  # hex, as published
    found: str | None  # hex, or None when the chain has no such position

    @property
    def holds(self) -> bool:
        return self.found == self.expected


@dataclass(frozen=True)
class ChainReport:
    links: int
    head: ChainHead | None
    broken: ChainBreak | None
    # Finished logs at or below the head's place in the order without a link.
    unchained: list[uuid.UUID]
    checkpoint: CheckpointCheck | None

    @property
    def ok(self) -> bool:
        return self.broken is None and not self.unchained and (self.checkpoint is None or self.checkpoint.holds)


def chain_head() -> ChainHead | None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT position, hash, log_id, chained_at FROM ledger_chain ORDER BY position DESC LIMIT 1")
        row = cursor.fetchone()
    return None if row is None else ChainHead(row[0], bytes(row[1]).hex(), row[2], row[3])


def chain_link(*, log_id: uuid.UUID) -> tuple[int, str] | None:
    """(position, hex hash) of a log's link, None while it is not chained
    (what a statement shows for its last row)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT position, hash FROM ledger_chain WHERE log_id = %s", [log_id])
        row = cursor.fetchone()
    return None if row is None else (row[0], bytes(row[1]).hex())


def statement_link(log_id: uuid.UUID) -> ChainLink | None:
    """chain_link as a statement names its last movement's link
    (transfers.statements.register_chain_lookup, registered in
    reconciliation/apps.py)."""
    link = chain_link(log_id=log_id)
    return None if link is None else ChainLink(position=link[0], hash=link[1])


def parse_checkpoint(text: str) -> tuple[int, str]:
    """`POS:HASH` (a ledger.checkpoint's position and hash) -> (position,
    lower-case hex). ValueError when it is not one."""
    position, _, digest = text.strip().partition(":")
    digest = digest.lower()
    if not (
        position.isascii()
        and position.isdigit()
        and int(position) >= 1
        and len(digest) == 64
        and set(digest) <= set("0123456789abcdef")
    ):
        raise ValueError("a checkpoint is POSITION:HASH, the hash 64 hexadecimal digits")
    return int(position), digest


# Each link against the one before it, joined by position (not a window
# over the whole chain: no sort, and PostgreSQL's parallel workers share the
# rows), and only the broken ones sorted. MATERIALIZED: planned for all the
# rows (hash joins), not for the first one as ORDER BY ... LIMIT 1 would.
VERIFY_SQL = f"""
WITH checked AS MATERIALIZED (
SELECT position, log_id, broken FROM (
  SELECT c.position, c.log_id,
         CASE
           WHEN p.position IS NULL AND c.position <> 1 THEN 'missing_link'
           WHEN t.id IS NULL THEN 'deleted'
           WHEN {ORDER_TXID} <> c.txid
             OR (c.txid, c.log_id) <= (coalesce(p.txid, -1),
                                       coalesce(p.log_id, '00000000-0000-0000-0000-000000000000'::uuid))
             THEN 'reordered'
           WHEN c.hash <> sha256(coalesce(p.hash, %(genesis)s::bytea) || convert_to({CANONICAL_SQL}, 'UTF8'))
             THEN 'altered'
         END AS broken
    FROM ledger_chain c
    LEFT JOIN ledger_chain p ON p.position = c.position - 1
    LEFT JOIN transaction_logs t ON t.id = c.log_id
) AS links
WHERE broken IS NOT NULL
)
SELECT position, log_id, broken FROM checked ORDER BY position LIMIT 1
"""  # noqa: S608 (constants only)

UNCHAINED_SQL = f"""
SELECT t.id FROM transaction_logs t
 WHERE t.status <> 'PENDING'
   AND ({ORDER_TXID}, t.id) <= (%s, %s)
   AND NOT EXISTS (SELECT 1 FROM ledger_chain c WHERE c.log_id = t.id)
 ORDER BY {ORDER_TXID}, t.id
 LIMIT %s
"""  # noqa: S608 (constants only)

MAX_UNCHAINED_REPORTED = 100


def chain_verify(*, checkpoint: tuple[int, str] | None = None) -> ChainReport:
    """Recompute every link from its log, in one REPEATABLE READ, READ ONLY
    snapshot, and name the first that does not hold; list finished logs the
    chain skipped (up to MAX_UNCHAINED_REPORTED); and, given a published
    checkpoint (position, hex hash), say whether the link there still has
    that hash. Writes nothing. One pass over the chain and one over the logs:
    9.4 s per million on the 2-core dev machine under load (bench/HISTORY.md)."""
    own_transaction = not connection.in_atomic_block
    with transaction.atomic(), connection.cursor() as cursor:
        if own_transaction:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        cursor.execute(
            "SELECT position, hash, log_id, chained_at, txid FROM ledger_chain ORDER BY position DESC LIMIT 1"
        )
        row = cursor.fetchone()
        if row is None:
            return ChainReport(0, None, None, [], checkpoint and CheckpointCheck(*checkpoint, None))
        head = ChainHead(row[0], bytes(row[1]).hex(), row[2], row[3])
        cursor.execute("SELECT count(*) FROM ledger_chain")
        links = cursor.fetchone()[0]
        cursor.execute(VERIFY_SQL, {"genesis": GENESIS})
        found = cursor.fetchone()
        broken = None if found is None else ChainBreak(found[0], found[1], found[2])
        cursor.execute(UNCHAINED_SQL, [row[4], head.log_id, MAX_UNCHAINED_REPORTED])
        unchained = [log_id for (log_id,) in cursor.fetchall()]
        check = None
        if checkpoint is not None:
            cursor.execute("SELECT hash FROM ledger_chain WHERE position = %s", [checkpoint[0]])
            at = cursor.fetchone()
            check = CheckpointCheck(checkpoint[0], checkpoint[1], None if at is None else bytes(at[0]).hex())
    report = ChainReport(links, head, broken, unchained, check)
    if not report.ok:
        logger.error(
            "the ledger chain does not hold",
            extra={
                "event": "ledger_chain_verification",
                "broken_position": broken.position if broken else None,
                "broken_transaction_id": str(broken.log_id) if broken else None,
                "reason": broken.reason if broken else None,
                "unchained": len(unchained),
                "checkpoint_holds": check.holds if check else None,
            },
        )
    return report


def chain_discrepancies(report: ChainReport) -> list[Discrepancy]:
    """What a report found, as verify_ledger lists discrepancies (and the
    wallet_ledger_discrepancies metric counts them)."""
    found = []
    if report.broken is not None:
        b = report.broken
        found.append(Discrepancy("chain", f"position {b.position}", f"transaction {b.log_id}: {REASONS[b.reason]}"))
    found += [Discrepancy("chain", str(log_id), "finished but missing from the chain") for log_id in report.unchained]
    check = report.checkpoint
    if check is not None and not check.holds:
        has = f"the chain has {check.found}" if check.found else "the chain has no such position (links were removed)"
        found.append(
            Discrepancy("chain_checkpoint", f"position {check.position}", f"published {check.expected}, {has}")
        )
    return found


# --- publishing -----------------------------------------------------------------------


def checkpoint_data(head: ChainHead) -> dict:
    """A checkpoint as the ledger.checkpoint event and the log line carry it."""
    return {
        "position": head.position,
        "hash": head.hash,
        "checkpoint": f"{head.position}:{head.hash}",
        "transactionId": str(head.log_id),
        "chainedAt": head.chained_at.isoformat(),
        "publishedAt": timezone.now().isoformat(),
    }


def checkpoint_publish() -> dict | None:
    """Extend the chain, then publish its head outside the database: a log
    line (event ledger_checkpoint) always, and a ledger.checkpoint event to
    the API client named by LEDGER_CHECKPOINT_CLIENT when one is set (its
    webhook endpoint carries it away). None when the chain is empty."""
    chain_extend()
    head = chain_head()
    if head is None:
        return None
    data = checkpoint_data(head)
    logger.info(
        "ledger checkpoint %s",
        data["checkpoint"],
        extra={"event": "ledger_checkpoint", "position": head.position, "hash": head.hash},
    )
    username = settings.LEDGER_CHECKPOINT_CLIENT
    if username:
        client = get_user_model().objects.filter(username=username).first()
        if client is None:
            logger.error("LEDGER_CHECKPOINT_CLIENT %r is no user: the checkpoint went to the log only", username)
        else:
            with transaction.atomic():
                record_events(type=EventType.LEDGER_CHECKPOINT, data_by_client={client.pk: data})
    return data
