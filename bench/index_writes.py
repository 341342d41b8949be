"""What PostgreSQL spends on the tables a movement writes, base schema
against changed schema, in one run (bench/HISTORY.md, 2026-12-07 12:12).

    python bench/index_writes.py DB_A DB_B [ROUNDS] [SINGLES] [BATCHES]
    BENCH_SQL_A=... BENCH_SQL_B=... (SQL run on that database after it is made: a variant to try)

Makes each database (migrated fully; DB_A then migrated back to
BASE_MIGRATION, so that the code is the same and only the schema differs),
with bench/run.py's client and 1,000 funded customer wallets
(bench/setup_data.py), then alternates A, B, A, B... for ROUNDS rounds. A
round, in a child process on one database connection: SINGLES transfers
between random customer wallets (transfer_create, in process: no HTTP, only
the service and PostgreSQL), then BATCHES batches of 1,000 payouts from the
pool wallet (batch_create, non-atomic), after a CHECKPOINT (so that each
round pays the full-page images of the pages it touches first, as a steady
state with a checkpoint every few minutes does). For each, per transfer and per
payout: the backend's CPU (utime+stime of its /proc/<pid>/stat, in ms),
WAL records and bytes of this database (pg_walinspect, between
pg_current_wal_flush_lsn before and after), buffer hits of the
database (pg_stat_database.blks_hit, the backend's stats flushed with
pg_stat_force_next_flush) and of transaction_logs' indexes
(pg_statio_user_indexes); at the end, each database's index sizes and the
share of HOT updates per table. Prints medians per database.

BENCH_REDIS_URL: a Redis database of its own (default 12).
"""

import json
import os
import statistics
import subprocess
import sys
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = str(ROOT / ".venv" / "bin" / "python")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
# The base schema of transaction_logs (BENCH_BASE_MIGRATION= empty: both at the latest).
BASE_MIGRATION = os.environ.get("BENCH_BASE_MIGRATION", "0020")
CUSTOMERS = 1000
CLK_TCK = os.sysconf("SC_CLK_TCK")
TABLES = ("transaction_logs", "wallets", "events", "wallet_daily_totals", "transfer_batches")


def env_for(db: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=f"postgres://postgres@127.0.0.1:5432/{db}",
        REDIS_URL=REDIS_URL,
        CELERY_BROKER_URL=REDIS_URL,
        CACHE_KEY_PREFIX=f"idxw_{db}",
        DJANGO_DEBUG="false",
        LOG_LEVEL="WARNING",
        THROTTLE_RATE_TRANSFERS="10000000/min",
    )
    env.pop("DJANGO_SETTINGS_MODULE", None)
    return env


def run(env, *args) -> str:
    done = subprocess.run([PYTHON, *args], cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"{args} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def psql(db: str, sql: str) -> str:
    return subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", db, "-Atc", sql], capture_output=True, text=True, check=True
    ).stdout.strip()


def setup(db: str, base: bool, sql: str = "") -> None:
    psql("postgres", f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
    psql("postgres", f'CREATE DATABASE "{db}"')
    env = env_for(db)
    run(env, "manage.py", "migrate", "-v0")
    if base and BASE_MIGRATION:
        run(env, "manage.py", "migrate", "-v0", "transfers", BASE_MIGRATION)
    run(env, "manage.py", "create_api_client", "bench", "--group", "Treasury client")
    run(env, "bench/setup_data.py", "bench", str(CUSTOMERS))
    psql(db, "CREATE EXTENSION pg_walinspect")
    for statement in filter(str.strip, sql.split(";")):  # one at a time: VACUUM is no transaction's
        psql(db, statement)
    psql(db, "VACUUM ANALYZE")


# --- one round, in a child process ----------------------------------------------------


def child(singles: int, batches: int) -> None:
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "bench"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "wallet_project.settings")
    import random
    from decimal import Decimal

    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.db import connection
    from harness import wallet_id

    from transfers.models import Payout
    from transfers.services import batch_create, transfer_create

    client = get_user_model().objects.get(username="bench")
    rng = random.Random()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid(), oid FROM pg_database WHERE datname = current_database()")
        pid, database_oid = cursor.fetchone()
        # Keeps the round's WAL until pg_walinspect has read it (a checkpoint
        # may come in the middle); temporary: gone when this process ends.
        cursor.execute("SELECT pg_create_physical_replication_slot(%s, true, true)", [f"idxw_{pid}"])

    def sample() -> dict:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_stat_force_next_flush()")
        with connection.cursor() as cursor:  # a new transaction: the flush happened at the last one's end
            cursor.execute("SELECT pg_stat_clear_snapshot()")
            cursor.execute(
                "SELECT pg_current_wal_flush_lsn()::text, (SELECT blks_hit + blks_read FROM pg_stat_database"
                " WHERE datname = current_database()), (SELECT sum(idx_blks_hit + idx_blks_read)"
                " FROM pg_statio_user_indexes WHERE relname = 'transaction_logs')"
            )
            lsn, blocks, index_blocks = cursor.fetchone()
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) * 1000 / CLK_TCK
        return {"cpu_ms": cpu, "lsn": lsn, "blocks": int(blocks), "log_index_blocks": int(index_blocks or 0)}

    def delta(before: dict, after: dict, n: int) -> dict:
        found = {k: (after[k] - before[k]) / n for k in before if k != "lsn"}
        # This database's WAL alone (the server is shared): the records with
        # a block of one of its relations; commit records carry none.
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*), sum(record_length), sum(fpi_length) FROM pg_get_wal_records_info(%s, %s)"
                " WHERE block_ref LIKE %s",
                [before["lsn"], after["lsn"], f"%/{database_oid}/%"],
            )
            records, length, fpi = cursor.fetchone()
        found.update(wal_records=records / n, wal_bytes=int(length or 0) / n, wal_fpi_bytes=int(fpi or 0) / n)
        return found

    tag = uuid.uuid4().hex[:8]
    # Warm: the service's compiled statements, the caches.
    transfer_create(
        client=client, source_wallet_id=wallet_id(1), destination_wallet_id=wallet_id(2),
        amount=Decimal("0.01"), idempotency_key=f"warm-{tag}", metadata={},
    )  # fmt: skip
    out = {}
    before = sample()
    for n in range(singles):
        a, b = rng.sample(range(1, CUSTOMERS + 1), 2)
        transfer_create(
            client=client, source_wallet_id=wallet_id(a), destination_wallet_id=wallet_id(b),
            amount=Decimal(rng.randint(1, 999)) / 100, idempotency_key=f"s-{tag}-{n}", metadata={},
        )  # fmt: skip
    out["transfer"] = delta(before, sample(), singles)
    if batches:
        before = sample()
        for m in range(batches):
            payouts = tuple(
                Payout(wallet_id(rng.randint(1, CUSTOMERS)), Decimal(rng.randint(1, 999)) / 100, f"p-{tag}-{m}-{i}", {})
                for i in range(1000)
            )
            batch_create(
                client=client, idempotency_key=f"b-{tag}-{m}", source_wallet_id=wallet_id(0),
                atomic=False, payouts=payouts,
            )  # fmt: skip
        out["payout"] = delta(before, sample(), batches * 1000)
    print(json.dumps(out))


def report(db: str) -> dict:
    sizes = psql(
        db,
        "SELECT string_agg(indexrelname || '=' || pg_relation_size(indexrelid), ',' ORDER BY indexrelname)"
        " FROM pg_stat_user_indexes WHERE relname = 'transaction_logs'",
    )
    hot = psql(
        db,
        "SELECT string_agg(relname || '=' || n_tup_hot_upd || '/' || n_tup_upd, ',' ORDER BY relname)"
        f" FROM pg_stat_user_tables WHERE relname IN ({', '.join(repr(t) for t in TABLES)})",
    )
    logs = psql(db, "SELECT count(*) FROM transaction_logs")
    return {"logs": int(logs), "index_bytes": dict(kv.split("=") for kv in sizes.split(",")), "hot_updates": hot}


def main(a: str, b: str, rounds: int, singles: int, batches: int) -> None:
    for db, base, sql in ((a, True, os.environ.get("BENCH_SQL_A", "")), (b, False, os.environ.get("BENCH_SQL_B", ""))):
        setup(db, base, sql)
    results: dict[str, dict[str, list[dict]]] = {a: {}, b: {}}
    for r in range(rounds):
        for db in (a, b) if r % 2 == 0 else (b, a):
            psql(db, "CHECKPOINT")
            found = json.loads(
                run(env_for(db), __file__, "--child", str(singles), str(batches)).strip().splitlines()[-1]
            )
            for kind, figures in found.items():
                results[db].setdefault(kind, []).append(figures)
            print(db, json.dumps(found), flush=True)
        for db in (a, b):
            psql(db, "VACUUM")
    for db in (a, b):
        print(f"\n{db}:")
        for kind, rows in results[db].items():
            medians = {k: round(statistics.median(row[k] for row in rows), 4) for k in rows[0]}
            print(f"  {kind}: {medians}")
        print(f"  {json.dumps(report(db))}")


if __name__ == "__main__":
    if sys.argv[1] == "--child":
        child(int(sys.argv[2]), int(sys.argv[3]))
    else:
        main(sys.argv[1], sys.argv[2], *(int(x) for x in sys.argv[3:6]))
