#!/usr/bin/env python
"""How long verify_ledger takes over a million logs, against a plain scan.

    .venv/bin/python bench/verify_ledger_1m.py        # a few minutes, most of it loading

1. A fresh database `wallet_bench_ledger` (BENCH_LEDGER_DB), migrated, dropped
   again at the end.
2. Set-based SQL (generate_series) loads 10,000 customer wallets
   (BENCH_LEDGER_WALLETS) and 1,000,000 COMPLETED logs (BENCH_LEDGER_LOGS):
   one deposit of 1,000,000.00 per wallet from the settlement wallet, the
   rest transfers of 0.01 to 100.00 between random customers (seeded). One
   UPDATE then sets every balance from the ledger, so the books balance.
   VACUUM ANALYZE afterwards, as autovacuum is off on this server.
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
import time
from io import StringIO
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
PG_HOST = os.environ.get("BENCH_PG_HOST", "127.0.0.1")
PG_PORT = os.environ.get("BENCH_PG_PORT", "5432")
PG_USER = os.environ.get("BENCH_PG_USER", "postgres")
BENCH_DB = os.environ.get("BENCH_LEDGER_DB", "wallet_bench_ledger")
N_WALLETS = int(os.environ.get("BENCH_LEDGER_WALLETS", "10000"))
N_LOGS = int(os.environ.get("BENCH_LEDGER_LOGS", "1000000"))
ROUNDS = int(os.environ.get("BENCH_LEDGER_ROUNDS", "5"))

# Settings are read once, at django.setup(): point them at the bench database first.
sys.path.insert(0, str(ROOT))
os.environ["DJANGO_SETTINGS_MODULE"] = "wallet_project.settings"
os.environ["DATABASE_URL"] = f"postgres://{PG_USER}@{PG_HOST}:{PG_PORT}/{BENCH_DB}"


def log(message: str) -> None:
    print(f"[verify_ledger 1M {time.strftime('%H:%M:%S')}] {message}", flush=True)


def server(sql: str) -> None:
    """A statement on the maintenance database (CREATE and DROP DATABASE)."""
    with psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", autocommit=True) as conn:
        conn.execute(sql)


def timed(fn) -> tuple[float, object]:
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def load(cursor, client_id: int, settlement_id) -> None:
    # Wallet n has the id md5('ledger-wallet-' || n), so the logs can name it.
    cursor.execute(
        """
        INSERT INTO wallets (id, user_id, kind, currency, balance, is_active, created_at, updated_at, owner_id)
        SELECT md5('ledger-wallet-' || n)::uuid, gen_random_uuid(), 'CUSTOMER', 'NGN', 0, true, now(), now(), %s
          FROM generate_series(1, %s) AS n
        """,
        [client_id, N_WALLETS],
    )
    # The foreign keys hold by construction: skip their per-row triggers while
    # loading (the CHECK constraints still apply to every row).
    cursor.execute("SET session_replication_role = replica")
    cursor.execute("SELECT setseed(0.42)")
    cursor.execute(
        """
        INSERT INTO transaction_logs (id, client_id, idempotency_key, movement_fingerprint, source_wallet_id,
            destination_wallet_id, amount, currency, type, status, reference, metadata, error_code,
            error_message, created_at, updated_at, completed_at)
        SELECT gen_random_uuid(), %(client)s, 'ledger-' || i, md5(i::text) || md5(i::text),
               CASE WHEN i <= %(wallets)s THEN %(settlement)s
                    ELSE md5('ledger-wallet-' || (1 + s))::uuid END,
               CASE WHEN i <= %(wallets)s THEN md5('ledger-wallet-' || i)::uuid
                    -- s + k (k in 1..W-1) modulo W is never s: no transfer to itself.
                    ELSE md5('ledger-wallet-' || (1 + (s + k) %% %(wallets)s))::uuid END,
               CASE WHEN i <= %(wallets)s THEN 1000000.00 ELSE amount END,
               'NGN',
               CASE WHEN i <= %(wallets)s THEN 'DEPOSIT' ELSE 'TRANSFER' END,
               'COMPLETED', 'TXN-' || lpad(i::text, 12, '0'), '{}', '', '', now(), now(), now()
          FROM (
            SELECT i,
                   floor(random() * %(wallets)s)::int AS s,
                   1 + floor(random() * (%(wallets)s - 1))::int AS k,
                   round((0.01 + random() * 99.99)::numeric, 2) AS amount
              FROM generate_series(1, %(logs)s) AS i
          ) AS drawn
        """,
        {"client": client_id, "wallets": N_WALLETS, "settlement": settlement_id, "logs": N_LOGS},
    )
    cursor.execute("SET session_replication_role = DEFAULT")
    cursor.execute(
        """
        UPDATE wallets w SET balance = ledger.total
          FROM (
            SELECT wallet_id, sum(delta) AS total FROM (
                SELECT source_wallet_id AS wallet_id, -amount AS delta FROM transaction_logs
                UNION ALL
                SELECT destination_wallet_id, amount FROM transaction_logs
            ) AS legs GROUP BY wallet_id
          ) AS ledger
         WHERE w.id = ledger.wallet_id
        """
    )
    cursor.execute("VACUUM ANALYZE wallets")
    cursor.execute("VACUUM ANALYZE transaction_logs")


def main() -> None:
    server(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')
    server(f'CREATE DATABASE "{BENCH_DB}"')
    try:
        run()
    finally:
        from django.db import connections

        connections.close_all()
        server(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')
        log(f"dropped {BENCH_DB}")


def run() -> None:
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection

    from reconciliation.services import ledger_discrepancies
    from wallets.services import settlement_wallet_get_or_create

    log(f"migrating {BENCH_DB}")
    call_command("migrate", verbosity=0)
    client = get_user_model().objects.create(username="bench-ledger")
    settlement = settlement_wallet_get_or_create(currency="NGN")

    log(f"loading {N_WALLETS:,} wallets and {N_LOGS:,} COMPLETED logs")
    with connection.cursor() as cursor:
        seconds, _ = timed(lambda: load(cursor, client.pk, settlement.pk))
        cursor.execute(
            "SELECT count(*), pg_size_pretty(pg_total_relation_size('transaction_logs')) FROM transaction_logs"
        )
        logs, size = cursor.fetchone()
    log(f"loaded {logs:,} logs ({size} with indexes) in {seconds:.1f}s")
    assert logs == N_LOGS

    def baseline():
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*), sum(amount) FROM transaction_logs")
            return cursor.fetchone()

    # Warm-up, unmeasured: both then read from the same warm caches.
    baseline()
    assert ledger_discrepancies() == [], "the generated books must balance"

    scans, checks = [], []
    for round_ in range(1, ROUNDS + 1):
        scan_seconds, _ = timed(baseline)
        check_seconds, found = timed(ledger_discrepancies)
        assert found == [], found
        scans.append(scan_seconds)
        checks.append(check_seconds)
        log(f"round {round_}: scan {scan_seconds:.3f}s, verify_ledger {check_seconds:.3f}s")
    command_seconds, _ = timed(lambda: call_command("verify_ledger", stdout=StringIO()))

    with connection.cursor() as cursor:
        cursor.execute("UPDATE wallets SET balance = balance + 1 WHERE id = md5('ledger-wallet-1')::uuid")
    planted_seconds, planted = timed(ledger_discrepancies)
    assert {d.invariant for d in planted} == {"conservation", "ledger_agreement"}, planted

    ratios = [check / scan for check, scan in zip(checks, scans, strict=True)]
    rows = [
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
    ]
    print(f"\nverify_ledger over {N_LOGS:,} COMPLETED logs and {N_WALLETS + 1:,} wallets ({size}), {ROUNDS} rounds")
    width = max(len(label) for label, _ in rows)
    for label, figure in rows:
        print(f"  {label:<{width}}  {figure}")


if __name__ == "__main__":
    main()
