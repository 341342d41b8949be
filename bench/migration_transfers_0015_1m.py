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
import sys
import time

import ledger_harness as bench

BENCH_DB = os.environ.get("BENCH_MIGRATION_DB", "wallet_bench_migration_0015")
N_LOGS = int(os.environ.get("BENCH_MIGRATION_LOGS", "1000000"))
N_WALLETS = 1000
INDEXES = ("idx_txlogs_source_moved", "idx_txlogs_destination_moved")
BEFORE = [("transfers", "0013_batch_body_digest")]
AFTER = [("transfers", "0015_balance_after")]
LOG_COLUMNS = (
    "id, client_id, idempotency_key, movement_fingerprint, source_wallet_id, destination_wallet_id, amount, "
    "currency, type, status, reference, metadata, error_code, error_message, created_at, updated_at, completed_at"
)
log = bench.logger("migration 0015 1M")


def run() -> int:
    client = bench.migrated_to(BEFORE, "bench-migration", log)

    log(f"loading {N_WALLETS:,} wallets and {N_LOGS:,} COMPLETED transaction logs")
    started = time.perf_counter()
    with bench.connect(BENCH_DB) as conn:
        bench.load_wallets(conn, owner_id=client.pk, count=N_WALLETS, balance="1000000.00")
        conn.execute(
            f"""
            INSERT INTO transaction_logs ({LOG_COLUMNS})
            SELECT gen_random_uuid(), %s, 'old-' || n, '-',
                   {bench.wallet_sql("(1 + n %% 1000)")}, {bench.wallet_sql("(1 + (n * 7 + 1) %% 1000)")},
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

    def write(conn, n: int) -> bool:
        """A transfer's writes: the wallets, and its COMPLETED log naming no
        new column (a web process of the previous release)."""
        pair = bench.two_wallets(n, N_WALLETS)
        if pair is None:
            return False
        source, destination = (bench.wallet_sql(number) for number in pair)
        with conn.transaction():
            bench.move_a_cent(conn, source, destination)
            conn.execute(
                f"INSERT INTO transaction_logs ({LOG_COLUMNS}) VALUES (gen_random_uuid(), %s, "  # noqa: S608
                f"'writer-' || %s, '-', {source}, {destination}, 0.01, 'NGN', 'TRANSFER', 'COMPLETED', "
                "'TXN-W' || upper(substr(md5(random()::text), 1, 12)), '{}', '', '', now(), now(), now())",
                [client.pk, f"{n}-{time.monotonic_ns()}"],
            )
        return True

    beside = bench.migrate_beside(bench.Writer(BENCH_DB, write), [AFTER])
    with bench.connect(BENCH_DB) as conn:
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
    print(f"  migration                      {beside.seconds:.2f}s")
    beside.print_rounds()
    print(f"  indexes valid                  {valid}; logs with a balance after: {filled} (the old ones stay NULL)")
    ok = beside.ok and valid == dict.fromkeys(INDEXES, True) and filled == 0
    print("  OK" if ok else "  FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(bench.in_fresh_database(BENCH_DB, run, log))
