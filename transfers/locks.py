"""Every lock a money movement takes, written once so the order is too.

Order, always: the Redis lock on (client, idempotency key); then, inside the
settle transaction, the log row; then the wallet rows in primary-key order;
then, for money that enters or leaves through a settlement wallet, the
exposure row of the customer wallet's owner.

Row locks are FOR NO KEY UPDATE: inserting a log takes KEY SHARE locks on its
two wallets through the foreign keys (source first), which plain FOR UPDATE
would conflict with and, on a hot wallet, deadlock against the fixed order.
"""

import hashlib
import json
import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from redis.exceptions import LockError

from transfers.exceptions import IdempotencyKeyInUse
from transfers.models import ClientExposure, Hold, TransactionLog, TransferBatch
from wallet_project.db import in_model_order, statement_cursor
from wallet_project.exceptions import retry_after_header
from wallet_project.redis_health import REDIS_ERRORS
from wallets.models import Wallet

logger = logging.getLogger(__name__)


def idempotency_lock_name(client_id: int, idempotency_key: str) -> str:
    # Hashed: a key may hold any printable character, a Redis name should not.
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()
    return f"transfer-lock:{client_id}:{digest}"


class HeldLock:
    """What idempotency_lock yields: released when the block exits, unless
    the holder says the key no longer needs it."""

    def __init__(self):
        self.release_on_exit = True

    def leave_to_expire(self) -> None:
        """The key's log is finished: every later request with the key is
        answered from it (protocol step 1) before it would look at the lock,
        so releasing it would only cost a Redis round trip. It expires after
        TRANSFER_LOCK_TIMEOUT."""
        self.release_on_exit = False


@contextmanager
def idempotency_lock(client_id: int, idempotency_key: str) -> Iterator[HeldLock]:
    """Keep concurrent duplicates of one request off the database.

    Raises IdempotencyKeyInUse when another request holds the key. When Redis
    cannot be reached the lock is skipped with a warning: correctness never
    depends on it (the unique constraint and the row locks do), it only spares
    PostgreSQL the pile-up of a double-tap. Released after the caller's work
    has committed, since it wraps that work (or left to expire: HeldLock).
    """
    lock = cache.lock(
        idempotency_lock_name(client_id, idempotency_key),
        timeout=settings.TRANSFER_LOCK_TIMEOUT,
        blocking=False,
    )
    held = HeldLock()
    try:
        # A random token of our own: redis-py's default, uuid1, asks the uuidd
        # daemon over a socket first (three system calls on every transfer).
        acquired = lock.acquire(blocking=False, token=uuid.uuid4().hex)
    except REDIS_ERRORS as exc:
        logger.warning("transfer lock skipped, Redis unavailable: %s", exc)
        yield held
        return
    if not acquired:
        raise IdempotencyKeyInUse(headers=retry_after_header())
    try:
        yield held
    finally:
        if held.release_on_exit:
            _release(lock)


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
LOCKED_WALLET_FIELDS = ("id", "kind", "currency", "balance", "held", "is_active", "owner_id")


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
    cursor = statement_cursor(connection)
    cursor.execute(sql, params)
    return [model.from_db(connection.alias, fields, row) for row in cursor.fetchall()]


class RowLock:
    """One row of `model` by primary key, locked FOR NO KEY UPDATE (waiting,
    or with skip_locked passing over a row another transaction holds): the
    log of a transfer, the row of a batch."""

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
_LOCK_WALLETS = _select_for_update(Wallet, _WALLET_FIELDS, "id = ANY(%s)", order_by="id")


def lock_log(log_id: uuid.UUID, *, skip_locked: bool = False) -> TransactionLog | None:
    """The log row, locked; None if skip_locked and another transaction holds it."""
    return _log_lock(log_id, skip_locked=skip_locked)


def lock_wallets(*wallet_ids: uuid.UUID) -> dict[uuid.UUID, Wallet]:
    """Wallets by id (a transfer's two, a batch's source and every
    destination), locked in one statement in primary-key order: the one
    order every caller uses, so two movements on the same wallets wait for
    each other, never deadlock."""
    wallets = _locked_rows(Wallet, _WALLET_FIELDS, _LOCK_WALLETS, [list(set(wallet_ids))])
    return {wallet.pk: wallet for wallet in wallets}


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
    return ClientExposure.from_db(connection.alias, _EXPOSURE_FIELDS, row)


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


def lock_hold(hold_id: uuid.UUID) -> Hold:
    """The hold row, locked (before any wallet, as a log's): every end,
    extension and expiry of one hold waits here for the one before it.
    Hold.DoesNotExist if there is none."""
    hold = _hold_lock(hold_id, skip_locked=False)
    if isinstance(hold.metadata, str):
        hold.metadata = json.loads(hold.metadata)
    return hold


_LOCK_HOLDS = _select_for_update(Hold, in_model_order(Hold, LOCKED_HOLD_FIELDS), "id = ANY(%s)", order_by="id")


def lock_holds(hold_ids: list[uuid.UUID]) -> list[Hold]:
    """Holds by id, locked in one statement in primary-key order (a set
    captured or voided at once): two sets that share holds wait for each
    other, never deadlock. Missing ids are simply not returned."""
    holds = _locked_rows(Hold, in_model_order(Hold, LOCKED_HOLD_FIELDS), _LOCK_HOLDS, [list(set(hold_ids))])
    for hold in holds:
        if isinstance(hold.metadata, str):
            hold.metadata = json.loads(hold.metadata)
    return holds


_LOCK_DUE_HOLDS = _select_for_update(
    Hold,
    in_model_order(Hold, LOCKED_HOLD_FIELDS),
    "status = 'OPEN' AND expires_at <= %s",
    skip_locked=True,
    # PostgreSQL counts only the rows it locked toward the LIMIT.
    order_by="expires_at LIMIT %s",
)


def lock_due_holds(now, limit: int) -> list[Hold]:
    """Up to `limit` OPEN holds whose expiry has come (soonest first, on the
    partial index idx_holds_open_expiry), locked, passing over any another
    transaction holds (a capture in flight, another expiry worker): that one
    ends it, or the next tick does."""
    holds = _locked_rows(Hold, in_model_order(Hold, LOCKED_HOLD_FIELDS), _LOCK_DUE_HOLDS, [now, limit])
    for hold in holds:
        if isinstance(hold.metadata, str):
            hold.metadata = json.loads(hold.metadata)
    return holds
