#!/usr/bin/env python
"""The ledger chain's migrations (transfers/0016 and 0017, wallets/0014,
reconciliation/0001) on a ledger of a million transactions while money keeps
moving: no writer waits a second; then the chain built over the old logs and
the new ones together, and verified.

    .venv/bin/python bench/migration_chain_1m.py     # a few minutes, most of it loading

1. A fresh database `wallet_bench_migration_chain` (BENCH_MIGRATION_CHAIN_DB),
   migrated up to transfers/0013 and wallets/0012 (the state before), dropped
   again at the end.
2. The ledger of bench/verify_ledger_1m.py (its loader): 10,000 wallets,
   1,000,000 COMPLETED logs, VACUUM ANALYZE.
3. While the migrations run, a writer on its own connection does what a
   transfer does: the PENDING log inserted in autocommit, then in one
   transaction both wallets locked FOR NO KEY UPDATE in id order, 0.01 moved,
   the log set COMPLETED (which fires the new trigger once it exists). Each
   round's time is recorded.
4. Prints the migrations' time and the writer's rounds (count, median, the
   slowest), then builds the chain (old logs first, then the writer's, in
   the order their transactions finished) and verifies it; exits 1 if a
   round took a second or more, the index is invalid, the events' CHECK is
   left NOT VALID, or the chain does not hold.
"""

import os
import statistics
import sys
import threading
import time
from pathlib import Path

os.environ.setdefault("BENCH_LEDGER_DB", os.environ.get("BENCH_MIGRATION_CHAIN_DB", "wallet_bench_migration_chain"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import psycopg  # noqa: E402
import verify_ledger_1m as ledger  # noqa: E402 (the database above must be set first)

BOUND_SECONDS = 1.0
BEFORE = [("transfers", "0013_batch_body_digest"), ("wallets", "0012_wallet_frozen_note")]
AFTER = [
    ("transfers", "0017_chain_order_index"),
    ("wallets", "0014_ledger_checkpoint_event"),
    ("reconciliation", "0001_ledger_chain"),
]


def log(message: str) -> None:
    print(f"[migration chain 1M {time.strftime('%H:%M:%S')}] {message}", flush=True)


def bench_connection() -> psycopg.Connection:
    return psycopg.connect(
        host=ledger.PG_HOST, port=ledger.PG_PORT, user=ledger.PG_USER, dbname=ledger.BENCH_DB, autocommit=True
    )


class Writer(threading.Thread):
    """Transfers, as the service writes them, timed round by round."""

    def __init__(self, client_id: int):
        super().__init__(daemon=True)
        self.client_id = client_id
        self.stop = threading.Event()
        self.rounds: list[tuple[float, float]] = []  # (started, seconds)
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with bench_connection() as conn:
                n = 0
                while not self.stop.is_set():
                    n += 1
                    a, b = 1 + (n * 7919) % ledger.N_WALLETS, 1 + (n * 104729 + 1) % ledger.N_WALLETS
                    if a == b:
                        continue
                    source, destination = f"md5('ledger-wallet-{a}')::uuid", f"md5('ledger-wallet-{b}')::uuid"
                    started = time.perf_counter()
                    (log_id,) = conn.execute(
                        "INSERT INTO transaction_logs (id, client_id, idempotency_key, movement_fingerprint,"
                        " source_wallet_id, destination_wallet_id, amount, currency, type, status, reference,"
                        " metadata, error_code, error_message, created_at, updated_at)"
                        f" VALUES (gen_random_uuid(), %s, %s, '-', {source}, {destination}, 0.01, 'NGN',"  # noqa: S608
                        " 'TRANSFER', 'PENDING', %s, '{}', '', '', now(), now()) RETURNING id",
                        [self.client_id, f"writer-{n}", f"TXN-WRITER{n:010d}"],
                    ).fetchone()
                    with conn.transaction():
                        conn.execute(
                            f"SELECT id FROM wallets WHERE id IN ({source}, {destination})"  # noqa: S608
                            " ORDER BY id FOR NO KEY UPDATE"
                        )
                        conn.execute(
                            f"UPDATE wallets SET balance = balance + CASE WHEN id = {source} THEN -0.01"  # noqa: S608
                            f" ELSE 0.01 END, updated_at = now() WHERE id IN ({source}, {destination})"
                        )
                        conn.execute(
                            "UPDATE transaction_logs SET status = 'COMPLETED', completed_at = now(),"
                            " updated_at = now() WHERE id = %s AND status = 'PENDING'",
                            [log_id],
                        )
                    self.rounds.append((started, time.perf_counter() - started))
        except BaseException as exc:  # reported by the main thread
            self.error = exc


def main() -> int:
    ledger.server(f'DROP DATABASE IF EXISTS "{ledger.BENCH_DB}" WITH (FORCE)')
    ledger.server(f'CREATE DATABASE "{ledger.BENCH_DB}"')
    try:
        return run()
    finally:
        from django.db import connections

        connections.close_all()
        ledger.server(f'DROP DATABASE IF EXISTS "{ledger.BENCH_DB}" WITH (FORCE)')
        log(f"dropped {ledger.BENCH_DB}")


def run() -> int:
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    from wallets.services import settlement_wallet_get_or_create

    log(f"migrating {ledger.BENCH_DB} to the state before the chain")
    MigrationExecutor(connection).migrate(BEFORE)
    client = get_user_model().objects.create(username="bench-migration-chain")
    settlement = settlement_wallet_get_or_create(currency="NGN").pk
    with connection.cursor() as cursor:
        log(f"loading {ledger.N_WALLETS:,} wallets and {ledger.N_LOGS:,} COMPLETED logs")
        started = time.perf_counter()
        ledger.load(cursor, client.pk, settlement)
        cursor.execute("SELECT pg_size_pretty(pg_total_relation_size('transaction_logs'))")
        (size,) = cursor.fetchone()
    log(f"loaded in {time.perf_counter() - started:.1f}s ({size} with indexes)")
    connection.close()

    writer = Writer(client.pk)
    writer.start()
    time.sleep(2.0)  # the writer's pace before, for comparison
    migration_started = time.perf_counter()
    MigrationExecutor(connection).migrate(AFTER)
    migration_seconds = time.perf_counter() - migration_started
    time.sleep(2.0)  # and some transfers after, settled under the trigger
    writer.stop.set()
    writer.join()
    if writer.error:
        raise writer.error
    connection.close()

    during = [s for at, s in writer.rounds if migration_started <= at <= migration_started + migration_seconds]
    before = [s for at, s in writer.rounds if at < migration_started]
    slowest = max(during, default=0.0)
    with bench_connection() as conn:
        index_valid = conn.execute(
            "SELECT indisvalid FROM pg_index WHERE indexrelid = 'idx_txlogs_chain_order'::regclass"
        ).fetchone()[0]
        not_valid = conn.execute(
            "SELECT count(*) FROM pg_constraint WHERE conrelid = 'events'::regclass AND NOT convalidated"
        ).fetchone()[0]
        stamped = conn.execute("SELECT count(*) FROM transaction_logs WHERE finished_txid IS NOT NULL").fetchone()[0]

    from reconciliation import chain

    build_seconds, appended = ledger.timed(chain.chain_extend)
    verify_seconds, report = ledger.timed(chain.chain_verify)
    print(f"\nthe chain's migrations over {ledger.N_LOGS:,} logs ({size}), a writer beside them")
    print(f"  migrations                     {migration_seconds:.2f}s")
    print(f"  writer rounds before them      {len(before)}, median {statistics.median(before) * 1000:.1f} ms")
    print(
        f"  writer rounds during them      {len(during)}, median {statistics.median(during) * 1000:.1f} ms, "
        f"slowest {slowest * 1000:.1f} ms (bound {BOUND_SECONDS * 1000:.0f} ms)"
    )
    print(f"  chain index valid: {index_valid}; events CHECKs left NOT VALID: {not_valid}")
    print(f"  logs the trigger stamped       {stamped} (the writer's, after 0016)")
    print(f"  chain built                    {appended:,} links in {build_seconds:.1f}s")
    print(f"  chain verified                 {'holds' if report.ok else report} in {verify_seconds:.1f}s")
    ok = slowest < BOUND_SECONDS and index_valid and not_valid == 0 and len(during) > 0 and report.ok and stamped > 0
    print("  OK" if ok else "  FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
