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

import functools
import os
import sys
import time

import ledger_harness as bench

BENCH_DB = os.environ.get("BENCH_MIGRATION_DB", "wallet_bench_migration")
N_WALLETS = int(os.environ.get("BENCH_MIGRATION_WALLETS", "1000000"))
BEFORE = [("wallets", "0012_wallet_frozen_note"), ("transfers", "0013_batch_body_digest")]
AFTER = [("wallets", "0016_wallet_held"), ("transfers", "0018_holds")]
log = bench.logger("migration holds 1M")


def run() -> int:
    owner = bench.migrated_to(BEFORE, "bench-migration", log)

    log(f"loading {N_WALLETS:,} customer wallets (each with a balance of 10.00, some frozen)")
    started = time.perf_counter()
    with bench.connect(BENCH_DB) as conn:
        bench.load_wallets(conn, owner_id=owner.pk, count=N_WALLETS, balance="10.00", active="n %% 1000 <> 0")
        conn.execute(
            "INSERT INTO events (client_id, type, data) SELECT %s, 'transfer.completed', '{}' "
            "FROM generate_series(1, %s)",
            [owner.pk, N_WALLETS],
        )
        conn.execute("VACUUM ANALYZE wallets")
        conn.execute("VACUUM ANALYZE events")
        size = conn.execute("SELECT pg_size_pretty(pg_total_relation_size('wallets'))").fetchone()[0]
    log(f"loaded in {time.perf_counter() - started:.1f}s ({size} with indexes)")

    def event(conn) -> None:
        conn.execute("INSERT INTO events (client_id, type, data) VALUES (%s, 'transfer.completed', '{}')", [owner.pk])

    # A transfer's writes to `wallets` and its event; every 50th round a new
    # wallet, written without `held` as the previous release does.
    write = functools.partial(bench.wallets_round, wallets=N_WALLETS, owner_id=owner.pk, then=event)
    beside = bench.migrate_beside(bench.Writer(BENCH_DB, write), [AFTER])
    with bench.connect(BENCH_DB) as conn:
        validated = conn.execute(
            "SELECT count(*) FROM pg_constraint WHERE conrelid IN ('wallets'::regclass, 'events'::regclass) "
            "AND NOT convalidated"
        ).fetchone()[0]
        held = conn.execute("SELECT count(*) FROM wallets WHERE held <> 0").fetchone()[0]
    print(f"\nmigrate wallets 0015, 0016, transfers 0018 over {N_WALLETS:,} wallets ({size}) and as many events")
    print(f"  migrations                     {beside.seconds:.2f}s")
    beside.print_rounds()
    print(f"  constraints left NOT VALID     {validated}; wallets with held <> 0: {held}")
    ok = beside.ok and validated == 0 and held == 0
    print("  OK" if ok else "  FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(bench.in_fresh_database(BENCH_DB, run, log))
