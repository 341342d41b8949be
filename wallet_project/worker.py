"""The three Celery worker pools (docs/operations.md, "Running it"):

    python -m wallet_project.worker money [celery worker options]
    python -m wallet_project.worker webhooks [celery worker options]
    python -m wallet_project.worker holds [celery worker options]

`money` consumes the default queue: reconciliation, verify_ledger, purging
events. `webhooks` consumes the deliveries' queue only (WEBHOOK_QUEUE): a
delivery waits on a client's receiver, and on a pool of its own it never
keeps a money task waiting. `holds` consumes the hold expiries' queue
(HOLDS_QUEUE): an expiry is due at a time, and waits behind neither a
reconciliation run nor a delivery backlog. The queue names follow WALLET_INSTANCE
(settings.py), so they are read from the settings here rather than typed
into the Procfile, docker-compose.yml and the tests again."""

import sys

from django.conf import settings

from wallet_project.celery import app

POOLS = ("money", "webhooks", "holds")


def worker_argv(pool: str, options: list[str]) -> list[str]:
    """The `celery` command line (without the program) of `pool`'s worker, with
    `options` (concurrency, log level...) after the ones the pool sets.
    Raises ValueError for a pool that is not one of POOLS."""
    queues = {"money": app.conf.task_default_queue, "webhooks": settings.WEBHOOK_QUEUE, "holds": settings.HOLDS_QUEUE}
    if pool not in queues:
        raise ValueError(f"unknown worker pool {pool!r}: one of {', '.join(POOLS)}")
    # A node name per pool, so that two pools on one host are told apart (inspect ping).
    return ["-q", "worker", "--queues", queues[pool], "--hostname", f"{pool}@%h", *options]


def main(argv: list[str]) -> None:
    if not argv or argv[0] not in POOLS:
        sys.exit(f"usage: python -m wallet_project.worker {{{'|'.join(POOLS)}}} [celery worker options]")
    app.worker_main(worker_argv(argv[0], argv[1:]))


if __name__ == "__main__":
    main(sys.argv[1:])
