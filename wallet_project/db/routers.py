"""Which database a read goes to: the one place that decides.

Every read goes to the primary unless it runs inside lag_tolerant_read(),
which the views call for the reads the contract lets lag a little (docs/operations.md,
"PgBouncer and the read replica"): a wallet's history, the lookup of a finished transaction
by key or reference, the admin's lists. Those go to the streaming replica
named by DATABASE_REPLICA_URL, while it is up and no further behind than
DATABASE_REPLICA_MAX_LAG_SECONDS; otherwise to the primary, and
`wallet_replica_reads_total{served_by="primary"}` says why. Writes, and
anything that decides whether money moves (the idempotency lookup before a
write, the row locks, verify_ledger, authentication), read the primary: they
never run inside lag_tolerant_read, and the protocol's own SQL uses the
primary's connection directly.
"""

import logging
import time
from collections.abc import Callable
from contextvars import ContextVar
from typing import TypeVar

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist
from django.db import DEFAULT_DB_ALIAS, Error, connections
from django.http import Http404
from prometheus_client import Counter, Gauge
from rest_framework.exceptions import APIException

logger = logging.getLogger(__name__)

REPLICA = "replica"

REPLICA_READS = Counter(
    "wallet_replica_reads",
    "Lag-tolerant reads, by the database that served them: the replica, or the primary with the reason "
    "(replica_down, replica_lagging: beyond DATABASE_REPLICA_MAX_LAG_SECONDS, replica_failed: an error "
    "mid-read, not_on_replica: the replica did not have it yet, replica_unchecked: the process's first check "
    "was still running).",
    ["served_by", "reason"],
)
REPLICA_LAG = Gauge(
    "wallet_replica_lag_seconds",
    "How far the replica's replay was behind at this process's last check.",
    multiprocess_mode="livemax",
)

# Replay lag as the standby sees it: nothing received but not replayed is no
# lag, however long ago the last transaction was (an idle primary); else the
# age of the last replayed transaction. NULL when the server is a primary.
_LAG_SQL = """
SELECT CASE WHEN NOT pg_is_in_recovery() OR pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
            ELSE COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()), 'Infinity') END
"""

# Inside lag_tolerant_read, with the replica found fit.
_on_replica: ContextVar[bool] = ContextVar("on_replica", default=False)


class _ReplicaHealth:
    """This process's view of the replica, checked at most once per
    DATABASE_REPLICA_CHECK_SECONDS (a round trip to the replica)."""

    checked_at = float("-inf")
    # "" when fit to read from. Until this process's first check has answered
    # (other threads may ask meanwhile), the primary.
    reason = "replica_unchecked"

    def fit(self) -> str:
        """'' when reads may go to the replica, else the reason they may not."""
        now = time.monotonic()
        if now - self.checked_at >= settings.DATABASE_REPLICA_CHECK_SECONDS:
            # Marked first: other threads keep the last answer meanwhile.
            self.checked_at = now
            self.reason = self._check()
        return self.reason

    def _check(self) -> str:
        try:
            with connections[REPLICA].cursor() as cursor:
                cursor.execute(_LAG_SQL)
                (lag,) = cursor.fetchone()
        except Error as exc:
            logger.warning("replica unavailable, reading from the primary: %s", exc)
            return "replica_down"
        REPLICA_LAG.set(float(lag))
        if lag > settings.DATABASE_REPLICA_MAX_LAG_SECONDS:
            logger.warning("replica %.1f s behind, reading from the primary", lag)
            return "replica_lagging"
        return ""

    def failed(self) -> None:
        """A read on the replica failed: the primary until the next check."""
        self.reason = "replica_failed"


health = _ReplicaHealth()

T = TypeVar("T")


def _not_found(exc: Exception) -> bool:
    return isinstance(exc, (ObjectDoesNotExist, Http404)) or (isinstance(exc, APIException) and exc.status_code == 404)


def lag_tolerant_read(read: Callable[[], T], *, fresh_enough: Callable[[T], bool] = lambda result: True) -> T:
    """read() with its ORM reads on the replica, when the replica is
    configured, up and within the lag bound; else read() on the primary.

    Also on the primary: read() again, when on the replica it raised a
    database error (the replica failed under it: the client sees no error) or
    a not-found (ObjectDoesNotExist, Http404, a 404 APIException: the row may
    not have been replayed yet), or when fresh_enough(result) is False (e.g. a
    transaction still PENDING there). So a replica can only ever answer with
    something the primary had committed, never with "not there".
    read() must only read; it may run twice.
    """
    if REPLICA not in connections.settings:
        return read()
    reason = health.fit()
    if not reason:
        token = _on_replica.set(True)
        try:
            result = read()
            if fresh_enough(result):
                REPLICA_READS.labels("replica", "").inc()
                return result
            reason = "not_on_replica"
        except Error as exc:
            logger.warning("read on the replica failed, reading from the primary: %s", exc)
            health.failed()
            reason = "replica_failed"
        except Exception as exc:
            if not _not_found(exc):
                raise
            reason = "not_on_replica"
        finally:
            _on_replica.reset(token)
    REPLICA_READS.labels("primary", reason).inc()
    return read()


class ReplicaRouter:
    """DATABASE_ROUTERS: reads inside lag_tolerant_read go to the replica,
    every other read and every write to the primary. Said explicitly, not
    left to Django's default, which would write an instance back to the
    database it was read from."""

    def db_for_read(self, model, **hints) -> str:
        if _on_replica.get() and not connections[DEFAULT_DB_ALIAS].in_atomic_block:
            return REPLICA
        return DEFAULT_DB_ALIAS

    def db_for_write(self, model, **hints) -> str:
        return DEFAULT_DB_ALIAS

    def allow_relation(self, obj1, obj2, **hints) -> bool:
        # The replica is a copy of the primary: the same rows.
        return True

    def allow_migrate(self, db, app_label, model_name=None, **hints) -> bool:
        return db == DEFAULT_DB_ALIAS


class LagTolerantChangeListMixin:
    """For a ModelAdmin: its list pages (GET) read the replica. A POST to the
    list runs an admin action, which reads and writes the primary."""

    def changelist_view(self, request, extra_context=None):
        if request.method not in ("GET", "HEAD"):
            return super().changelist_view(request, extra_context)
        return lag_tolerant_read(lambda: self._rendered_changelist(request, extra_context))

    def _rendered_changelist(self, request, extra_context):
        response = super().changelist_view(request, extra_context)
        # Rendered here, so that the template's queries run on the replica too.
        if hasattr(response, "render") and not response.is_rendered:
            response.render()
        return response
