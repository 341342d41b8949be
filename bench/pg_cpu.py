"""PostgreSQL's CPU and shared buffer hits per transfer, two checkouts
compared in one run, alternating (bench/README.md, "PostgreSQL's CPU per
transfer").

    .venv/bin/python bench/pg_cpu.py BASE_CHECKOUT [N] [ROUNDS]   # about 3 minutes at 500 x 3

Sets up its own database (BENCH_DB, default wallet_pg_cpu) with this
checkout's migrations: the bench API client (Treasury client, which may pay
other clients' wallets) owns 20 funded wallets and the pool wallet (0), and a
second client owns 20 more (21..40), so every transfer has two owners and
writes two events. Then, each round, for each workload (uniform: a random
wallet of the bench client to a random wallet of the other; hot: the pool
wallet to a random wallet of the other) and each checkout (BASE_CHECKOUT,
then this one), a fresh process runs that checkout's code in-process
(transfers.services.transfer_create, no HTTP): a warm-up, then N sequential
transfers, reading around them its PostgreSQL backend's CPU time
(/proc/<pid>/schedstat: nanoseconds on CPU) and the database's shared
buffer hits (pg_stat_database.blks_hit, flushed with
pg_stat_force_next_flush; nothing else uses the database). VACUUM before
each process (autovacuum is off). Both checkouts run on one database: their
schemas must be the same. Prints each process's figures, then the medians
per checkout and workload, as JSON lines.

The PostgreSQL server must run on this machine (its backend's /proc).
"""

import json
import os
import random
import statistics
import subprocess
import sys
import uuid
from decimal import Decimal
from pathlib import Path

HERE = Path(__file__).resolve()
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("BENCH_DB", "wallet_pg_cpu")
os.environ.setdefault("BENCH_REDIS_URL", "redis://127.0.0.1:6379/11")

import harness  # noqa: E402

WALLETS = 20  # per client
PAYEE_NAME = "bench-payee"
WARM_UP = 30


def setup(env: dict) -> None:
    """A fresh database, migrated, with the two clients' funded wallets."""
    harness.recreate_database()
    harness.manage(env, "migrate", "--noinput")
    harness.manage(env, "create_api_client", harness.CLIENT_NAME, "--group", "Treasury client")
    harness.manage(env, "create_api_client", PAYEE_NAME, "--group", "Treasury client")
    _run([harness.PYTHON, str(HERE), "fund"], cwd=ROOT, env=env)


def _run(command: list[str], **kwargs) -> str:
    """A child's standard output; its standard error shown if it fails."""
    proc = subprocess.run(command, capture_output=True, text=True, check=False, **kwargs)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return proc.stdout


def fund() -> None:
    """In the set-up process: the wallets, every cent deposited (as bench/setup_data.py)."""
    import django  # noqa: PLC0415

    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "wallet_project.settings")
    django.setup()
    from django.contrib.auth import get_user_model  # noqa: PLC0415
    from django.contrib.auth.models import Group  # noqa: PLC0415

    from transfers.services import deposit_create  # noqa: PLC0415
    from wallets.models import Wallet, WalletKind  # noqa: PLC0415
    from wallets.services import settlement_wallet_get_or_create  # noqa: PLC0415

    users = get_user_model().objects
    payer, payee = users.get(username=harness.CLIENT_NAME), users.get(username=PAYEE_NAME)
    # The bench client also pays into the other client's wallets (transfers.pay_other_clients).
    payer.groups.add(Group.objects.get(name="Disbursement client"))
    settlement_wallet_get_or_create(currency="NGN")
    owners = {n: payer if n <= WALLETS else payee for n in range(2 * WALLETS + 1)}
    Wallet.objects.bulk_create(
        Wallet(
            id=harness.wallet_id(n), owner=owner, user_id=harness.wallet_user_id(n), currency="NGN",
            kind=WalletKind.CUSTOMER,
        )
        for n, owner in owners.items()
    )  # fmt: skip
    for n, owner in owners.items():
        deposit_create(
            client=owner, wallet_id=harness.wallet_id(n), amount=Decimal("1000000000.00" if n else "1000000000000.00"),
            idempotency_key=f"bench-funding-{n}", metadata={"bench": "funding"},
        )  # fmt: skip


def backend_ns(pid: int) -> int:
    """Nanoseconds PostgreSQL backend `pid` has run on a CPU."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])


def drive(root: str, workload: str, n: int, tag: str) -> None:
    """In a process of its own, running checkout `root`'s code: WARM_UP
    transfers, then `n` measured; prints one JSON line."""
    sys.path.insert(0, root)
    os.chdir(root)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "wallet_project.settings")
    import django  # noqa: PLC0415

    django.setup()
    from django.contrib.auth import get_user_model  # noqa: PLC0415
    from django.db import connection  # noqa: PLC0415

    from transfers.services import transfer_create  # noqa: PLC0415

    client = get_user_model().objects.get(username=harness.CLIENT_NAME)
    rng = random.Random(f"{workload}-{tag}")

    def transfer(key: str) -> None:
        source = 0 if workload == "hot" else rng.randint(1, WALLETS)
        destination = rng.randint(WALLETS + 1, 2 * WALLETS)
        result = transfer_create(
            client=client, source_wallet_id=harness.wallet_id(source),
            destination_wallet_id=harness.wallet_id(destination), amount=Decimal("0.01"),
            idempotency_key=key, metadata={"bench": "pg_cpu"},
        )  # fmt: skip
        assert result.log.status == "COMPLETED", result.log.status

    run = uuid.uuid4().hex[:8]
    for i in range(WARM_UP):
        transfer(f"warm-{run}-{i}")
    with connection.cursor() as cursor:

        def counters() -> tuple[int, int]:
            cursor.execute("SELECT pg_stat_force_next_flush()")
            cursor.execute("SELECT blks_hit FROM pg_stat_database WHERE datname = current_database()")
            return backend_ns(pid), cursor.fetchone()[0]

        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
        ns, hits = counters()
        for i in range(n):
            transfer(f"{run}-{i}")
        ns_after, hits_after = counters()
    print(
        json.dumps(
            {
                "checkout": tag, "workload": workload, "transfers": n,
                "pg_cpu_ms_per_transfer": round((ns_after - ns) / n / 1e6, 4),
                "buffer_hits_per_transfer": round((hits_after - hits) / n, 1),
            }
        ),
        flush=True,
    )  # fmt: skip


def compare(base: str, n: int, rounds: int) -> None:
    env = harness.service_env()
    setup(env)
    runs = []
    for _ in range(rounds):
        for workload in ("uniform", "hot"):
            for tag, root in (("base", base), ("change", str(ROOT))):
                harness.pg_admin("VACUUM", db=harness.BENCH_DB)
                out = _run([harness.PYTHON, str(HERE), "drive", root, workload, str(n), tag], cwd=root, env=env)
                runs.append(json.loads(out.strip().splitlines()[-1]))
                print(json.dumps(runs[-1]), flush=True)
    for workload in ("uniform", "hot"):
        for tag in ("base", "change"):
            mine = [r for r in runs if r["workload"] == workload and r["checkout"] == tag]
            print(
                json.dumps(
                    {
                        "median": True, "checkout": tag, "workload": workload,
                        **{k: round(statistics.median(r[k] for r in mine), 4) for k in
                           ("pg_cpu_ms_per_transfer", "buffer_hits_per_transfer")},
                    }
                )
            )  # fmt: skip


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command == "fund":
        fund()
    elif command == "drive":
        drive(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5])
    elif command and not command.isdigit():
        compare(command, int(sys.argv[2]) if len(sys.argv) > 2 else 500, int(sys.argv[3]) if len(sys.argv) > 3 else 3)
    else:
        sys.exit(__doc__)
