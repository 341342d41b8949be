"""Real faults for the crash-safety tests, and the checks that follow them.

A fault here is never a mock of PostgreSQL or Redis: a backend is terminated
with pg_terminate_backend from a second connection, a process is killed, a
Redis server is stopped. What is replaced are only the seams where a fault is
injected: the functions of transfers.services and transfers.locks that a
money movement calls in order (see STAGES).
"""

import contextlib
import copy
import functools
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from io import StringIO

import psycopg
import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import close_old_connections, connection
from django.test import override_settings
from rest_framework.test import APIClient

from reconciliation.services import ledger_discrepancies
from transfers import locks, services
from transfers.models import BatchStatus, TransactionLog, TransactionStatus, TransferBatch
from wallets.tests.factories import WalletFactory

# Where a money movement can be interrupted: (module, function, when). The
# action runs just before or just after that call, in the order a transfer
# makes them.
STAGES = {
    # The key is free and nothing is stored yet.
    "before_pending_log": (services, "_record_pending", "before"),
    # The PENDING log is committed; no money has moved.
    "after_pending_log": (services, "_record_pending", "after"),
    # Inside the settle transaction: the log and both wallet rows are locked,
    # nothing is committed.
    "inside_settle": (locks, "lock_log_and_wallets", "after"),
    # The money moved and COMPLETED is committed; the response is not sent yet.
    "after_settle_commit": (services, "transaction_settle", "after"),
    # The same stages of a batch of payouts (transfers.services, "batch disbursements").
    "batch_before_pending": (services, "_record_pending_batch", "before"),
    "batch_after_pending": (services, "_record_pending_batch", "after"),
    # The batch row, the source and every destination are locked, nothing committed.
    "batch_inside_settle": (locks, "lock_wallets", "after"),
    "batch_after_settle_commit": (services, "batch_settle", "after"),
}

# The batch stages, and the batch an interruption there leaves behind (None:
# nothing stored; "settled": its final status is committed).
BATCH_LEFT_BEHIND = {
    "batch_before_pending": None,
    "batch_after_pending": BatchStatus.PENDING,
    "batch_inside_settle": BatchStatus.PENDING,
    "batch_after_settle_commit": "settled",
}


def interrupt_at(stage: str, action: Callable[[], None], *, times: int = 1, patch=setattr) -> None:
    """Run `action` at `stage` of the next `times` money movements.

    A test passes monkeypatch.setattr as `patch`, so the seam is restored after it.
    """
    module, name, when = STAGES[stage]
    original = getattr(module, name)
    remaining = times
    guard = threading.Lock()

    def due() -> bool:
        nonlocal remaining
        with guard:
            remaining -= 1
            return remaining >= 0

    @functools.wraps(original)
    def interrupted(*args, **kwargs):
        # An "after" stage is counted only when the call returned: a call that
        # raised (its connection already killed by an earlier stage of the same
        # movement) never reached the stage, so it must not use up a shot.
        if when == "before" and due():
            action()
        result = original(*args, **kwargs)
        if when == "after" and due():
            action()
        return result

    patch(module, name, interrupted)


# --- PostgreSQL --------------------------------------------------------------------


# The PgBouncer the default alias goes through, while a module runs through
# it (conftest.py's routed_through sets it).
pooler = None


def admin_connection() -> psycopg.Connection:
    """A second connection to the test database, outside Django, in autocommit,
    straight to PostgreSQL (as an administrator's), even while the service's
    connections go through PgBouncer."""
    db = connection.settings_dict
    if pooler is not None:
        return pooler.primary.connect(db["NAME"])
    return psycopg.connect(
        dbname=db["NAME"],
        user=db["USER"] or None,
        password=db["PASSWORD"] or None,
        host=db["HOST"] or None,
        port=db["PORT"] or None,
        autocommit=True,
    )


def terminate_backend(pid: int) -> None:
    with admin_connection() as admin:
        # With a timeout, pg_terminate_backend waits until the backend is gone:
        # the next statement on the victim's connection fails for certain.
        (terminated,) = admin.execute("SELECT pg_terminate_backend(%s, 5000)", [pid]).fetchone()
    assert terminated, f"backend {pid} was not terminated"


def terminate_own_backend() -> None:
    """Kill the server side of this thread's Django connection, the way a
    PostgreSQL restart, a failover or a network cut would.

    Through PgBouncer in transaction pooling (DATABASE_POOL_MODE=transaction)
    a client has a server session of its own only inside a transaction, and
    the pid the client sees is PgBouncer's invention: there every server
    session PgBouncer holds for the test database goes, as a restart or a
    failover takes them, and the test waits until PgBouncer has noticed.
    What the client sees then depends on the stage: a transaction in flight
    loses its session (503); between transactions the pooler opens a new one
    and nothing shows."""
    if pooler is None:
        terminate_backend(connection.connection.info.backend_pid)
        return
    dbname = connection.settings_dict["NAME"]
    sessions = pooler.server_pids(dbname)
    assert sessions, "PgBouncer holds no server session of the test database"
    for pid in sessions:
        terminate_backend(pid)
    # Until PgBouncer has seen them go: what follows meets a live session or
    # none, whatever the order the pooler's event loop takes things in.
    deadline = time.monotonic() + 10
    while set(pooler.server_pids(dbname)) & set(sessions):
        assert time.monotonic() < deadline, "PgBouncer still holds terminated sessions"
        time.sleep(0.01)


def kill_pooled_sessions_under_next_command() -> None:
    """Through PgBouncer: every server session it holds for the test database
    is terminated so that the next command reaches it as it dies. Each is
    stopped (SIGSTOP), told to terminate (SIGTERM, what pg_terminate_backend
    sends) and let go on a moment later: the command PgBouncer hands it waits,
    then is answered with the FATAL error and the connection's end, which
    PgBouncer passes on with its own "server conn crashed?". This is the race
    an operator meets when a server restarts under load. Needs the right to
    signal PostgreSQL's processes (root, as CI runs)."""
    sessions = pooler.server_pids(connection.settings_dict["NAME"])
    assert sessions, "PgBouncer holds no server session of the test database"
    for pid in sessions:
        os.kill(pid, signal.SIGSTOP)
        os.kill(pid, signal.SIGTERM)

    def resume() -> None:
        for pid in sessions:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)

    threading.Timer(0.3, resume).start()


def idle_in_transaction_timeout_ms() -> int:
    """How long a session may sit idle inside a transaction before it is
    ended: PostgreSQL's setting, or through PgBouncer the pooler's
    idle_transaction_timeout (seconds), since no session option passes a
    transaction pooler (wallet_project/settings.py, DATABASE_POOL_MODE)."""
    if pooler is not None:
        return int(float(pooler.setting("idle_transaction_timeout")) * 1000)
    with connection.cursor() as cursor:
        cursor.execute("SELECT setting::int FROM pg_settings WHERE name = 'idle_in_transaction_session_timeout'")
        return cursor.fetchone()[0]


def wait_for_backend_exit(pid: int, timeout: float = 10.0) -> None:
    """A killed client's backend stays until it reads the EOF, holding its
    row locks; wait for it so that SKIP LOCKED does not just pass the log by."""
    deadline = time.monotonic() + timeout
    with admin_connection() as admin:
        while admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone():
            assert time.monotonic() < deadline, f"backend {pid} still alive after {timeout}s"
            time.sleep(0.02)


def database_url() -> str:
    """DATABASE_URL of the test database, for the processes a test starts."""
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def database_env() -> dict[str, str]:
    """The environment that points a process a test starts at the test
    database, the way this test reaches it (straight, or through PgBouncer)."""
    return {"DATABASE_URL": database_url(), "DATABASE_POOL_MODE": settings.DATABASE_POOL_MODE}


# --- the API as a WSGI server would serve it --------------------------------------


def post_money(api: APIClient, path: str, payload: dict, key: str):
    """POST a money-moving request, then end the request as a WSGI server does.

    Django's test client skips close_old_connections at the end of a request;
    the real handler runs it, and it is what drops a connection that died
    during the request (or marks it for a health check on the next one).
    """
    response = api.post(path, payload, format="json", headers={"Idempotency-Key": key})
    close_old_connections()
    return response


def post_batch(api: APIClient, body: dict, key: str):
    """POST /api/transfers/batch under the batch key, ended as post_money ends a request."""
    return post_money(api, "/api/transfers/batch", body, key)


# --- a batch of payouts whose every outcome is known ----------------------------------


class PayoutBatch:
    """A batch from a pool wallet of 100.00 that meets every kind of outcome
    a payout can have, and what it must end as, however it got there:

        0: 10.00 to first             completes
        1: 20.00 to second            completes
        2:  5.00 to an inactive one   wallet_inactive (its log FAILED)
        3: 30.00 to first             completes (40.00 left)
        4: 50.00 to second            insufficient_balance: the money ran out
        5:  1.00 to an unknown one    wallet_not_found (no log; kept on the batch)
        6: 15.00 to second            completes: a later, smaller one still fits

    Atomic: payout 2 is the first failure, so nothing moves (422)."""

    def __init__(self, funded_wallet, owner, *, atomic: bool):
        self.atomic = atomic
        self.pool, self.first, self.second = funded_wallet("100.00"), funded_wallet("0"), funded_wallet("0")
        inactive = WalletFactory(owner=owner, is_active=False)
        destinations = [self.first, self.second, inactive, self.first, self.second, None, self.second]
        amounts = ["10.00", "20.00", "5.00", "30.00", "50.00", "1.00", "15.00"]
        self.payout_keys = [f"payout-{uuid.uuid4()}" for _ in amounts]
        self.key = f"batch-{uuid.uuid4()}"
        self.body = {
            "sourceWalletId": str(self.pool.pk),
            "atomic": atomic,
            "transfers": [
                {"destinationWalletId": str(d.pk if d else uuid.uuid4()), "amount": a, "idempotencyKey": k}
                for d, a, k in zip(destinations, amounts, self.payout_keys, strict=True)
            ],
        }
        if atomic:
            self.outcomes = [("FAILED", "batch_failed")] * 2 + [("FAILED", "wallet_inactive")]
            self.outcomes += [("FAILED", "batch_failed")] * 2 + [("FAILED", "wallet_not_found")]
            self.outcomes += [("FAILED", "batch_failed")]
            self.final_balances = [Decimal("100.00"), 0, 0]
            self.final_status, self.answer_status = BatchStatus.FAILED, 422
        else:
            self.outcomes = [("COMPLETED", ""), ("COMPLETED", ""), ("FAILED", "wallet_inactive")]
            self.outcomes += [("COMPLETED", ""), ("FAILED", "insufficient_balance"), ("FAILED", "wallet_not_found")]
            self.outcomes += [("COMPLETED", "")]
            self.final_balances = [Decimal("25.00"), Decimal("40.00"), Decimal("35.00")]
            self.final_status, self.answer_status = BatchStatus.PARTIALLY_COMPLETED, 201
        # Every payout but the one to an unknown wallet is a transaction of its own.
        self.log_count = len(amounts) - 1

    def balances(self) -> list[Decimal]:
        return balances(self.pool, self.first, self.second)

    def stored(self) -> TransferBatch | None:
        return TransferBatch.objects.filter(source_wallet=self.pool, idempotency_key=self.key).first()

    def logs(self):
        return TransactionLog.objects.filter(idempotency_key__in=self.payout_keys)


# What two equal batches answer alike: ids, keys, references and times are
# each batch's own; "message" says whether it was a replay (checked apart).
_OWN_TO_EACH_BATCH = {"batchId", "sourceWalletId", "createdAt", "finishedAt", "message", "payouts"}
_OWN_TO_EACH_PAYOUT = {"idempotencyKey", "destinationWalletId", "transactionId", "reference"}


def batch_answer_shape(data: dict) -> dict:
    """A batch answer (the response's "data") without what differs between
    two runs of the same batch, so that an interrupted one can be compared
    with one that ran uninterrupted."""
    shape = {field: value for field, value in data.items() if field not in _OWN_TO_EACH_BATCH}
    shape["payouts"] = [
        {
            **{field: value for field, value in payout.items() if field not in _OWN_TO_EACH_PAYOUT},
            "hasTransaction": payout["transactionId"] is not None,
        }
        for payout in data["payouts"]
    ]
    return shape


# --- the books ------------------------------------------------------------------------


def assert_books_balance() -> None:
    """Invariants 1-3 over the whole database, and nothing left half-done."""
    assert ledger_discrepancies() == []
    pending = TransactionLog.objects.filter(status=TransactionStatus.PENDING)
    assert list(pending.values_list("reference", flat=True)) == []
    assert list(TransferBatch.objects.filter(status=BatchStatus.PENDING).values_list("pk", flat=True)) == []


def reconcile_as_beat() -> dict:
    """What Celery beat runs every minute, run now in this process: the
    reconcile task, with every PENDING log and batch old enough. Its summary."""
    from reconciliation.tasks import reconcile_stale_pending

    with override_settings(RECONCILE_PENDING_AFTER=timedelta(0)):
        return reconcile_stale_pending.apply().get()


def reconcile_now() -> str:
    """What on-call runs: `manage.py reconcile --older-than 0`; its output."""
    out = StringIO()
    call_command("reconcile", "--older-than", "0", stdout=out)
    return out.getvalue()


def outcome_of(reference: str, table: str) -> str:
    """The OUTCOME column of `reconcile`'s table for one reference."""
    (row,) = [line.split() for line in table.splitlines() if line.startswith(reference)]
    return row[1]


def balances(*wallets) -> list[Decimal]:
    for wallet in wallets:
        wallet.refresh_from_db(fields=["balance"])
    return [wallet.balance for wallet in wallets]


# --- processes --------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port nothing listens on (so a connection to it is refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def stop_process(process: subprocess.Popen, timeout: float = 15.0) -> None:
    """Stop a process a test started, and every child it forked (it was
    started in a session of its own): politely, then by force."""
    try:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            os.killpg(process.pid, signal.SIGCONT)  # a stopped process acts on SIGTERM only once resumed
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout)
        # A child that outlived its parent (celery's embedded beat) goes too.
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    if process.stdout:
        process.stdout.close()


def start_client_that_hangs(stage: str, client, *args: str, log_path, lock_timeout: float):
    """Start crashing_client.py for `client` with `args` (a transfer, a deposit
    or a batch: see its docstring) in a process of its own, with its own
    Django, PostgreSQL connection and Redis lock, meeting this test's: the
    same database and lock names, locks that expire after `lock_timeout`.
    Return it and its backend pid once it hangs at `stage`."""
    cache = settings.CACHES["default"]
    env = {
        **os.environ,
        **database_env(),
        "REDIS_URL": cache["LOCATION"],
        "CACHE_KEY_PREFIX": cache["KEY_PREFIX"],
        "TRANSFER_LOCK_TIMEOUT": str(lock_timeout),
    }
    with open(log_path, "w") as log:
        process = subprocess.Popen(  # noqa: S603 (our own interpreter and arguments)
            [sys.executable, "-m", "reconciliation.tests.crashing_client", stage, str(client.pk), *args],
            cwd=settings.BASE_DIR,
            env=env,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            start_new_session=True,
        )
    ready, _, _ = select.select([process.stdout], [], [], 30)
    line = process.stdout.readline() if ready else ""
    if not line.startswith("inside "):
        stop_process(process)
        pytest.fail(f"the money movement never reached {stage}:\n{log_path.read_text()}")
    return process, int(line.split()[1])


def retry_until_lock_expires(send: Callable[[], object], *, lock_timeout: float):
    """A client that honours 409's Retry-After until a dead process's Redis
    lock (held for `lock_timeout`) expires: the last response of `send()`."""
    deadline = time.monotonic() + lock_timeout + 5
    response = send()
    while response.status_code == 409 and time.monotonic() < deadline:
        time.sleep(int(response.headers["Retry-After"]))
        response = send()
    return response


def batch_args(key: str, body: dict) -> tuple[str, ...]:
    """crashing_client.py's arguments for a batch: its key and its API body."""
    return ("batch", key, json.dumps(body))


def kill_process(process: subprocess.Popen, backend_pid: int) -> None:
    """SIGKILL: no finally block, no rollback from the client, its Redis lock
    left behind. Then wait until its backend is gone, so its row locks are."""
    try:
        os.kill(process.pid, signal.SIGKILL)
        assert process.wait(10) == -signal.SIGKILL
    finally:
        stop_process(process)
    if backend_pid:  # a session that held row locks
        wait_for_backend_exit(backend_pid)


# --- Redis ------------------------------------------------------------------------------


def caches_at(settings, url: str) -> dict:
    """settings.CACHES with the cache (the Redis locks) at `url`."""
    caches = copy.deepcopy(settings.CACHES)
    caches["default"]["LOCATION"] = url
    return caches
