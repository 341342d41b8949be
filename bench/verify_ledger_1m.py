#!/usr/bin/env python
"""How long verify_ledger takes over a million logs, against a plain scan.

    .venv/bin/python bench/verify_ledger_1m.py        # a few minutes, most of it loading

1. A fresh database `wallet_bench_ledger` (BENCH_LEDGER_DB), migrated, dropped
   again at the end.
2. The ledger of bench/ledger_harness.py (load_ledger, set-based SQL):
   10,000 customer wallets (BENCH_LEDGER_WALLETS) and 1,000,000 COMPLETED
   logs (BENCH_LEDGER_LOGS), the books balanced, VACUUM ANALYZE.
3. Interleaved rounds, after one unmeasured warm-up of each: the baseline, one
   sequential scan of the table (`SELECT count(*), sum(amount) FROM
   transaction_logs`), then reconciliation.services.ledger_discrepancies (what
   `manage.py verify_ledger` runs). Medians, and the median of each round's
   ratio against the same round's baseline.
4. One discrepancy planted by raw SQL, to show it is found in the same time.
"""

import os
import statistics
import sys
from io import StringIO

import ledger_harness
from ledger_harness import LEDGER_LOGS, LEDGER_ROUNDS, LEDGER_WALLETS, timed

BENCH_DB = os.environ.get("BENCH_LEDGER_DB", "wallet_bench_ledger")
log = ledger_harness.logger("verify_ledger 1M")


def run() -> None:
    from django.core.management import call_command
    from django.db import connection

    from reconciliation.services import ledger_discrepancies

    _, size = ledger_harness.ledger_loaded("bench-ledger", log)

    def baseline():
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*), sum(amount) FROM transaction_logs")
            return cursor.fetchone()

    # Warm-up, unmeasured: both then read from the same warm caches.
    assert ledger_discrepancies() == [], "the generated books must balance"
    scans, checks, found = ledger_harness.scan_and_check(
        baseline, ledger_discrepancies, LEDGER_ROUNDS, log, "verify_ledger"
    )
    assert found == [[]] * LEDGER_ROUNDS, found
    command_seconds, _ = timed(lambda: call_command("verify_ledger", stdout=StringIO()))

    with connection.cursor() as cursor:
        cursor.execute("UPDATE wallets SET balance = balance + 1 WHERE id = md5('ledger-wallet-1')::uuid")
    planted_seconds, planted = timed(ledger_discrepancies)
    assert {d.invariant for d in planted} == {"conservation", "ledger_agreement"}, planted

    ratios = [check / scan for check, scan in zip(checks, scans, strict=True)]
    ledger_harness.print_rows(
        f"verify_ledger over {LEDGER_LOGS:,} COMPLETED logs and {LEDGER_WALLETS + 1:,} wallets ({size}), "
        f"{LEDGER_ROUNDS} rounds",
        [
            ("baseline: SELECT count(*), sum(amount) FROM transaction_logs", f"median {statistics.median(scans):.3f}s"),
            (
                "verify_ledger (ledger_discrepancies)",
                f"median {statistics.median(checks):.3f}s (min {min(checks):.3f}, max {max(checks):.3f})",
            ),
            (
                "ratio to the same round's baseline",
                f"median {statistics.median(ratios):.2f}x (min {min(ratios):.2f}, max {max(ratios):.2f})",
            ),
            ("manage.py verify_ledger, once", f"{command_seconds:.3f}s"),
            (f"with one planted discrepancy ({len(planted)} found)", f"{planted_seconds:.3f}s"),
        ],
    )


if __name__ == "__main__":
    sys.exit(ledger_harness.in_fresh_database(BENCH_DB, run, log))
