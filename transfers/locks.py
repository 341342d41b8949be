"""Every lock a money movement takes, written once so the order is too.

Order, always (docs/design.md, "The locks, and their order"): the Redis lock
on (client, idempotency key); then, inside the settle transaction, the row
of the unit being settled (a single movement's log, a batch's row, which
stands for its payouts, a hold's row, or a set of holds in primary-key
order; a correction's request row and, for a reversal, the original's log,
are taken by their callers); then the wallet rows in primary-key order (with
their tiers and daily totals, which only their holder writes); then, for
money that enters or leaves through a settlement or suspense wallet, the
exposure row of the customer wallet's owner; then, while a
CLIENT_DAILY_DEBIT_LIMIT names the currency, the paying client's daily
debits row. The last two are taken for the whole posting before it is
decided (lock_limit_rows: every exposure row, then every daily-debits row,
each set in key order); engine.decide is given them and takes no lock.

Row locks are FOR NO KEY UPDATE: inserting a log takes KEY SHARE locks on its
two wallets through the foreign keys (source first), which plain FOR UPDATE
would conflict with and, on a hot wallet, deadlock against the fixed order.
"""

import datetime
import enum
import functools
import hashlib
import json
import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

from django.conf import settings
from django.core.cache import cache
from django.db import DEFAULT_DB_ALIAS, connection
from redis.exceptions import LockError

from transfers.exceptions import IdempotencyKeyInUse
from transfers.models import (
    NO_TIER,
    ZERO,
    ClientDailyDebit,
    ClientExposure,
    Hold,
    LimitsToday,
    Tier,
    TransactionLog,
    TransferBatch,
    client_debits_key,
    exposure_change,
)
from wallet_project.db.base import fetch, from_row, in_model_order, statement_cursor
from wallet_project.exceptions import retry_after_header
from wallet_project.redis_health import REDIS_ERRORS
from wallet_project.throttling import ChargeLock
from wallets.models import TIER_CAPS, Wallet, WalletKind

logger = logging.getLogger(__name__)


class Unit(enum.StrEnum):
    """What a money request's idempotency key names, each in its own
    namespace: a single movement (transfer, deposit, withdrawal), a batch, a
    hold placed, or the end of a hold (a capture, a void, or a set of them)."""

    MOVEMENT = "movement"
    BATCH = "batch"
    HOLD = "hold"
    HOLD_END = "hold-end"


def unit_lock_key(unit: Unit, idempotency_key: str, *, hold_id: uuid.UUID | str | None = None) -> str:
    """The key a request's idempotency lock is taken on, the one place it is
    named: by the service that takes it (idempotency_lock) and by the door
    that takes it with the rate limit's charge (transfers.views.admit,
    charge_lock). Were the two to differ, the service would take a second
    lock in a second Redis round trip (transfers/tests/test_round_trips.py
    pins one per unit). A movement's is its key as it is; any other unit's is
    prefixed by the unit (and, ending one hold, by the hold's id): a newline
    cannot be in a key (they are printable), so no two units' locks meet."""
    if unit == Unit.MOVEMENT:
        return idempotency_key
    if hold_id is not None:
        return f"{unit}\n{hold_id}\n{idempotency_key}"
    return f"{unit}\n{idempotency_key}"


def idempotency_lock_name(client_id: int, idempotency_key: str) -> str:
    # Hashed: a key may hold any printable character, a Redis name should not.
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()
    return f"transfer-lock:{client_id}:{digest}"


class IdempotencyLockHandle:
    """What idempotency_lock yields, the Redis lock on one (client, key)
    (nothing to do with a hold's held money): released when the block
    exits, unless the holder says the key no longer needs it."""

    def __init__(self):
        self.release_on_exit = True

    def leave_to_expire(self) -> None:
        """The key's log is finished: every later request with the key is
        answered from it (protocol layer 1) before it would look at the lock,
        so releasing it would only cost a Redis round trip. It expires after
        TRANSFER_LOCK_TIMEOUT."""
        self.release_on_exit = False


# The idempotency lock a first-time money request's charge took for it
# (taken_with_charge), until the service's idempotency_lock takes it over.
_TAKEN_WITH_CHARGE: ContextVar["_TakenLock | None"] = ContextVar("idempotency_lock_taken_with_charge", default=None)


class _TakenLock:
    def __init__(self, lock: ChargeLock):
        self.lock, self.claimed = lock, False


def charge_lock(client_id: int, idempotency_key: str) -> ChargeLock:
    """The idempotency lock idempotency_lock(client_id, idempotency_key) would
    take, for the rate limit's script to take with the charge
    (wallet_project/throttling.py): same name, a token of our own, the same
    lifetime."""
    return ChargeLock(
        cache.make_key(idempotency_lock_name(client_id, idempotency_key)),
        uuid.uuid4().hex,
        int(settings.TRANSFER_LOCK_TIMEOUT * 1000),
    )


@contextmanager
def taken_with_charge(lock: ChargeLock | None) -> Iterator[None]:
    """The block in which the service answers a request whose charge took
    `lock` (None: it took none). A first-time money request costs one Redis
    round trip instead of two: idempotency_lock finds the lock already taken
    here and takes it over (its release, or leave_to_expire, as ever). A
    lock nobody took over (the service refused the request before its lock:
    a reused key, an unknown wallet...) is released when the block exits,
    so that the key is free again at once. Measured (bench/instructions.py,
    n=40, two runs of this beside main on one machine): a first-time
    transfer 5,415,402 -> 5,174,755 and 5,213,929 -> 5,060,186 instructions
    (-3 to -4 %; 150 fewer Python calls under bench/where.py); a replay,
    which takes no lock, within the runs' noise (+1 %, +4 %; 27 more calls,
    1 %: the door's context managers)."""
    if lock is None:
        yield
        return
    taken = _TakenLock(lock)
    reset = _TAKEN_WITH_CHARGE.set(taken)
    try:
        yield
    finally:
        _TAKEN_WITH_CHARGE.reset(reset)
        if not taken.claimed:
            _release_token(lock.name, lock.token)


def _redis_lock(name: str, token: str | None = None):
    """redis-py's lock on `name` (the cache's full key), without a round
    trip; holding `token` (a lock the charge took) if given."""
    lock = cache.client.get_client(write=True).lock(name, timeout=settings.TRANSFER_LOCK_TIMEOUT, blocking=False)
    if token is not None:
        lock.local.token = token.encode()
    return lock


@contextmanager
def idempotency_lock(client_id: int, idempotency_key: str) -> Iterator[IdempotencyLockHandle]:
    """Keep concurrent duplicates of one request off the database.

    Raises IdempotencyKeyInUse when another request holds the key. When Redis
    cannot be reached the lock is skipped with a warning: correctness never
    depends on it (the unique constraint and the row locks do), it only spares
    PostgreSQL the pile-up of a double-tap. Released after the caller's work
    has committed, since it wraps that work (or left to expire: IdempotencyLockHandle).
    Taken over without a round trip when the request's charge took it
    (taken_with_charge).
    """
    name = cache.make_key(idempotency_lock_name(client_id, idempotency_key))
    handle = IdempotencyLockHandle()
    taken = _TAKEN_WITH_CHARGE.get()
    if taken is not None and not taken.claimed and taken.lock.name == name:
        taken.claimed = True
        # The redis-py lock object only if it is released: a finished
        # transfer leaves it to expire, and never needs one.
        release = functools.partial(_release_token, name, taken.lock.token)
    else:
        lock = _redis_lock(name)
        release = functools.partial(_release, lock)
        try:
            # A random token of our own: redis-py's default, uuid1, asks the uuidd
            # daemon over a socket first (three system calls on every transfer).
            acquired = lock.acquire(blocking=False, token=uuid.uuid4().hex)
        except REDIS_ERRORS as exc:
            logger.warning("transfer lock skipped, Redis unavailable: %s", exc)
            yield handle
            return
        if not acquired:
            raise IdempotencyKeyInUse(headers=retry_after_header())
    try:
        yield handle
    finally:
        if handle.release_on_exit:
            release()


def _release_token(name: str, token: str) -> None:
    _release(_redis_lock(name, token))


def _release(lock) -> None:
    try:
        lock.release()
    except LockError:
        # Expired while we worked (the timeout is far above any transfer);
        # harmless: the database already decided.
        logger.warning("transfer lock had expired before release")
    except REDIS_ERRORS as exc:
        logger.warning("transfer lock not released, Redis unavailable: %s", exc)


# Only what settling and reversing read: these run on every transfer, and
# decoding the rest (metadata JSON, timestamps) is CPU no decision needs.
LOCKED_LOG_FIELDS = (
    "id", "client_id", "type", "status", "source_wallet_id", "destination_wallet_id", "amount", "currency",
    "reference", "error_code", "error_message", "reversal_of_id", "batch_id",
)  # fmt: skip
# owner_id: the recipients of the transaction's events; held: what open holds
# reserve (the available balance is balance - held).
LOCKED_WALLET_FIELDS = (
    "id", "kind", "currency", "balance", "held", "is_active", "owner_id", "tier_id", "post_no_debit",
    "post_no_credit",
)  # fmt: skip


def _select_for_update(model, fields, where: str, *, skip_locked: bool = False, order_by: str = "") -> str:
    """The one way a row is locked here: a SELECT of `fields` (columns in the
    model's order, as Model.from_db reads them) FOR NO KEY UPDATE of the
    model's table, as Django's select_for_update(no_key=True, of=("self",))
    writes it. Plain SQL built once from the model: compiling the queryset
    on every transfer cost more CPU than PostgreSQL spends running it."""
    columns = ", ".join(model._meta.get_field(name).column for name in fields)
    table = model._meta.db_table
    order = f" ORDER BY {order_by}" if order_by else ""
    skip = " SKIP LOCKED" if skip_locked else ""
    return f'SELECT {columns} FROM {table} WHERE {where}{order} FOR NO KEY UPDATE OF "{table}"{skip}'  # noqa: S608 (model names)


def _locked_rows(model, fields: list[str], sql: str, params) -> list:
    return [from_row(model, DEFAULT_DB_ALIAS, fields, row) for row in fetch(connection, sql, params)]


class RowLock:
    """One row of `model` by primary key, locked FOR NO KEY UPDATE (waiting,
    or with skip_locked passing over a row another transaction holds): the
    log of a transfer, the row of a batch, a hold."""

    def __init__(self, model, fields: tuple[str, ...]):
        self.model = model
        self.fields = in_model_order(model, fields)
        self._sql = {
            skip_locked: _select_for_update(model, self.fields, "id = %s", skip_locked=skip_locked)
            for skip_locked in (False, True)
        }

    def __call__(self, pk: uuid.UUID, *, skip_locked: bool):
        """The locked row; None if skip_locked and another transaction holds
        it; model.DoesNotExist if there is no such row to wait for."""
        rows = _locked_rows(self.model, self.fields, self._sql[skip_locked], [pk])
        if not rows and not skip_locked:
            raise self.model.DoesNotExist(pk)
        return rows[0] if rows else None


_log_lock = RowLock(TransactionLog, LOCKED_LOG_FIELDS)
_WALLET_FIELDS = in_model_order(Wallet, LOCKED_WALLET_FIELDS)
# The wallets, with each one's tier and totals of the business day, in one
# statement (docs/limits.md, "Under the locks"). Only the wallet rows are
# locked (OF w: the outer joins' nullable sides cannot be). A wallet row
# that another transaction changed while this one waited is read again
# when the lock is granted, but the joined rows are not: they are as the
# statement first saw them. The wallet's xmin (the transaction that last
# wrote it) tells: every movement that counts writes the wallet and its
# totals in one statement, so totals whose xmin differs may be stale, and
# are read again (lock_wallets); so is a tier that is not the wallet's.
_TIER_COLUMNS = ("id", "name", *TIER_CAPS)


def _lock_wallets_where(condition: str) -> str:
    """The wallets' statement for the wallets `condition` names (its only
    parameter before the condition's own: the business day)."""
    return (
        f"SELECT {', '.join('w.' + Wallet._meta.get_field(name).column for name in _WALLET_FIELDS)}, "  # noqa: S608 (model names)
        f"w.xmin::text, {', '.join('t.' + column for column in _TIER_COLUMNS)}, d.debits, d.credits, d.xmin::text "
        "FROM wallets w LEFT JOIN tier_profiles t ON t.id = w.tier_id "
        "LEFT JOIN wallet_daily_totals d ON d.wallet_id = w.id AND d.day = %s "
        f"WHERE {condition} ORDER BY w.id FOR NO KEY UPDATE OF w"
    )


_LOCK_WALLETS = _lock_wallets_where("w.id = ANY(%s)")
# A single movement's log and, while it is PENDING and no batch's (a payout
# is settled only by its batch, whose row comes first), its two wallets: the
# two statements lock_log and lock_wallets would run, in one round trip and
# in the same order. The log's CTE is read (and its row locked) before the
# wallets' subquery runs for it, which sorts them by id before locking
# them. A log that is not PENDING comes back alone, its wallets untouched.
# One round trip fewer per transfer: bench/HISTORY.md ("2026-12-06 09:30").
_LOG_WALLETS = "w.id IN (l.source_wallet_id, l.destination_wallet_id) AND l.status = 'PENDING' AND l.batch_id IS NULL"
_LOCK_LOG_AND_WALLETS = {
    skip_locked: (
        f"WITH l AS ({_select_for_update(TransactionLog, _log_lock.fields, 'id = %s', skip_locked=skip_locked)}) "  # noqa: S608 (model names)
        f"SELECT l.*, x.* FROM l LEFT JOIN LATERAL ({_lock_wallets_where(_LOG_WALLETS)}) x ON true"
    )
    for skip_locked in (False, True)
}
_READ_TIERS = f"SELECT {', '.join(_TIER_COLUMNS)} FROM tier_profiles WHERE id = ANY(%s)"  # noqa: S608 (model names)
_READ_TOTALS = "SELECT wallet_id, debits, credits FROM wallet_daily_totals WHERE wallet_id = ANY(%s) AND day = %s"


def lock_log(log_id: uuid.UUID, *, skip_locked: bool = False) -> TransactionLog | None:
    """The log row, locked; None if skip_locked and another transaction holds it."""
    return _log_lock(log_id, skip_locked=skip_locked)


def lock_log_and_wallets(
    log_id: uuid.UUID, *, day: datetime.date, skip_locked: bool = False
) -> tuple[TransactionLog | None, dict[uuid.UUID, Wallet]]:
    """lock_log, then, for a PENDING log of no batch, lock_wallets of its
    source and destination, in one statement (_LOCK_LOG_AND_WALLETS): the
    log and its wallets by id, or the log and no wallets when it is not
    PENDING or is a batch's payout. (None, {}) if skip_locked and another
    transaction holds the log; TransactionLog.DoesNotExist if there is no
    such log."""
    rows = fetch(connection, _LOCK_LOG_AND_WALLETS[skip_locked], [log_id, day])
    if not rows:
        if skip_locked:
            return None, {}
        raise TransactionLog.DoesNotExist(log_id)
    width = len(_log_lock.fields)
    log = from_row(TransactionLog, DEFAULT_DB_ALIAS, _log_lock.fields, rows[0][:width])
    # Without wallets, the LEFT JOIN's one row has NULLs for them (a wallet's id never is).
    return log, _locked_wallets([row[width:] for row in rows if row[width] is not None], day)


def lock_wallets(*wallet_ids: uuid.UUID, day: datetime.date) -> dict[uuid.UUID, Wallet]:
    """Wallets by id (a transfer's two, a batch's source and every
    destination), locked in one statement in primary-key order: the one
    order every caller uses, so two movements on the same wallets wait for
    each other, never deadlock. Each customer wallet carries `.limits_today`
    (transfers.models.LimitsToday): its tier and its totals of `day` (a
    business day), as they stand under the lock."""
    return _locked_wallets(fetch(connection, _LOCK_WALLETS, [day, list(set(wallet_ids))]), day)


def _locked_wallets(rows: list[tuple], day: datetime.date) -> dict[uuid.UUID, Wallet]:
    """The wallets of _lock_wallets_where's rows, each customer wallet with
    its `.limits_today`, its tier or totals read again where they may be stale."""
    wallets: dict[uuid.UUID, Wallet] = {}
    stale_tiers: dict[int, list[Wallet]] = {}
    stale_totals: list[Wallet] = []
    width = len(_WALLET_FIELDS)
    for row in rows:
        wallet = from_row(Wallet, DEFAULT_DB_ALIAS, _WALLET_FIELDS, row[:width])
        wallets[wallet.pk] = wallet
        if wallet.kind != WalletKind.CUSTOMER:
            continue
        wallet_xmin, tier_row = row[width], row[width + 1 : width + 1 + len(_TIER_COLUMNS)]
        debits, credits, totals_xmin = row[width + 1 + len(_TIER_COLUMNS) :]
        tier = NO_TIER if tier_row[0] is None else Tier(*tier_row)
        wallet.limits_today = LimitsToday(tier, debits or ZERO, credits or ZERO)
        if wallet.tier_id != tier.id:
            # Its tier changed while this transaction waited for the row.
            stale_tiers.setdefault(wallet.tier_id, []).append(wallet)
        # Without a tier (NO_TIER) nothing reads the totals, and the settle
        # statement adds to whatever row there is.
        if wallet.tier_id is not None and totals_xmin != wallet_xmin:
            stale_totals.append(wallet)
    if stale_tiers:
        for tier_row in fetch(connection, _READ_TIERS, [list(stale_tiers)]):
            for wallet in stale_tiers[tier_row[0]]:
                wallet.limits_today.tier = Tier(*tier_row)
    if stale_totals:
        # A statement of its own sees every commit before it; the totals
        # cannot change now: every writer holds the wallet's row lock.
        rows = fetch(connection, _READ_TOTALS, [[wallet.pk for wallet in stale_totals], day])
        fresh = {wallet_id: (debits, credits) for wallet_id, debits, credits in rows}
        for wallet in stale_totals:
            wallet.limits_today.debits, wallet.limits_today.credits = fresh.get(wallet.pk, (ZERO, ZERO))
    return wallets


# By (client, currency), the row's natural key.
_EXPOSURE_FIELDS = in_model_order(ClientExposure, ["id", "client_id", "currency", "amount"])
_LOCK_EXPOSURE = _select_for_update(ClientExposure, _EXPOSURE_FIELDS, "client_id = %s AND currency = %s")
_FIRST_EXPOSURE = """
INSERT INTO client_exposures (client_id, currency, amount, updated_at) VALUES (%s, %s, 0, now())
ON CONFLICT (client_id, currency) DO NOTHING
"""


def lock_exposure(client_id: int, currency: str) -> ClientExposure:
    """The exposure row of (client, currency), locked, made at zero on the
    client's first deposit or withdrawal in the currency. Taken after the
    wallets: every caller holds the currency's settlement or suspense wallet
    (a manual adjustment), so two callers for one client and currency
    mostly wait for each other there; a deposit and an adjustment meet here
    instead, the second insert waiting for the first (ON CONFLICT)."""
    cursor = statement_cursor(connection)
    cursor.execute(_LOCK_EXPOSURE, [client_id, currency])
    row = cursor.fetchone()
    if row is None:
        cursor.execute(_FIRST_EXPOSURE, [client_id, currency])
        cursor.execute(_LOCK_EXPOSURE, [client_id, currency])
        row = cursor.fetchone()
    return from_row(ClientExposure, DEFAULT_DB_ALIAS, _EXPOSURE_FIELDS, row)


_CLIENT_DEBITS_FIELDS = in_model_order(ClientDailyDebit, ["id", "client_id", "currency", "day", "amount"])
_LOCK_CLIENT_DEBITS = _select_for_update(
    ClientDailyDebit, _CLIENT_DEBITS_FIELDS, "client_id = %s AND currency = %s AND day = %s"
)
_FIRST_CLIENT_DEBITS = """
INSERT INTO client_daily_debits (client_id, currency, day, amount) VALUES (%s, %s, %s, 0)
ON CONFLICT (client_id, currency, day) DO NOTHING
"""


def lock_client_debits(client_id: int, currency: str, day: datetime.date) -> ClientDailyDebit:
    """The row of what `client`'s wallets sent in `currency` on business day
    `day`, locked (made at zero on the first debit of the day): taken after
    the wallets and the exposure row, only while CLIENT_DAILY_DEBIT_LIMIT
    names the currency. It serialises the client's debits in the currency
    for the rest of their transactions: the price of an exact cap
    (docs/limits.md, "Per-client caps")."""
    cursor = statement_cursor(connection)
    params = [client_id, currency, day]
    cursor.execute(_LOCK_CLIENT_DEBITS, params)
    row = cursor.fetchone()
    if row is None:
        cursor.execute(_FIRST_CLIENT_DEBITS, params)
        cursor.execute(_LOCK_CLIENT_DEBITS, params)
        row = cursor.fetchone()
    return from_row(ClientDailyDebit, DEFAULT_DB_ALIAS, _CLIENT_DEBITS_FIELDS, row)


@dataclass
class LimitRows:
    """The exposure and client daily-debits rows a posting's movements
    change, locked, by (client, currency): what `engine.decide` is given."""

    exposures: dict[tuple[int, str], ClientExposure] = field(default_factory=dict)
    client_debits: dict[tuple[int, str], ClientDailyDebit] = field(default_factory=dict)


def lock_limit_rows(
    movements, wallets: dict[uuid.UUID, Wallet], *, day: datetime.date, exposures: bool = True, tiers: bool = True
) -> LimitRows:
    """The exposure and daily-debits locks (docs/design.md, "The locks, and their
    order"), after the wallets (`wallets`, locked, by id): every exposure
    row the movements change (models.exposure_change), then, with `tiers`,
    every paying client's daily-debits row of `day` (models.client_debits_key),
    each set in key order, each row once. `movements`: the logs (or a hold)
    about to be decided, with their source and destination wallet ids.
    Without `exposures` (a hold's placement) no exposure row."""
    exposure_keys, debit_keys = set(), set()
    for movement in movements:
        payer, payee = wallets[movement.source_wallet_id], wallets[movement.destination_wallet_id]
        change = exposure_change(payer, payee, movement.amount) if exposures else None
        if change is not None:
            exposure_keys.add(change[0])
        key = client_debits_key(payer) if tiers else None
        if key is not None:
            debit_keys.add(key)
    rows = LimitRows()
    for key in sorted(exposure_keys):
        rows.exposures[key] = lock_exposure(*key)
    for key in sorted(debit_keys):
        rows.client_debits[key] = lock_client_debits(*key, day)
    return rows


# --- batches: the batch row, then the source and every destination at once ----------


LOCKED_BATCH_FIELDS = ("id", "client_id", "source_wallet_id", "atomic", "status", "rejected_payouts")

_batch_lock = RowLock(TransferBatch, LOCKED_BATCH_FIELDS)


def lock_batch(batch_id: uuid.UUID, *, skip_locked: bool = False) -> TransferBatch | None:
    """The batch row, locked (it stands for its PENDING payouts, which only
    its holder settles); None if skip_locked and another transaction holds it."""
    batch = _batch_lock(batch_id, skip_locked=skip_locked)
    if batch is None:
        return None
    # Read without Django's field converters, and Django has psycopg hand
    # jsonb over as text.
    if isinstance(batch.rejected_payouts, str):
        batch.rejected_payouts = json.loads(batch.rejected_payouts)
    return batch


# --- holds: the hold row, then its wallets --------------------------------------------


LOCKED_HOLD_FIELDS = (
    "id", "client_id", "idempotency_key", "request_fingerprint", "source_wallet_id", "destination_wallet_id",
    "amount", "currency", "status", "expires_at", "metadata", "error_code", "error_message", "captured_amount",
    "transaction_id", "end_key", "end_fingerprint", "extend_key", "extend_fingerprint", "end_note", "created_at",
    "updated_at", "ended_at",
)  # fmt: skip

_hold_lock = RowLock(Hold, LOCKED_HOLD_FIELDS)


def _with_metadata(hold: Hold) -> Hold:
    """`hold` with its metadata as JSON values: read without Django's field
    converters, and Django has psycopg hand jsonb over as text."""
    if isinstance(hold.metadata, str):
        hold.metadata = json.loads(hold.metadata)
    return hold


def lock_hold(hold_id: uuid.UUID) -> Hold:
    """The hold row, locked (before any wallet, as a log's): every end,
    extension and expiry of one hold waits here for the one before it.
    Hold.DoesNotExist if there is none."""
    return _with_metadata(_hold_lock(hold_id, skip_locked=False))


_LOCK_HOLDS = _select_for_update(Hold, in_model_order(Hold, LOCKED_HOLD_FIELDS), "id = ANY(%s)", order_by="id")


def lock_holds(hold_ids: list[uuid.UUID]) -> list[Hold]:
    """Holds by id, locked in one statement in primary-key order (a set
    captured or voided at once): two sets that share holds wait for each
    other, never deadlock. Missing ids are simply not returned."""
    holds = _locked_rows(Hold, in_model_order(Hold, LOCKED_HOLD_FIELDS), _LOCK_HOLDS, [list(set(hold_ids))])
    return [_with_metadata(hold) for hold in holds]


_LOCK_DUE_HOLDS = _select_for_update(
    Hold,
    in_model_order(Hold, LOCKED_HOLD_FIELDS),
    "status = 'OPEN' AND expires_at <= %s",
    skip_locked=True,
    # The LIMIT rides on order_by (_select_for_update has no limit of its
    # own): it comes before FOR ... SKIP LOCKED, as SQL wants it, and
    # PostgreSQL counts only the rows it locked toward it.
    order_by="expires_at LIMIT %s",
)


def lock_due_holds(now, limit: int) -> list[Hold]:
    """Up to `limit` OPEN holds whose expiry has come (soonest first, on the
    partial index idx_holds_open_expiry), locked, passing over any another
    transaction holds (a capture in flight, another expiry worker): that one
    ends it, or the next tick does."""
    holds = _locked_rows(Hold, in_model_order(Hold, LOCKED_HOLD_FIELDS), _LOCK_DUE_HOLDS, [now, limit])
    return [_with_metadata(hold) for hold in holds]
