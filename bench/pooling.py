"""Beyond one database connection per worker: the service straight to
PostgreSQL beside the same service through PgBouncer (transaction pooling),
and the history endpoint read from the primary beside from a streaming
replica. `make bench` runs it after bench/run.py; on its own:

    .venv/bin/python bench/pooling.py          # 3 rounds of 10 s runs, about 6 minutes
    BENCH_QUICK=1 .venv/bin/python bench/pooling.py   # 1 round of 5 s runs

1. A fresh database (BENCH_POOL_DB, default wallet_bench_pool), set up as
   bench/run.py does (1,000 funded wallets, an API client).
2. PgBouncer with the deployment's configuration (ops/pgbouncer/pgbouncer.ini)
   and a streaming replica of the local PostgreSQL (pg_basebackup), both from
   wallet_project/tests/clusters.py, on free ports under temporary directories
   removed at the end.
3. Three web servers as in production (the Procfile's line): straight to
   PostgreSQL; through PgBouncer (DATABASE_POOL_MODE=transaction); straight,
   with DATABASE_REPLICA_URL naming the replica.
4. Rounds, interleaved, each pair in alternating order: transfers (wrk,
   uniform, c=8) direct then pooled; history reads (bench/wrk/history.lua,
   c=8) from the primary then from the replica. Ratios are paired within a
   round, then the median is taken: pooled/direct transfers/s, replica/primary
   reads/s.
5. verify_ledger on the database after the runs.

Both servers of a pair share the machine's 2 cores with PostgreSQL (and the
replica's recovery): the ratio says what the pooler or the replica costs
here, not what they buy on separate hosts.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

os.environ.setdefault("BENCH_DB", os.environ.get("BENCH_POOL_DB", "wallet_bench_pool"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness import (  # noqa: E402
    BENCH_DB,
    PG_HOST,
    PG_PORT,
    PG_USER,
    PYTHON,
    RESULTS,
    ROOT,
    CpuMeter,
    Service,
    free_port,
    log,
    median,
    require_tools,
    run_wrk,
)
from run import DURATION, QUICK, ROUNDS, WARMUP, Bench  # noqa: E402

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "wallet_project.settings")
import django  # noqa: E402

django.setup()
from wallet_project.tests.clusters import Address, PgBouncer, Replica  # noqa: E402

CONCURRENCY = int(os.environ.get("BENCH_POOL_CONCURRENCY", 8))


def url_for(address: Address) -> str:
    return f"postgres://{address.user}@{address.host}:{address.port}/{BENCH_DB}"


class PoolingBench(Bench):
    def start_variants(self) -> None:
        primary = Address(PG_HOST, int(PG_PORT), PG_USER)
        log("starting PgBouncer (ops/pgbouncer/pgbouncer.ini) and a streaming replica (pg_basebackup)")
        self.bouncer = PgBouncer(primary).start()
        self.replica = Replica(primary).create()
        self.replica.wait_for_replay()
        self.direct = self.service
        self.pooled = Service(
            port=free_port(),
            env={**self.env, "DATABASE_URL": url_for(self.bouncer.address), "DATABASE_POOL_MODE": "transaction"},
            log_path=self.outdir / "web-pooled.log",
        )
        self.with_replica = Service(
            port=free_port(),
            env={**self.env, "DATABASE_REPLICA_URL": url_for(self.replica.address)},
            log_path=self.outdir / "web-replica.log",
        )
        for service in (self.pooled, self.with_replica):
            service.start()

    def stop_variants(self) -> None:
        for name in ("pooled", "with_replica", "direct"):
            if getattr(self, name, None):
                getattr(self, name).stop()
        if getattr(self, "replica", None):
            self.replica.destroy()
        if getattr(self, "bouncer", None):
            self.bouncer.stop()

    def run(self, variant: str, service: Service, script: str, duration: float, round_no: int | None) -> dict:
        run_id = f"r{round_no if round_no is not None else 'w'}-{variant}-{uuid.uuid4().hex[:6]}"
        with CpuMeter(service, self.postmaster) as meter:
            res = run_wrk(
                url=service.url,
                mode="uniform",
                connections=CONCURRENCY,
                threads=1,
                duration=duration,
                wallets_file=self.wallets_file,
                token=self.token,
                run_id=run_id,
                replay_file=None,
                raw_dir=self.raw,
                script=script,
            )
        cpu = meter.result
        n = max(res["transfers"], 1)
        run = {
            "run_id": run_id,
            "round": round_no,
            "variant": variant,
            "per_s": res["tps"],
            "p99_ms": res["p99_ms"],
            "5xx": res["5xx"],
            "non_2xx": res["non_2xx"],
            "service_cpu_ms": cpu["service_ms"] / n,
            "postgres_cpu_ms": cpu["postgres_ms"] / n,
            "cpu": cpu,
        }
        log(
            f"{'warm-up' if round_no is None else f'round {round_no}'}: {variant:<16} {res['tps']:8.1f}/s"
            f"  p99 {res['p99_ms']:6.1f} ms  non-2xx {res['non_2xx']}  5xx {res['5xx']}"
            f"  svc {run['service_cpu_ms']:.2f}  pg {run['postgres_cpu_ms']:.2f} ms/request"
        )
        if round_no is not None:
            self.runs.append(run)
        return run

    def pairs(self, round_no: int | None, duration: float) -> None:
        transfers = [("transfers direct", self.direct), ("transfers pooled", self.pooled)]
        reads = [("history primary", self.direct), ("history replica", self.with_replica)]
        # Alternate who goes first, so neither always meets the warmer machine.
        if round_no and round_no % 2 == 0:
            transfers.reverse()
            reads.reverse()
        for variant, service in transfers:
            self.run(variant, service, "transfer.lua", duration, round_no)
        for variant, service in reads:
            self.run(variant, service, "history.lua", duration, round_no)


def replica_reads(service: Service) -> dict[str, float]:
    """wallet_replica_reads_total of a web server, from its /metrics: proof
    that the replica, not the primary, served its reads."""
    request = urllib.request.Request(
        f"{service.url}/metrics", headers={"Authorization": f"Bearer {service.env['METRICS_TOKEN']}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        text = response.read().decode()
    return {
        labels: float(value)
        for labels, value in re.findall(r"^wallet_replica_reads_total(\{[^}]*\}) (\S+)$", text, re.M)
    }


def ratio_rows(runs: list[dict]) -> list[str]:
    by = {(r["round"], r["variant"]): r for r in runs}
    rounds = sorted({r["round"] for r in runs})
    lines = []
    for numerator, denominator in (
        ("transfers pooled", "transfers direct"),
        ("history replica", "history primary"),
    ):
        ratios = [by[(n, numerator)]["per_s"] / by[(n, denominator)]["per_s"] for n in rounds]
        lines.append(f"{numerator} / {denominator}: {median(ratios):.2f}  (rounds {min(ratios):.2f}-{max(ratios):.2f})")
    return lines


def table(runs: list[dict]) -> list[str]:
    variants = ["transfers direct", "transfers pooled", "history primary", "history replica"]
    lines = [f"{'variant':<18} {'per s':>8} {'p99 ms':>8} {'svc ms':>7} {'pg ms':>6} {'5xx':>4}"]
    for variant in variants:
        mine = [r for r in runs if r["variant"] == variant]
        lines.append(
            f"{variant:<18} {median([r['per_s'] for r in mine]):8.1f} {median([r['p99_ms'] for r in mine]):8.1f}"
            f" {median([r['service_cpu_ms'] for r in mine]):7.2f} {median([r['postgres_cpu_ms'] for r in mine]):6.2f}"
            f" {sum(r['5xx'] for r in mine):4d}"
        )
    return lines


def main() -> None:
    require_tools()
    bench = PoolingBench(RESULTS / (time.strftime("%Y%m%d-%H%M%S") + "-pooling"))
    log(f"results in {bench.outdir}; {'QUICK: ' if QUICK else ''}{ROUNDS} round(s) x {DURATION:.0f} s, c={CONCURRENCY}")
    try:
        bench.setup()
        bench.start_variants()
        bench.pairs(None, WARMUP)
        for round_no in range(1, ROUNDS + 1):
            bench.pairs(round_no, DURATION)
        served = replica_reads(bench.with_replica)
    finally:
        bench.stop_variants()
    books = subprocess.run(
        [PYTHON, "manage.py", "verify_ledger"], cwd=ROOT, env=bench.env, capture_output=True, text=True
    )
    report = "\n".join(
        [
            f"Medians of {ROUNDS} round(s) of {DURATION:.0f} s at c={CONCURRENCY} (per request CPU in ms):",
            *table(bench.runs),
            "",
            "Paired ratios (median of the rounds):",
            *ratio_rows(bench.runs),
            "",
            f"Who served the replica server's history reads (wallet_replica_reads_total): {served}",
            f"verify_ledger exit {books.returncode}: {(books.stdout + books.stderr).strip().splitlines()[-1:]}",
        ]
    )
    (bench.outdir / "runs.json").write_text(json.dumps({"runs": bench.runs}, indent=2))
    (bench.outdir / "table.txt").write_text(report + "\n")
    print()
    print(report)
    no_5xx = all(r["5xx"] == 0 for r in bench.runs)
    sys.exit(0 if books.returncode == 0 and no_5xx else 1)


if __name__ == "__main__":
    main()
