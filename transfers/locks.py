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
from transfers.models import ClientExposure, TransactionLog, TransferBatch
from wallet_project.db import in_model_order
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
# owner_id: the recipients of the transaction's events.
LOCKED_WALLET_FIELDS = ("id", "kind", "currency", "balance", "is_active", "owner_id")


class CompiledLock:
    """A row-lock queryset, compiled by Django once per process.

    The querysets below are the design's `select_for_update(no_key=True)`;
    compiling one costs more CPU than PostgreSQL spends running it, and it
    runs on every transfer. So Django compiles it on first use (inside a
    transaction, as select_for_update requires) with placeholder ids, and each
    call executes that same SQL with its own ids, building model instances from
    the rows as the queryset would.
    """

    def __init__(self, model, fields: tuple[str, ...], queryset_for):
        self.model = model
        self.fields = in_model_order(model, fields)
        self.queryset_for = queryset_for
        self._sql: str | None = None

    def __call__(self, *ids: uuid.UUID) -> list:
        if self._sql is None:
            queryset = self.queryset_for(*[uuid.UUID(int=n) for n in range(len(ids))])
            self._sql, _ = queryset.only(*self.fields).query.get_compiler(using=connection.alias).as_sql()
        cursor = connection.statement_cursor()
        cursor.execute(self._sql, ids)
        return [self.model.from_db(connection.alias, self.fields, row) for row in cursor.fetchall()]


class RowLock:
    """One row of `model` by primary key, locked FOR NO KEY UPDATE (waiting,
    or with skip_locked passing over a row another transaction holds): the
    log of a transfer, the row of a batch."""

    def __init__(self, model, fields: tuple[str, ...]):
        self.model = model
        # order_by(): the primary key selects one row, no ORDER BY needed.
        self._locks = {
            skip_locked: CompiledLock(
                model,
                fields,
                lambda pk, skip_locked=skip_locked: (
                    model.objects.select_for_update(no_key=True, skip_locked=skip_locked, of=("self",))
                    .filter(pk=pk)
                    .order_by()
                ),
            )
            for skip_locked in (False, True)
        }

    def __call__(self, pk: uuid.UUID, *, skip_locked: bool):
        """The locked row; None if skip_locked and another transaction holds
        it; model.DoesNotExist if there is no such row to wait for."""
        rows = self._locks[skip_locked](pk)
        if not rows and not skip_locked:
            raise self.model.DoesNotExist(pk)
        return rows[0] if rows else None


_log_lock = RowLock(TransactionLog, LOCKED_LOG_FIELDS)
_wallet_locks = CompiledLock(
    Wallet,
    LOCKED_WALLET_FIELDS,
    lambda a, b: Wallet.objects.select_for_update(no_key=True, of=("self",)).filter(pk__in=[a, b]).order_by("pk"),
)


def lock_log(log_id: uuid.UUID, *, skip_locked: bool = False) -> TransactionLog | None:
    """The log row, locked; None if skip_locked and another transaction holds it."""
    return _log_lock(log_id, skip_locked=skip_locked)


def lock_wallets(source_id: uuid.UUID, destination_id: uuid.UUID) -> dict[uuid.UUID, Wallet]:
    """Both wallets, locked in primary-key order (the one order every caller uses)."""
    return {wallet.pk: wallet for wallet in _wallet_locks(source_id, destination_id)}


# By (client, currency), the row's natural key, so written as SQL: the compiled
# querysets above take primary keys only.
_EXPOSURE_FIELDS = in_model_order(ClientExposure, ["id", "client_id", "currency", "amount"])
_LOCK_EXPOSURE = (
    f"SELECT {', '.join(_EXPOSURE_FIELDS)} FROM client_exposures "  # noqa: S608 (model field names)
    "WHERE client_id = %s AND currency = %s FOR NO KEY UPDATE"
)
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
    cursor = connection.statement_cursor()
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
    # CompiledLock builds the instance without Django's field converters, and
    # Django has psycopg hand jsonb over as text.
    if isinstance(batch.rejected_payouts, str):
        batch.rejected_payouts = json.loads(batch.rejected_payouts)
    return batch


def lock_wallet_set(wallet_ids) -> dict[uuid.UUID, Wallet]:
    """Any number of wallets (a batch's source and destinations), locked in one
    statement in primary-key order, the order lock_wallets uses: a batch and a
    single transfer on the same wallets wait for each other, never deadlock."""
    locked = (
        Wallet.objects.select_for_update(no_key=True, of=("self",))
        .filter(pk__in=set(wallet_ids))
        .order_by("pk")
        .only(*LOCKED_WALLET_FIELDS)
    )
    return {wallet.pk: wallet for wallet in locked}
