#!/usr/bin/env python
"""The ledger chain's migrations (transfers/0016 and 0017, wallets/0014,
reconciliation/0001) on a ledger of a million transactions while money keeps
moving: no writer waits a second; then the chain built over the old logs and
the new ones together, and verified.

    .venv/bin/python bench/migration_chain_1m.py     # a few minutes, most of it loading

1. A fresh database `wallet_bench_migration_chain` (BENCH_MIGRATION_CHAIN_DB),
   migrated up to transfers/0013 and wallets/0012 (the state before), dropped
   again at the end.
2. The ledger of bench/ledger_harness.py (load_ledger): 10,000 wallets
   (BENCH_LEDGER_WALLETS), 1,000,000 COMPLETED logs (BENCH_LEDGER_LOGS),
   VACUUM ANALYZE.
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
import sys

import ledger_harness as bench

BENCH_DB = os.environ.get("BENCH_MIGRATION_CHAIN_DB", "wallet_bench_migration_chain")
BEFORE = [("transfers", "0013_batch_body_digest"), ("wallets", "0012_wallet_frozen_note")]
AFTER = [
    ("transfers", "0017_chain_order_index"),
    ("wallets", "0014_ledger_checkpoint_event"),
    ("reconciliation", "0001_ledger_chain"),
]
log = bench.logger("migration chain 1M")


def run() -> int:
    from django.db import connection

    client, size = bench.ledger_loaded("bench-migration-chain", log, migrate_to=BEFORE)
    connection.close()

    def write(conn, n: int) -> bool:
        """A transfer as the service writes it: the PENDING log in
        autocommit, then in one transaction both wallets locked and 0.01
        moved, the log set COMPLETED (which fires the new trigger once it
        exists)."""
        pair = bench.two_wallets(n, bench.LEDGER_WALLETS)
        if pair is None:
            return False
        source, destination = (bench.ledger_wallet_sql(number) for number in pair)
        (log_id,) = conn.execute(
            "INSERT INTO transaction_logs (id, client_id, idempotency_key, movement_fingerprint,"
            " source_wallet_id, destination_wallet_id, amount, currency, type, status, reference,"
            " metadata, error_code, error_message, created_at, updated_at)"
            f" VALUES (gen_random_uuid(), %s, %s, '-', {source}, {destination}, 0.01, 'NGN',"  # noqa: S608
            " 'TRANSFER', 'PENDING', %s, '{}', '', '', now(), now()) RETURNING id",
            [client.pk, f"writer-{n}", f"TXN-WRITER{n:010d}"],
        ).fetchone()
        with conn.transaction():
            bench.move_a_cent(conn, source, destination)
            conn.execute(
                "UPDATE transaction_logs SET status = 'COMPLETED', completed_at = now(),"
                " updated_at = now() WHERE id = %s AND status = 'PENDING'",
                [log_id],
            )
        return True

    # 2 s after: some transfers settled under the trigger.
    beside = bench.migrate_beside(bench.Writer(BENCH_DB, write), [AFTER], after_seconds=2.0)
    connection.close()
    with bench.connect(BENCH_DB) as conn:
        index_valid = conn.execute(
            "SELECT indisvalid FROM pg_index WHERE indexrelid = 'idx_txlogs_chain_order'::regclass"
        ).fetchone()[0]
        not_valid = conn.execute(
            "SELECT count(*) FROM pg_constraint WHERE conrelid = 'events'::regclass AND NOT convalidated"
        ).fetchone()[0]
        stamped = conn.execute("SELECT count(*) FROM transaction_logs WHERE finished_txid IS NOT NULL").fetchone()[0]

    from reconciliation import chain

    build_seconds, appended = bench.timed(chain.chain_extend)
    verify_seconds, report = bench.timed(chain.chain_verify)
    print(f"\nthe chain's migrations over {bench.LEDGER_LOGS:,} logs ({size}), a writer beside them")
    print(f"  migrations                     {beside.seconds:.2f}s")
    beside.print_rounds("them")
    print(f"  chain index valid: {index_valid}; events CHECKs left NOT VALID: {not_valid}")
    print(f"  logs the trigger stamped       {stamped} (the writer's, after 0016)")
    print(f"  chain built                    {appended:,} links in {build_seconds:.1f}s")
    print(f"  chain verified                 {'holds' if report.ok else report} in {verify_seconds:.1f}s")
    ok = beside.ok and index_valid and not_valid == 0 and report.ok and stamped > 0
    print("  OK" if ok else "  FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(bench.in_fresh_database(BENCH_DB, run, log))
