"""What on-call sees of each money movement: one log line and its counters
on /metrics (multiprocess-safe prometheus_client metrics, served by
wallet_project/metrics.py like every other process metric).

A line carries the transaction id and reference, the type, the outcome, the
amount and currency, the client, the idempotency key and the duration; the
request id is added by the logging filter. Metadata is never logged: clients
put names and notes there.
"""

import logging

from django.conf import settings
from django.db import DatabaseError, connection
from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily

from transfers.models import TransactionLog

logger = logging.getLogger("wallet.transfers")

TRANSFERS = Counter(
    "wallet_transfers",
    "Money movements settled by an API request: outcome completed or failed, and a failure's reason.",
    ["type", "outcome", "reason"],
)
REPLAYS = Counter("wallet_transfer_replays", "Requests answered with the earlier result of their key.", ["type"])
KEY_CONFLICTS = Counter(
    "wallet_transfer_key_conflicts",
    "Requests refused for their idempotency key: idempotency_key_in_use (409, a request with the key is in "
    "flight) or idempotency_key_reused (422, the key belongs to another request).",
    ["type", "code"],
)
LOCK_WAIT = Histogram(
    "wallet_transfer_lock_wait_seconds",
    "Time a settle spends taking its row locks (the log or batch row, its wallets, then its limit rows), "
    "round trips included.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)


# Each metric's child per label values, as labels() returns it: labels()
# checks and converts its arguments and takes the metric's lock on every call
# (callgrind, 100 calls of movement_answered: 179K -> 170K instructions each).
_CHILDREN: dict[tuple, object] = {}


def _child(metric, *values: str):
    """metric.labels(*values), looked up once per metric and values."""
    key = (metric, *values)
    child = _CHILDREN.get(key)
    if child is None:
        child = _CHILDREN[key] = metric.labels(*values)
    return child


def movement_answered(
    *, client, idempotency_key: str, log: TransactionLog, replayed: bool, seconds: float | None
) -> None:
    """A money request got its answer: settled now (completed or failed) or
    replayed. Reads only the log fields every answer has loaded. `seconds`:
    how long the service took; None for a replay answered unread, which did
    no work of its own to time (services.movement_replay): its line says
    "replayed unread" and has no duration_ms."""
    kind = log.type
    outcome = "replayed" if replayed else log.status.lower()
    if replayed:
        _child(REPLAYS, kind).inc()
    else:
        _child(TRANSFERS, kind, outcome, log.error_code or "").inc()
    extra = {
        "event": "money_movement",
        "type": kind,
        "outcome": outcome,
        "status": log.status,
        "error_code": log.error_code or None,
        "transaction_id": str(log.pk),
        "reference": log.reference,
        "amount": f"{log.amount:.2f}",
        "currency": log.currency,
        "client": client.get_username(),
        "idempotency_key": idempotency_key,
    }
    took = _took(seconds, extra)
    logger.info(
        "%s %s %s%s %s",
        kind,
        log.reference,
        outcome,
        f" ({log.error_code})" if log.error_code else "",
        took,
        extra=extra,
    )


def _took(seconds: float | None, extra: dict) -> str:
    """The end of a movement's or a batch's line: "in 12.3ms" (and
    duration_ms in its fields), or "unread" for a replay answered without
    reading its body, which is not timed (seconds None)."""
    if seconds is None:
        return "unread"
    extra["duration_ms"] = duration_ms = round(seconds * 1000, 1)
    return f"in {duration_ms:.1f}ms"


def key_refused(*, client, movement, idempotency_key: str, code: str) -> None:
    """The key was in use by a request in flight (409) or belongs to another
    request (422): nothing was moved or stored."""
    KEY_CONFLICTS.labels(movement.type.value, code).inc()
    logger.info(
        "%s refused: %s",
        movement.type.value,
        code,
        extra={
            "event": "money_movement",
            "type": movement.type.value,
            "outcome": "refused",
            "error_code": code,
            "client": client.get_username(),
            "idempotency_key": idempotency_key,
        },
    )


def reversal_done(*, original: TransactionLog, compensation: TransactionLog, reversed_by) -> None:
    logger.info(
        "reversed %s by %s",
        original.reference,
        compensation.reference,
        extra={
            "event": "money_movement",
            "type": compensation.type,
            "outcome": "reversal",
            "transaction_id": str(compensation.pk),
            "reference": compensation.reference,
            "reversal_of": original.reference,
            "amount": f"{compensation.amount:.2f}",
            "currency": compensation.currency,
            "client": reversed_by.get_username(),
        },
    )


# --- batches ---------------------------------------------------------------------------

BATCHES = Counter(
    "wallet_transfer_batches",
    "Batches of payouts answered: outcome completed, partially_completed or failed (settled by this request), "
    "replayed, or refused (idempotency_key_in_use, idempotency_key_reused); mode atomic or independent.",
    ["mode", "outcome"],
)
BATCH_PAYOUTS = Counter(
    "wallet_transfer_batch_payouts",
    "Payouts of batches settled by a request: outcome completed or failed, and a failure's reason.",
    ["outcome", "reason"],
)


def batch_answered(*, client, result, seconds: float | None) -> None:
    """A batch request got its answer: settled now, or replayed. One line for
    the batch (a line per payout would be a thousand lines for one request;
    each payout is findable by its key and reference)."""
    batch = result.batch
    mode = "atomic" if batch.atomic else "independent"
    outcome = "replayed" if result.replayed else batch.status.lower()
    BATCHES.labels(mode, outcome).inc()
    if not result.replayed:
        reasons: dict[tuple[str, str], int] = {}
        for payout in result.payouts:
            label = (payout.status.lower(), payout.error_code or "")
            reasons[label] = reasons.get(label, 0) + 1
        for (payout_outcome, reason), count in reasons.items():
            BATCH_PAYOUTS.labels(payout_outcome, reason).inc(count)
    extra = {
        "event": "batch",
        "batch_id": str(batch.pk),
        "mode": mode,
        "outcome": outcome,
        "status": batch.status,
        "error_code": batch.error_code or None,
        "payouts": batch.payout_count,
        "completed": batch.completed_count,
        "failed": batch.failed_count,
        "amount": f"{batch.completed_amount:.2f}",
        "client": client.get_username(),
    }
    took = _took(seconds, extra)
    logger.info(
        "BATCH %s %s (%d of %d payouts completed) %s",
        batch.pk, outcome, batch.completed_count, batch.payout_count, took, extra=extra,
    )  # fmt: skip


def batch_refused(*, client, idempotency_key: str, code: str) -> None:
    """A batch refused for a key (409 in flight, 422 used elsewhere): nothing stored."""
    BATCHES.labels("", "refused").inc()
    KEY_CONFLICTS.labels("BATCH", code).inc()
    logger.info(
        "BATCH refused: %s",
        code,
        extra={
            "event": "batch",
            "outcome": "refused",
            "error_code": code,
            "client": client.get_username(),
            "idempotency_key": idempotency_key,
        },
    )


# --- read at scrape time (registered from TransfersConfig.ready()) -----------------

# One statement, one snapshot: each settlement wallet's balance, and the
# largest client exposure in each currency (docs/design.md, "Client exposure").
_SETTLEMENT_STATE = """
SELECT w.currency, w.balance, (SELECT max(e.amount) FROM client_exposures e WHERE e.currency = w.currency)
  FROM wallets w
 WHERE w.kind = 'SETTLEMENT'
"""


def settlement_state(up: dict[str, bool]):
    """The metric families of what clients have pushed through the settlement
    wallets: each one's balance by currency, the largest client exposure by
    currency, and the configured bounds the alert rules compare them with."""
    yield GaugeMetricFamily(
        "wallet_settlement_alert_magnitude",
        "Settlement wallet balance, either way, at which on-call is paged (SETTLEMENT_ALERT_MAGNITUDE).",
        value=float(settings.SETTLEMENT_ALERT_MAGNITUDE),
    )
    yield GaugeMetricFamily(
        "wallet_client_exposure_limit",
        "What one client's wallets may hold in one currency from deposits (CLIENT_EXPOSURE_LIMIT).",
        value=float(settings.CLIENT_EXPOSURE_LIMIT),
    )
    if not up["database"]:
        return
    try:
        with connection.cursor() as cursor:
            cursor.execute(_SETTLEMENT_STATE)
            rows = cursor.fetchall()
    except DatabaseError as exc:
        logger.warning("metrics: settlement state unavailable: %s", exc)
        return
    balances = GaugeMetricFamily(
        "wallet_settlement_balance",
        "Balance of the settlement wallet of each currency: minus what customers hold from deposits.",
        labels=["currency"],
    )
    exposures = GaugeMetricFamily(
        "wallet_client_exposure_largest",
        "The largest client exposure (deposits minus withdrawals) in each currency.",
        labels=["currency"],
    )
    for currency, balance, largest in rows:
        balances.add_metric([currency], float(balance))
        exposures.add_metric([currency], float(largest or 0))
    yield balances
    yield exposures


LIMIT_REFUSALS = Counter(
    "wallet_limit_refusals",
    "Movements refused by a limit (docs/limits.md): limit_exceeded by the cap it names (maxDailyDebits, "
    "clientDailyDebits, ...; payee for another client's wallet), or wallet_restricted.",
    ["limit"],
)


def limits_refused(decisions) -> None:
    """Count the engine's decisions that a limit or a restriction refused,
    after the commit (nothing extra under the row locks)."""
    for decision in decisions:
        failure = decision.failure
        if failure is None:
            continue
        if failure.limit:
            LIMIT_REFUSALS.labels(failure.limit).inc()
        elif failure.code == "wallet_restricted":
            LIMIT_REFUSALS.labels("restricted").inc()
