#!/usr/bin/env python
"""How long the ledger chain takes to build and to verify over a million
finished transactions (issue 31: verify within 10 s).

    .venv/bin/python bench/chain_verify_1m.py        # a few minutes, most of it loading

1. The ledger of bench/verify_ledger_1m.py (its loader, in a database of
   this bench's own, `wallet_bench_chain`, BENCH_CHAIN_DB): 10,000 wallets,
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
import time
from pathlib import Path

os.environ.setdefault("BENCH_LEDGER_DB", os.environ.get("BENCH_CHAIN_DB", "wallet_bench_chain"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import verify_ledger_1m as ledger  # noqa: E402 (the database above must be set first)


def log(message: str) -> None:
    print(f"[chain 1M {time.strftime('%H:%M:%S')}] {message}", flush=True)


def main() -> None:
    ledger.server(f'DROP DATABASE IF EXISTS "{ledger.BENCH_DB}" WITH (FORCE)')
    ledger.server(f'CREATE DATABASE "{ledger.BENCH_DB}"')
    try:
        run()
    finally:
        from django.db import connections

        connections.close_all()
        ledger.server(f'DROP DATABASE IF EXISTS "{ledger.BENCH_DB}" WITH (FORCE)')
        log(f"dropped {ledger.BENCH_DB}")


def run() -> None:
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection

    from reconciliation import chain
    from wallets.services import settlement_wallet_get_or_create

    log(f"migrating {ledger.BENCH_DB}")
    call_command("migrate", verbosity=0)
    client = get_user_model().objects.create(username="bench-chain")
    settlement = settlement_wallet_get_or_create(currency="NGN")
    log(f"loading {ledger.N_WALLETS:,} wallets and {ledger.N_LOGS:,} COMPLETED logs")
    with connection.cursor() as cursor:
        ledger.load(cursor, client.pk, settlement.pk)

    build_seconds, appended = ledger.timed(chain.chain_extend)
    assert appended == ledger.N_LOGS, appended
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

    baseline()
    assert chain.chain_verify().ok, "the chain just built must hold"
    scans, checks = [], []
    for round_ in range(1, ledger.ROUNDS + 1):
        scan_seconds, _ = ledger.timed(baseline)
        check_seconds, report = ledger.timed(chain.chain_verify)
        assert report.ok and report.links == ledger.N_LOGS, report
        scans.append(scan_seconds)
        checks.append(check_seconds)
        log(f"round {round_}: scan {scan_seconds:.3f}s, chain_verify {check_seconds:.3f}s")

    victim = ledger.N_LOGS - 10
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE transaction_logs SET amount = amount + 0.01 "
            "WHERE id = (SELECT log_id FROM ledger_chain WHERE position = %s)",
            [victim],
        )
    planted_seconds, planted = ledger.timed(chain.chain_verify)
    assert planted.broken is not None and planted.broken.position == victim, planted

    ratios = [check / scan for check, scan in zip(checks, scans, strict=True)]
    rows = [
        ("chain_extend from nothing (stamp + chain)", f"{build_seconds:.1f}s"),
        ("baseline: SELECT count(*), sum(amount) FROM transaction_logs", f"median {statistics.median(scans):.3f}s"),
        (
            "chain_verify",
            f"median {statistics.median(checks):.3f}s (min {min(checks):.3f}, max {max(checks):.3f})",
        ),
        ("ratio to the same round's baseline", f"median {statistics.median(ratios):.2f}x"),
        (f"with one amount changed at position {victim:,} (found there)", f"{planted_seconds:.3f}s"),
    ]
    print(f"\nthe ledger chain over {ledger.N_LOGS:,} COMPLETED logs, {ledger.ROUNDS} rounds")
    width = max(len(label) for label, _ in rows)
    for label, figure in rows:
        print(f"  {label:<{width}}  {figure}")


if __name__ == "__main__":
    main()
