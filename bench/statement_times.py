"""What PostgreSQL spends on each statement of a transfer, split into its
protocol steps: parse, bind (where a prepared statement gets a custom plan,
when PostgreSQL plans it for the values given) and execute.

    DATABASE_URL=... REDIS_URL=... python bench/statement_times.py [N] [uniform|hot]

Against a database made by bench/run.py's setup (the "bench" API client and
its wallets: BENCH_DB's after a `make bench`), on the PostgreSQL server of
this machine, whose log it reads (POSTGRES_LOG, default Debian's). Runs 30
transfers to warm up (a prepared statement's first five executes are planned
for their values), then N (default 400) in this process (transfer_create, no
HTTP) with `log_min_duration_statement = 0` on its connection, and prints the
microseconds per transfer of each step of each statement, most first. The
durations are the server's wall time: on a quiet machine, its CPU.
"""

import collections
import os
import random
import re
import sys
import uuid
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "wallet_project.settings")

import django  # noqa: E402

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.db import connection  # noqa: E402
from harness import CLIENT_NAME, wallet_id  # noqa: E402

from transfers.services import transfer_create  # noqa: E402

POSTGRES_LOG = os.environ.get("POSTGRES_LOG", "/var/log/postgresql/postgresql-15-main.log")
WARM_UP = 30
WALLETS = int(os.environ.get("BENCH_WALLETS", 1000))  # as bench/run.py set them up
# One line per step: "duration: 0.123 ms  bind <name>: WITH legs AS(...".
STEP = re.compile(r"duration: ([0-9.]+) ms  (statement|parse|bind|execute)[^:]*: \s*(.{0,40})")


def main(n: int, workload: str) -> None:
    client = get_user_model().objects.get(username=CLIENT_NAME)
    rng = random.Random(1)

    def transfer(key: str) -> None:
        source = 0 if workload == "hot" else rng.randint(1, WALLETS)
        destination = rng.randint(1, WALLETS)
        while destination == source:
            destination = rng.randint(1, WALLETS)
        result = transfer_create(
            client=client, source_wallet_id=wallet_id(source), destination_wallet_id=wallet_id(destination),
            amount=Decimal("0.01"), idempotency_key=key, metadata={"bench": "statement_times"},
        )  # fmt: skip
        assert result.log.status == "COMPLETED", result.log.status

    run = uuid.uuid4().hex[:8]
    for i in range(WARM_UP):
        transfer(f"warm-{run}-{i}")
    start = os.path.getsize(POSTGRES_LOG)
    with connection.cursor() as cursor:
        cursor.execute("SET log_min_duration_statement = 0")
    for i in range(n):
        transfer(f"{run}-{i}")
    with connection.cursor() as cursor:
        cursor.execute("RESET log_min_duration_statement")
    with open(POSTGRES_LOG) as log:
        log.seek(start)
        text = log.read()
    total: dict[str, float] = collections.defaultdict(float)
    for duration, step, statement in STEP.findall(text):
        total[f"{step:9} {' '.join(statement.split())[:30]}"] += float(duration)
    for name, ms in sorted(total.items(), key=lambda item: -item[1]):
        print(f"{ms / n * 1000:9.1f} us/transfer  {name}")
    print(f"{sum(total.values()) / n * 1000:9.1f} us/transfer  in all")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 400, sys.argv[2] if len(sys.argv) > 2 else "uniform")
