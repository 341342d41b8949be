"""What the in-process benches over a database of their own share
(verify_ledger_1m.py, chain_verify_1m.py and the migration_*_1m.py): the
database, made afresh, Django set up on it and dropped at the end; the
ledger of a million logs; timing; and, for a migration, a writer timed round
by round beside it, and its rounds' report.

Each bench keeps only what is its own: its sizes, its load, the migrations
it runs and what it checks after them. The server and its user are
bench/harness.py's (BENCH_PG_HOST, BENCH_PG_PORT, BENCH_PG_USER).
"""

from __future__ import annotations

import os
import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import psycopg
from harness import PG_HOST, PG_PORT, PG_USER, ROOT, pg_admin

T = TypeVar("T")
# A writer round slower than this is a writer waiting on a migration's lock.
BOUND_SECONDS = 1.0
# The ledger's size (load_ledger), and how many rounds a check over it is timed.
LEDGER_WALLETS = int(os.environ.get("BENCH_LEDGER_WALLETS", "10000"))
LEDGER_LOGS = int(os.environ.get("BENCH_LEDGER_LOGS", "1000000"))
LEDGER_ROUNDS = int(os.environ.get("BENCH_LEDGER_ROUNDS", "5"))


def logger(tag: str) -> Callable[[str], None]:
    def log(message: str) -> None:
        print(f"[{tag} {time.strftime('%H:%M:%S')}] {message}", flush=True)

    return log


def timed(fn: Callable[[], T]) -> tuple[float, T]:
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def connect(dbname: str) -> psycopg.Connection:
    """A connection of its own to `dbname`, in autocommit."""
    return psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=dbname, autocommit=True)


def in_fresh_database(dbname: str, run: Callable[[], T], log: Callable[[str], None]) -> T:
    """`run()` with Django set up on `dbname`, made afresh for it (empty, not
    migrated) and dropped afterwards, whatever happens."""
    pg_admin(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
    pg_admin(f'CREATE DATABASE "{dbname}"')
    # Settings are read once, at django.setup(): point them at the bench database first.
    sys.path.insert(0, str(ROOT))
    os.environ["DJANGO_SETTINGS_MODULE"] = "wallet_project.settings"
    os.environ["DATABASE_URL"] = f"postgres://{PG_USER}@{PG_HOST}:{PG_PORT}/{dbname}"
    try:
        import django

        django.setup()
        return run()
    finally:
        from django.db import connections

        connections.close_all()
        pg_admin(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        log(f"dropped {dbname}")


# --- the ledger ------------------------------------------------------------------------


def ledger_wallet_sql(n: str | int) -> str:
    """Wallet n of load_ledger, in SQL (`n` a number or an SQL expression)."""
    return f"md5('ledger-wallet-' || {n})::uuid"


def load_ledger(cursor, *, client_id: int, settlement_id, wallets: int = LEDGER_WALLETS, logs: int = LEDGER_LOGS):
    """`wallets` customer wallets and `logs` COMPLETED logs by set-based SQL:
    one deposit of 1,000,000.00 per wallet from the settlement wallet, the
    rest transfers of 0.01 to 100.00 between random customers (seeded); one
    UPDATE then sets every balance from the ledger, so the books balance.
    VACUUM ANALYZE afterwards, as autovacuum is off on this server. The logs
    are written with triggers off (the foreign keys hold by construction; the
    CHECK constraints still apply to every row)."""
    cursor.execute(
        f"""
        INSERT INTO wallets (id, user_id, kind, currency, balance, is_active, created_at, updated_at, owner_id)
        SELECT {ledger_wallet_sql("n")}, gen_random_uuid(), 'CUSTOMER', 'NGN', 0, true, now(), now(), %s
          FROM generate_series(1, %s) AS n
        """,  # noqa: S608
        [client_id, wallets],
    )
    cursor.execute("SET session_replication_role = replica")
    cursor.execute("SELECT setseed(0.42)")
    cursor.execute(
        f"""
        INSERT INTO transaction_logs (id, client_id, idempotency_key, movement_fingerprint, source_wallet_id,
            destination_wallet_id, amount, currency, type, status, reference, metadata, error_code,
            error_message, created_at, updated_at, completed_at)
        SELECT gen_random_uuid(), %(client)s, 'ledger-' || i, md5(i::text) || md5(i::text),
               CASE WHEN i <= %(wallets)s THEN %(settlement)s ELSE {ledger_wallet_sql("(1 + s)")} END,
               CASE WHEN i <= %(wallets)s THEN {ledger_wallet_sql("i")}
                    -- s + k (k in 1..W-1) modulo W is never s: no transfer to itself.
                    ELSE {ledger_wallet_sql("(1 + (s + k) %% %(wallets)s)")} END,
               CASE WHEN i <= %(wallets)s THEN 1000000.00 ELSE amount END,
               'NGN',
               CASE WHEN i <= %(wallets)s THEN 'DEPOSIT' ELSE 'TRANSFER' END,
               'COMPLETED', 'TXN-' || lpad(i::text, 12, '0'), '{{}}', '', '', now(), now(), now()
          FROM (
            SELECT i,
                   floor(random() * %(wallets)s)::int AS s,
                   1 + floor(random() * (%(wallets)s - 1))::int AS k,
                   round((0.01 + random() * 99.99)::numeric, 2) AS amount
              FROM generate_series(1, %(logs)s) AS i
          ) AS drawn
        """,  # noqa: S608
        {"client": client_id, "wallets": wallets, "settlement": settlement_id, "logs": logs},
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


def migrated_to(targets: list[tuple[str, str]], username: str, log: Callable[[str], None]):
    """The database migrated to `targets` (the state before the migrations a
    bench runs), and a client `username`, returned."""
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    log(f"migrating to the state before: {targets}")
    MigrationExecutor(connection).migrate(targets)
    return get_user_model().objects.create(username=username)


def ledger_loaded(username: str, log: Callable[[str], None], migrate_to: list[tuple[str, str]] | None = None):
    """The database migrated (to `migrate_to`, else all the way), a client
    `username`, and the ledger of load_ledger loaded for it; logs what it
    loaded and how long it took. Returns the client and the size of
    transaction_logs (pretty)."""
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection

    from wallets.services import settlement_wallet_get_or_create

    if migrate_to:
        client = migrated_to(migrate_to, username, log)
        # The models are the latest release's: at an older state the
        # settlement wallet is written as that release wrote it.
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO wallets (id, user_id, kind, currency, balance, is_active, created_at, updated_at) "
                "VALUES (gen_random_uuid(), NULL, 'SETTLEMENT', 'NGN', 0, true, now(), now()) RETURNING id"
            )
            (settlement_id,) = cursor.fetchone()
    else:
        log("migrating")
        call_command("migrate", verbosity=0)
        client = get_user_model().objects.create(username=username)
        settlement_id = settlement_wallet_get_or_create(currency="NGN").pk
    log(f"loading {LEDGER_WALLETS:,} wallets and {LEDGER_LOGS:,} COMPLETED logs")
    with connection.cursor() as cursor:
        seconds, _ = timed(lambda: load_ledger(cursor, client_id=client.pk, settlement_id=settlement_id))
        cursor.execute(
            "SELECT count(*), pg_size_pretty(pg_total_relation_size('transaction_logs')) FROM transaction_logs"
        )
        logs, size = cursor.fetchone()
    log(f"loaded {logs:,} logs ({size} with indexes) in {seconds:.1f}s")
    assert logs == LEDGER_LOGS, logs
    return client, size


def scan_and_check(
    baseline: Callable[[], object], check: Callable[[], T], rounds: int, log: Callable[[str], None], name: str
) -> tuple[list[float], list[float], list[T]]:
    """Interleaved rounds, after one unmeasured warm-up of the baseline (the
    check's own warm-up is the caller's, with its assertion): the baseline,
    then the check. Their seconds per round, and what each check returned."""
    baseline()
    scans, checks, found = [], [], []
    for round_ in range(1, rounds + 1):
        scan_seconds, _ = timed(baseline)
        check_seconds, result = timed(check)
        scans.append(scan_seconds)
        checks.append(check_seconds)
        found.append(result)
        log(f"round {round_}: scan {scan_seconds:.3f}s, {name} {check_seconds:.3f}s")
    return scans, checks, found


def print_rows(title: str, rows: list[tuple[str, str]]) -> None:
    print(f"\n{title}")
    width = max(len(label) for label, _ in rows)
    for label, figure in rows:
        print(f"  {label:<{width}}  {figure}")


# --- a migration beside a writer ------------------------------------------------------------


def move_a_cent(conn: psycopg.Connection, source: str, destination: str) -> None:
    """What a transfer does to `wallets` (the wallets' ids as SQL): both rows
    locked FOR NO KEY UPDATE in id order, 0.01 moved from source to destination."""
    conn.execute(
        f"SELECT id FROM wallets WHERE id IN ({source}, {destination}) ORDER BY id FOR NO KEY UPDATE"  # noqa: S608
    )
    conn.execute(
        f"UPDATE wallets SET balance = balance + CASE WHEN id = {source} THEN -0.01 ELSE 0.01 END,"  # noqa: S608
        f" updated_at = now() WHERE id IN ({source}, {destination})"
    )


def wallet_sql(n: str | int) -> str:
    """Customer wallet n of load_wallets, in SQL (`n` a number or an SQL expression)."""
    return f"md5('bench-wallet-' || {n})::uuid"


def load_wallets(conn: psycopg.Connection, *, owner_id: int, count: int, balance: str, active: str = "true") -> None:
    """`count` customer wallets of `owner_id` (ids wallet_sql(1..count)),
    each holding `balance`; `active` an SQL condition on their number n
    (a % in it written %%: the statement has parameters)."""
    conn.execute(
        f"""
        INSERT INTO wallets (id, owner_id, user_id, kind, currency, balance, is_active, created_at, updated_at)
        SELECT {wallet_sql("n")}, %s, gen_random_uuid(), 'CUSTOMER', 'NGN', {balance}, {active}, now(), now()
          FROM generate_series(1, %s) AS n
        """,  # noqa: S608
        [owner_id, count],
    )


def open_wallet(conn: psycopg.Connection, owner_id: int) -> None:
    """A new empty wallet, as a process of the release before the migration
    writes it (naming only the columns every release has)."""
    conn.execute(
        "INSERT INTO wallets (id, owner_id, user_id, kind, currency, balance, is_active, created_at, updated_at) "
        "VALUES (gen_random_uuid(), %s, gen_random_uuid(), 'CUSTOMER', 'NGN', 0, true, now(), now())",
        [owner_id],
    )


def two_wallets(n: int, wallets: int) -> tuple[int, int] | None:
    """Round n's two wallets (numbers 1..wallets), spread over all of them;
    None when they are the same one."""
    a, b = 1 + (n * 7919) % wallets, 1 + (n * 104729 + 1) % wallets
    return None if a == b else (a, b)


def wallets_round(
    conn: psycopg.Connection,
    n: int,
    *,
    wallets: int,
    owner_id: int,
    then: Callable[[psycopg.Connection], None] | None = None,
) -> bool:
    """Round n of a writer to the `wallets` of load_wallets, in one
    transaction: 0.01 moved between two of them (the lower number paying),
    every 50th round a new wallet (open_wallet), then `then(conn)`. False for
    a round whose two wallets are one (skipped)."""
    pair = two_wallets(n, wallets)
    if pair is None:
        return False
    a, b = sorted(pair)
    with conn.transaction():
        move_a_cent(conn, wallet_sql(a), wallet_sql(b))
        if n % 50 == 0:
            open_wallet(conn, owner_id)
        if then is not None:
            then(conn)
    return True


class Writer(threading.Thread):
    """A writer on its own connection to `dbname`: `write(conn, n)` does round
    n's work (its transactions its own) and returns False for a round it
    skips; each other round's time is recorded, until stopped."""

    def __init__(self, dbname: str, write: Callable[[psycopg.Connection, int], bool | None]):
        super().__init__(daemon=True)
        self.dbname, self.write = dbname, write
        self.stop = threading.Event()
        self.rounds: list[tuple[float, float]] = []  # (started, seconds)
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with connect(self.dbname) as conn:
                n = 0
                while not self.stop.is_set():
                    n += 1
                    started = time.perf_counter()
                    if self.write(conn, n) is False:
                        continue
                    self.rounds.append((started, time.perf_counter() - started))
        except BaseException as exc:  # reported by the main thread
            self.error = exc


@dataclass
class Beside:
    """A migration run beside a writer: the seconds from its start to the end
    of each step, and the writer's rounds before it and during it."""

    marks: list[float]
    before: list[float]
    during: list[float]

    @property
    def seconds(self) -> float:
        return self.marks[-1]

    @property
    def slowest(self) -> float:
        return max(self.during, default=0.0)

    @property
    def ok(self) -> bool:
        """Some rounds ran during the migration and none waited a second or more."""
        return bool(self.during) and self.slowest < BOUND_SECONDS

    def print_rounds(self, noun: str = "it") -> None:
        before, during = self.before, self.during
        print(f"  {'writer rounds before ' + noun:<31}{len(before)}, median {statistics.median(before) * 1000:.1f} ms")
        print(
            f"  {'writer rounds during ' + noun:<31}{len(during)}, median {statistics.median(during) * 1000:.1f} ms, "
            f"slowest {self.slowest * 1000:.1f} ms (bound {BOUND_SECONDS * 1000:.0f} ms)"
        )


def migrate_beside(writer: Writer, steps: list[list[tuple[str, str]]], *, after_seconds: float = 1.0) -> Beside:
    """Start `writer`, let it set its pace for 2 s, migrate to each step's
    targets in turn, let it run `after_seconds` more, and stop it (raising
    what stopped it, if anything did)."""
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    writer.start()
    time.sleep(2.0)  # the writer's pace before the migration, for comparison
    started = time.perf_counter()
    marks = []
    for targets in steps:
        MigrationExecutor(connection).migrate(targets)
        marks.append(time.perf_counter() - started)
    time.sleep(after_seconds)
    writer.stop.set()
    writer.join()
    if writer.error:
        raise writer.error
    return Beside(
        marks,
        before=[seconds for at, seconds in writer.rounds if at < started],
        during=[seconds for at, seconds in writer.rounds if started <= at <= started + marks[-1]],
    )
