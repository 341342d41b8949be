#!/usr/bin/env python
"""Migration transfers/0015 (each movement's balances after it, and their two
indexes) on a ledger of a million transaction logs while money keeps moving:
no writer waits a second or more.

    .venv/bin/python bench/migration_transfers_0015_1m.py     # a few minutes, most of it loading

1. A fresh database `wallet_bench_migration_0015` (BENCH_MIGRATION_DB),
   migrated to transfers/0013 (the state before it), dropped at the end.
2. Set-based SQL loads 1,000 customer wallets and 1,000,000 COMPLETED logs
   between them (BENCH_MIGRATION_LOGS), then VACUUM ANALYZE.
3. While `migrate transfers 0015` runs, a writer on its own connection does
   what a transfer does, over and over: lock two wallets FOR NO KEY UPDATE in
   id order, move 0.01 between them, insert the COMPLETED log, commit (the
   insert names no new column: a web process of the previous release). Each
   round's time is recorded.
4. Prints the migration's time and the writer's rounds during it (count,
   median, the slowest), checks both indexes are valid and the old logs'
   balances after NULL, and exits 1 if any round took a second or more.
"""

import os
import statistics
import sys
import threading
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
PG_HOST = os.environ.get("BENCH_PG_HOST", "127.0.0.1")
PG_PORT = os.environ.get("BENCH_PG_PORT", "5432")
PG_USER = os.environ.get("BENCH_PG_USER", "postgres")
BENCH_DB = os.environ.get("BENCH_MIGRATION_DB", "wallet_bench_migration_0015")
N_LOGS = int(os.environ.get("BENCH_MIGRATION_LOGS", "1000000"))
N_WALLETS = 1000
BOUND_SECONDS = 1.0
INDEXES = ("idx_txlogs_source_moved", "idx_txlogs_destination_moved")

sys.path.insert(0, str(ROOT))
os.environ["DJANGO_SETTINGS_MODULE"] = "wallet_project.settings"
os.environ["DATABASE_URL"] = f"postgres://{PG_USER}@{PG_HOST}:{PG_PORT}/{BENCH_DB}"

BEFORE = [("transfers", "0013_batch_body_digest")]
AFTER = [("transfers", "0015_balance_after")]

# A wallet's id from its number, the same in the load and in the writer.
WALLET_ID = "md5('bench-wallet-' || {n})::uuid"
LOG_COLUMNS = (
    "id, client_id, idempotency_key, movement_fingerprint, source_wallet_id, destination_wallet_id, amount, "
    "currency, type, status, reference, metadata, error_code, error_message, created_at, updated_at, completed_at"
)


def log(message: str) -> None:
    print(f"[migration 0015 1M {time.strftime('%H:%M:%S')}] {message}", flush=True)


def server(sql: str) -> None:
    with psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", autocommit=True) as conn:
        conn.execute(sql)


def bench_connection() -> psycopg.Connection:
    return psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=BENCH_DB, autocommit=True)


class Writer(threading.Thread):
    """A transfer's writes to `wallets` and `transaction_logs`, timed round by round, until stopped."""

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
                    a, b = 1 + (n * 7919) % N_WALLETS, 1 + (n * 104729 + 1) % N_WALLETS
                    if a == b:
                        continue
                    source, destination = WALLET_ID.format(n=a), WALLET_ID.format(n=b)
                    started = time.perf_counter()
                    with conn.transaction():
                        conn.execute(
                            f"SELECT id FROM wallets WHERE id IN ({source}, {destination}) ORDER BY id "  # noqa: S608
                            "FOR NO KEY UPDATE"
                        )
                        conn.execute(
                            f"UPDATE wallets SET balance = balance + CASE WHEN id = {source} THEN -0.01 ELSE 0.01 "  # noqa: S608
                            f"END, updated_at = now() WHERE id IN ({source}, {destination})"
                        )
                        conn.execute(
                            f"INSERT INTO transaction_logs ({LOG_COLUMNS}) VALUES (gen_random_uuid(), %s, "  # noqa: S608
                            f"'writer-' || %s, '-', {source}, {destination}, 0.01, 'NGN', 'TRANSFER', 'COMPLETED', "
                            "'TXN-W' || upper(substr(md5(random()::text), 1, 12)), '{}', '', '', now(), now(), now())",
                            [self.client_id, f"{n}-{time.monotonic_ns()}"],
                        )
                    self.rounds.append((started, time.perf_counter() - started))
        except BaseException as exc:  # reported by the main thread
            self.error = exc


def main() -> int:
    server(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')
    server(f'CREATE DATABASE "{BENCH_DB}"')
    try:
        return run()
    finally:
        from django.db import connections

        connections.close_all()
        server(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')
        log(f"dropped {BENCH_DB}")


def run() -> int:
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    log(f"migrating {BENCH_DB} to the state before transfers/0015")
    MigrationExecutor(connection).migrate(BEFORE)
    client = get_user_model().objects.create(username="bench-migration")

    log(f"loading {N_WALLETS:,} wallets and {N_LOGS:,} COMPLETED transaction logs")
    started = time.perf_counter()
    with bench_connection() as conn:
        conn.execute(
            f"""
            INSERT INTO wallets (id, owner_id, user_id, kind, currency, balance, is_active, created_at, updated_at)
            SELECT {WALLET_ID.format(n="n")}, %s, gen_random_uuid(), 'CUSTOMER', 'NGN', 1000000.00, true, now(), now()
              FROM generate_series(1, %s) AS n
            """,  # noqa: S608
            [client.pk, N_WALLETS],
        )
        conn.execute(
            f"""
            INSERT INTO transaction_logs ({LOG_COLUMNS})
            SELECT gen_random_uuid(), %s, 'old-' || n, '-',
                   {WALLET_ID.format(n="(1 + n %% 1000)")}, {WALLET_ID.format(n="(1 + (n * 7 + 1) %% 1000)")},
                   1.00, 'NGN', 'TRANSFER', 'COMPLETED', 'TXN-OLD' || lpad(n::text, 10, '0'), '{{}}', '', '',
                   now() - (n || ' seconds')::interval, now() - (n || ' seconds')::interval,
                   now() - (n || ' seconds')::interval
              FROM generate_series(1, %s) AS n
             WHERE n %% 1000 <> (n * 7 + 1) %% 1000
            """,  # noqa: S608
            [client.pk, N_LOGS],
        )
        conn.execute("VACUUM ANALYZE wallets")
        conn.execute("VACUUM ANALYZE transaction_logs")
        count = conn.execute("SELECT count(*) FROM transaction_logs").fetchone()[0]
        size = conn.execute("SELECT pg_size_pretty(pg_total_relation_size('transaction_logs'))").fetchone()[0]
    log(f"loaded {count:,} logs in {time.perf_counter() - started:.1f}s ({size} with indexes)")

    writer = Writer(client.pk)
    writer.start()
    time.sleep(2.0)  # the writer's pace before the migration, for comparison
    migration_started = time.perf_counter()
    MigrationExecutor(connection).migrate(AFTER)
    migration_seconds = time.perf_counter() - migration_started
    time.sleep(1.0)
    writer.stop.set()
    writer.join()
    if writer.error:
        raise writer.error

    during = [
        seconds for at, seconds in writer.rounds if migration_started <= at <= migration_started + migration_seconds
    ]
    before = [seconds for at, seconds in writer.rounds if at < migration_started]
    slowest = max(during, default=0.0)
    with bench_connection() as conn:
        valid = dict(
            conn.execute(
                "SELECT c.relname, i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                "WHERE c.relname = ANY(%s)",
                [list(INDEXES)],
            ).fetchall()
        )
        filled = conn.execute(
            "SELECT count(*) FROM transaction_logs WHERE source_balance_after IS NOT NULL "
            "OR destination_balance_after IS NOT NULL"
        ).fetchone()[0]
    print(f"\nmigrate transfers 0015 over {count:,} transaction logs ({size}), a writer beside it")
    print(f"  migration                      {migration_seconds:.2f}s")
    print(f"  writer rounds before it        {len(before)}, median {statistics.median(before) * 1000:.1f} ms")
    print(
        f"  writer rounds during it        {len(during)}, median {statistics.median(during) * 1000:.1f} ms, "
        f"slowest {slowest * 1000:.1f} ms (bound {BOUND_SECONDS * 1000:.0f} ms)"
    )
    print(f"  indexes valid                  {valid}; logs with a balance after: {filled} (the old ones stay NULL)")
    ok = slowest < BOUND_SECONDS and valid == dict.fromkeys(INDEXES, True) and filled == 0 and len(during) > 0
    print("  OK" if ok else "  FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
