"""What reconciliation and ledger verification did, kept in Redis for the
metrics endpoint (reconciliation/metrics.py).

The Celery worker, beat, the admin and the manage.py commands record here;
whichever web process Prometheus scrapes reads it back, on whichever host. One
Redis hash, one round trip each way. Redis keeps nothing on disk, so a restart
loses only this: the counters start again from zero (Prometheus's rate() and
increase() read that as a reset) and the timestamps return with the next run,
well inside the alerts' windows. Recording never fails the work it records:
with Redis down it is skipped with a warning.
"""

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from django.core.cache import cache
from django_redis import get_redis_connection

from wallet_project.redis_health import REDIS_ERRORS

logger = logging.getLogger(__name__)

RUNS, RESOLVED = "runs:", "resolved:"
LAST_RUN_AT = "reconciliation_last_run_at"
LEDGER_VERIFIED_AT, LEDGER_DISCREPANCIES = "ledger_verified_at", "ledger_discrepancies"
# What the last check of the ledger chain found (kept apart: a check of the
# invariants alone leaves it as it was).
CHAIN_DISCREPANCIES = "chain_discrepancies"


def _key() -> str:
    # Through the cache's prefix, like every other key of the service.
    return cache.make_key("ops-records")


def reconciliation_run(*, counts: Mapping[str, int], failed: bool) -> None:
    """A run ended: count it (result ok or error) and how many logs it left in
    each outcome."""
    fields = {f"{RESOLVED}{outcome}": count for outcome, count in counts.items()}
    fields[f"{RUNS}{'error' if failed else 'ok'}"] = 1
    _write(increments=fields, values={LAST_RUN_AT: time.time()})


def ledger_verified(*, discrepancies: int, chain_discrepancies: int | None = None) -> None:
    """A verification ended: what it found of invariants 1-3 and, when it
    checked the ledger chain, of the chain."""
    values = {LEDGER_VERIFIED_AT: time.time(), LEDGER_DISCREPANCIES: discrepancies}
    if chain_discrepancies is not None:
        values[CHAIN_DISCREPANCIES] = chain_discrepancies
    _write(increments={}, values=values)


def _write(*, increments: dict[str, int], values: dict[str, float]) -> None:
    try:
        pipe = get_redis_connection("default").pipeline(transaction=False)
        for name, amount in increments.items():
            pipe.hincrby(_key(), name, amount)
        pipe.hset(_key(), mapping=values)
        pipe.execute()
    except REDIS_ERRORS as exc:
        logger.warning("could not record %s in Redis: %s", sorted(values), exc)


@dataclass
class Recorded:
    runs: dict[str, int] = field(default_factory=dict)
    resolved: dict[str, int] = field(default_factory=dict)
    last_run_at: float | None = None
    ledger_verified_at: float | None = None
    ledger_discrepancies: int = 0
    chain_discrepancies: int = 0


def read() -> Recorded:
    raw = {k.decode(): v.decode() for k, v in get_redis_connection("default").hgetall(_key()).items()}
    return Recorded(
        runs={name.removeprefix(RUNS): int(v) for name, v in raw.items() if name.startswith(RUNS)},
        resolved={name.removeprefix(RESOLVED): int(v) for name, v in raw.items() if name.startswith(RESOLVED)},
        last_run_at=float(raw[LAST_RUN_AT]) if LAST_RUN_AT in raw else None,
        ledger_verified_at=float(raw[LEDGER_VERIFIED_AT]) if LEDGER_VERIFIED_AT in raw else None,
        ledger_discrepancies=int(raw.get(LEDGER_DISCREPANCIES, 0)),
        chain_discrepancies=int(raw.get(CHAIN_DISCREPANCIES, 0)),
    )
