#!/usr/bin/env python
"""How long the ledger chain takes to build and to verify over a million
finished transactions (issue 31: verify within 10 s).

    .venv/bin/python bench/chain_verify_1m.py        # a few minutes, most of it loading

1. The ledger of bench/ledger_harness.py (load_ledger, in a database of
   this bench's own, `wallet_bench_chain`, BENCH_CHAIN_DB; its sizes
   BENCH_LEDGER_WALLETS and BENCH_LEDGER_LOGS): 10,000 wallets,
   1,000,000 COMPLETED logs, written with triggers off, so they have no
   finished_txid, as logs finished before transfers/0016 have none.
2. The chain built from nothing by chain_extend (what the first beat tick
   after the deploy does: stamp those logs, then chain them 5,000 a
   transaction), timed once.
3. Interleaved rounds, after one unmeasured warm-up: a plain scan of the
   table (`SELECT count(*), sum(amount) FROM transaction_logs`) and
   chain_verify (what `manage.py verify_ledger --chain` runs for the chain).
   Medians, and the median ratio against the same round's scan.
4. One amount changed by hand near the end of the chain: found, at its
   position, in the same time.
"""

import os
import statistics
import sys

import ledger_harness
from ledger_harness import LEDGER_LOGS, LEDGER_ROUNDS, timed

BENCH_DB = os.environ.get("BENCH_CHAIN_DB", "wallet_bench_chain")
log = ledger_harness.logger("chain 1M")


def run() -> None:
    from django.db import connection

    from reconciliation import chain

    ledger_harness.ledger_loaded("bench-chain", log)
    build_seconds, appended = timed(chain.chain_extend)
    assert appended == LEDGER_LOGS, appended
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE ledger_chain")
        cursor.execute("VACUUM ANALYZE transaction_logs")
        cursor.execute("SELECT pg_size_pretty(pg_total_relation_size('ledger_chain'))")
        (size,) = cursor.fetchone()
    log(f"built the chain ({appended:,} links, {size}) in {build_seconds:.1f}s")

    def baseline():
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*), sum(amount) FROM transaction_logs")
            return cursor.fetchone()

    assert chain.chain_verify().ok, "the chain just built must hold"
    scans, checks, reports = ledger_harness.scan_and_check(
        baseline, chain.chain_verify, LEDGER_ROUNDS, log, "chain_verify"
    )
    for report in reports:
        assert report.ok and report.links == LEDGER_LOGS, report

    victim = LEDGER_LOGS - 10
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE transaction_logs SET amount = amount + 0.01 "
            "WHERE id = (SELECT log_id FROM ledger_chain WHERE position = %s)",
            [victim],
        )
    planted_seconds, planted = timed(chain.chain_verify)
    assert planted.broken is not None and planted.broken.position == victim, planted

    ratios = [check / scan for check, scan in zip(checks, scans, strict=True)]
    ledger_harness.print_rows(
        f"the ledger chain over {LEDGER_LOGS:,} COMPLETED logs, {LEDGER_ROUNDS} rounds",
        [
            ("chain_extend from nothing (stamp + chain)", f"{build_seconds:.1f}s"),
            ("baseline: SELECT count(*), sum(amount) FROM transaction_logs", f"median {statistics.median(scans):.3f}s"),
            (
                "chain_verify",
                f"median {statistics.median(checks):.3f}s (min {min(checks):.3f}, max {max(checks):.3f})",
            ),
            ("ratio to the same round's baseline", f"median {statistics.median(ratios):.2f}x"),
            (f"with one amount changed at position {victim:,} (found there)", f"{planted_seconds:.3f}s"),
        ],
    )


if __name__ == "__main__":
    sys.exit(ledger_harness.in_fresh_database(BENCH_DB, run, log))
