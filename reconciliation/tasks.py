"""Celery tasks. Thin: they call reconciliation.services, which are safe to
run twice at once (SKIP LOCKED + the settle step's status check), so a task
redelivered after a killed worker (acks_late) does no harm."""

import logging

from celery import shared_task

from reconciliation import chain, services

logger = logging.getLogger(__name__)


@shared_task
def reconcile_stale_pending() -> dict:
    outcomes = services.stale_pending_reconcile()
    summary = dict(services.outcome_counts(outcomes))
    if outcomes:
        logger.info("reconciliation re-drove %d stale PENDING logs: %s", len(outcomes), summary)
    return summary


@shared_task
def verify_ledger() -> int:
    """Hourly from beat (VERIFY_LEDGER_EVERY_SECONDS): the invariants and the
    ledger chain; the result becomes the wallet_ledger_* metrics, which page
    on-call on any discrepancy (a broken chain included)."""
    return len(services.ledger_verify(chain=chain.chain_discrepancies(chain.chain_verify())))


@shared_task
def chain_ledger() -> int | None:
    """Every LEDGER_CHAIN_EVERY_SECONDS from beat: append the logs finished
    since to the ledger chain (None: another run holds it). Quiet: a tick logs
    nothing (wallet_project/log_format.py, QuietTicks)."""
    return chain.chain_extend()


@shared_task
def publish_ledger_checkpoint() -> dict | None:
    """Every LEDGER_CHECKPOINT_EVERY_SECONDS from beat: the chain's head to
    the log and to LEDGER_CHECKPOINT_CLIENT (docs/operations.md, "A provable history")."""
    return chain.checkpoint_publish()
