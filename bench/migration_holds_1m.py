#!/usr/bin/env python
"""The holds migrations (docs/api.md, "Holds"): wallets/0015 (the events'
type CHECK gains the hold.* types), wallets/0016 (wallet.held and its CHECK
0 <= held <= balance) and transfers/0018 (the holds table), on a ledger of a
million wallets and a million events while money keeps moving: no writer
waits more than a second.

    .venv/bin/python bench/migration_holds_1m.py     # a few minutes, most of it loading

1. A fresh database `wallet_bench_migration` (BENCH_MIGRATION_DB), migrated up
   to wallets/0012 and transfers/0013 (the state before these migrations),
   dropped again at the end.
2. Set-based SQL loads 1,000,000 customer wallets (BENCH_MIGRATION_WALLETS)
   and as many events, then VACUUM ANALYZE.
3. While the three migrations run, a writer on its own connection does
   what a transfer does to `wallets`, over and over: lock two wallets FOR NO
   KEY UPDATE in id order, move 0.01 between them, commit; every 50th round
   it opens a new wallet (an INSERT the new CHECKs must admit, as a process
   of the previous release writes it: without `held`), and every round
   writes an event. Each round's time is recorded.
4. Prints the migration's time and the writer's rounds during it (count,
   median, the slowest), and exits 1 if any round took a second or more.
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
BENCH_DB = os.environ.get("BENCH_MIGRATION_DB", "wallet_bench_migration")
N_WALLETS = int(os.environ.get("BENCH_MIGRATION_WALLETS", "1000000"))
BOUND_SECONDS = 1.0

sys.path.insert(0, str(ROOT))
os.environ["DJANGO_SETTINGS_MODULE"] = "wallet_project.settings"
os.environ["DATABASE_URL"] = f"postgres://{PG_USER}@{PG_HOST}:{PG_PORT}/{BENCH_DB}"

BEFORE = [("wallets", "0012_wallet_frozen_note"), ("transfers", "0013_batch_body_digest")]
AFTER = [("wallets", "0016_wallet_held"), ("transfers", "0018_holds")]


def log(message: str) -> None:
    print(f"[migration holds 1M {time.strftime('%H:%M:%S')}] {message}", flush=True)


def server(sql: str) -> None:
    with psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", autocommit=True) as conn:
        conn.execute(sql)


def bench_connection() -> psycopg.Connection:
    return psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=BENCH_DB, autocommit=True)


class Writer(threading.Thread):
    """Transfers' writes to `wallets`, timed round by round, until stopped."""

    def __init__(self, owner_id: int):
        super().__init__(daemon=True)
        self.owner_id = owner_id
        self.stop = threading.Event()
        self.rounds: list[tuple[float, float]] = []  # (started, seconds)
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with bench_connection() as conn:
                n = 0
                while not self.stop.is_set():
                    n += 1
                    a, b = sorted((1 + (n * 7919) % N_WALLETS, 1 + (n * 104729 + 1) % N_WALLETS))
                    if a == b:
                        continue
                    started = time.perf_counter()
                    with conn.transaction():
                        ids = [f"md5('bench-wallet-{a}')::uuid", f"md5('bench-wallet-{b}')::uuid"]
                        conn.execute(
                            f"SELECT id FROM wallets WHERE id IN ({ids[0]}, {ids[1]}) ORDER BY id FOR NO KEY UPDATE"  # noqa: S608
                        )
                        conn.execute(
                            f"UPDATE wallets SET balance = balance + CASE WHEN id = {ids[0]} THEN -0.01 ELSE 0.01 END,"  # noqa: S608
                            f" updated_at = now() WHERE id IN ({ids[0]}, {ids[1]})"
                        )
                        if n % 50 == 0:
                            conn.execute(
                                "INSERT INTO wallets (id, owner_id, user_id, kind, currency, balance, is_active, "
                                "created_at, updated_at) VALUES (gen_random_uuid(), %s, gen_random_uuid(), 'CUSTOMER', "
                                "'NGN', 0, true, now(), now())",
                                [self.owner_id],
                            )
                        conn.execute(
                            "INSERT INTO events (client_id, type, data) VALUES (%s, 'transfer.completed', '{}')",
                            [self.owner_id],
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

    log(f"migrating {BENCH_DB} to the state before wallets/0015")
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    owner = get_user_model().objects.create(username="bench-migration")

    log(f"loading {N_WALLETS:,} customer wallets (each with a balance of 10.00, some frozen)")
    started = time.perf_counter()
    with bench_connection() as conn:
        conn.execute(
            """
            INSERT INTO wallets (id, owner_id, user_id, kind, currency, balance, is_active, created_at, updated_at)
            SELECT md5('bench-wallet-' || n)::uuid, %s, gen_random_uuid(), 'CUSTOMER', 'NGN', 10.00,
                   n %% 1000 <> 0, now(), now()
              FROM generate_series(1, %s) AS n
            """,
            [owner.pk, N_WALLETS],
        )
        conn.execute(
            "INSERT INTO events (client_id, type, data) SELECT %s, 'transfer.completed', '{}' "
            "FROM generate_series(1, %s)",
            [owner.pk, N_WALLETS],
        )
        conn.execute("VACUUM ANALYZE wallets")
        conn.execute("VACUUM ANALYZE events")
        size = conn.execute("SELECT pg_size_pretty(pg_total_relation_size('wallets'))").fetchone()[0]
    log(f"loaded in {time.perf_counter() - started:.1f}s ({size} with indexes)")

    writer = Writer(owner.pk)
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
        validated = conn.execute(
            "SELECT count(*) FROM pg_constraint WHERE conrelid IN ('wallets'::regclass, 'events'::regclass) "
            "AND NOT convalidated"
        ).fetchone()[0]
        held = conn.execute("SELECT count(*) FROM wallets WHERE held <> 0").fetchone()[0]
    print(f"\nmigrate wallets 0015, 0016, transfers 0018 over {N_WALLETS:,} wallets ({size}) and as many events")
    print(f"  migrations                     {migration_seconds:.2f}s")
    print(f"  writer rounds before it        {len(before)}, median {statistics.median(before) * 1000:.1f} ms")
    print(
        f"  writer rounds during it        {len(during)}, median {statistics.median(during) * 1000:.1f} ms, "
        f"slowest {slowest * 1000:.1f} ms (bound {BOUND_SECONDS * 1000:.0f} ms)"
    )
    print(f"  constraints left NOT VALID     {validated}; wallets with held <> 0: {held}")
    ok = slowest < BOUND_SECONDS and validated == 0 and held == 0 and len(during) > 0
    print("  OK" if ok else "  FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
