#!/usr/bin/env python
"""Migration wallets/0011 (suspense wallets, freeze reasons), then the
corrections app's (its tables hold foreign keys to wallets and
transaction_logs), on a ledger of a million wallets while money keeps
moving: no writer waits more than a second.

    .venv/bin/python bench/migration_wallets_0011_1m.py     # a few minutes, most of it loading

1. A fresh database `wallet_bench_migration` (BENCH_MIGRATION_DB), migrated up
   to wallets/0010 and transfers/0012 (the state before this migration),
   dropped again at the end.
2. Set-based SQL loads 1,000,000 customer wallets (BENCH_MIGRATION_WALLETS),
   then VACUUM ANALYZE.
3. While `migrate wallets 0011` and then `migrate corrections` run, a writer on its own connection does
   what a transfer does to `wallets`, over and over: lock two wallets FOR NO
   KEY UPDATE in id order, move 0.01 between them, commit; every 50th round
   it opens a new wallet (an INSERT the new CHECKs must admit). Each round's
   time is recorded.
4. Prints the migration's time and the writer's rounds during it (count,
   median, the slowest), and exits 1 if any round took a second or more.
"""

import functools
import os
import sys
import time

import ledger_harness as bench

BENCH_DB = os.environ.get("BENCH_MIGRATION_DB", "wallet_bench_migration")
N_WALLETS = int(os.environ.get("BENCH_MIGRATION_WALLETS", "1000000"))
BEFORE = [("wallets", "0010_webhook_endpoint_last_attempt"), ("transfers", "0012_client_exposures")]
AFTER = [("wallets", "0011_suspense_wallets_and_freeze_reasons")]
CORRECTIONS = [("corrections", "0003_correction_request_name")]
log = bench.logger("migration 0011 1M")


def run() -> int:
    owner = bench.migrated_to(BEFORE, "bench-migration", log)

    log(f"loading {N_WALLETS:,} customer wallets (each with a balance of 10.00, some frozen)")
    started = time.perf_counter()
    with bench.connect(BENCH_DB) as conn:
        bench.load_wallets(conn, owner_id=owner.pk, count=N_WALLETS, balance="10.00", active="n %% 1000 <> 0")
        conn.execute("VACUUM ANALYZE wallets")
        size = conn.execute("SELECT pg_size_pretty(pg_total_relation_size('wallets'))").fetchone()[0]
    log(f"loaded in {time.perf_counter() - started:.1f}s ({size} with indexes)")

    # A transfer's writes to `wallets`; every 50th round a new wallet.
    write = functools.partial(bench.wallets_round, wallets=N_WALLETS, owner_id=owner.pk)
    beside = bench.migrate_beside(bench.Writer(BENCH_DB, write), [AFTER, CORRECTIONS])
    with bench.connect(BENCH_DB) as conn:
        validated = conn.execute(
            "SELECT count(*) FROM pg_constraint WHERE conrelid = 'wallets'::regclass AND NOT convalidated"
        ).fetchone()[0]
        index_valid = conn.execute(
            "SELECT indisvalid FROM pg_index WHERE indexrelid = 'wallets_wallet_one_suspense_per_currency'::regclass"
        ).fetchone()[0]
    print(f"\nmigrate wallets 0011 and corrections over {N_WALLETS:,} wallets ({size}), a writer beside them")
    print(f"  migrations                     {beside.seconds:.2f}s (wallets 0011: {beside.marks[0]:.2f}s)")
    beside.print_rounds()
    print(f"  constraints left NOT VALID     {validated}; suspense index valid: {index_valid}")
    ok = beside.ok and validated == 0 and index_valid
    print("  OK" if ok else "  FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(bench.in_fresh_database(BENCH_DB, run, log))
