"""Where the service's time goes, per transfer and per replay.

    .venv/bin/python bench/profile_service.py

On its own database (BENCH_PROFILE_DB, default wallet_bench_profile; the
wallet_bench of the last `make bench` is left alone), set up as bench/run.py
does, with the service under the Procfile's web server (bin/web) as in production:

1. py-spy (--gil: only samples where a worker runs Python, i.e. CPU, not
   waits) on the web server's processes while wrk drives the uniform
   workload at c=8, then the replay workload at c=8;
2. py-spy --idle while wrk drives one transfer at a time (c=1): wall-clock,
   where a lone transfer waits;
3. bench/roundtrips.py: SQL statements, PostgreSQL and Redis round trips of one
   transfer and one replay through the WSGI application, and in-process CPU per
   request (plus a cProfile of each);
4. a summary: each profile split into the phases of a request (auth,
   permissions, parsing, the service's steps, rendering...) and by
   layer (psycopg, ORM, DRF, Django, redis-py, app code), with CPU ms
   per transfer from /proc.

Everything goes to bench/results/profile-<time>/ (raw py-spy stacks are in the
collapsed format speedscope.app and flamegraph.pl read).
"""

from __future__ import annotations

import collections
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("BENCH_DB", os.environ.get("BENCH_PROFILE_DB", "wallet_bench_profile"))
os.environ.setdefault("BENCH_REPLAY_KEYS", "300")
os.environ.setdefault("BENCH_WARMUP", "4")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import run as bench_run  # noqa: E402
from harness import PYTHON, RESULTS, ROOT, VENV_BIN, CpuMeter, log, run_wrk  # noqa: E402

DURATION = float(os.environ.get("BENCH_PROFILE_DURATION", 20))
RATE = int(os.environ.get("BENCH_PROFILE_RATE", 50))

# --- classifying stacks -----------------------------------------------------------------------

# (function name, path fragment) -> phase. The deepest match in a stack wins,
# so the order of nesting decides (a query inside the permission check is
# "permissions").
PHASES = [
    (r"^SyncWorker\.handle$", "gunicorn", "gunicorn: read request, write response"),
    (r"^Logger\.access$", "gunicorn/glogging", "gunicorn: access log line"),
    (r"^WSGIHandler\.__call__$", "django/core/handlers", "django: request/response objects, middleware"),
    (r"^close_old_connections$", "django/db", "django: close_old_connections (signals)"),
    (r"^BaseHandler\.resolve_request$", "django/core/handlers", "django: URL resolving"),
    (r"^APIView\.dispatch$", "rest_framework", "drf: dispatch"),
    (r"^APIView\.initialize_request$", "rest_framework", "drf: Request wrapper"),
    (r"^APIView\.perform_authentication$", "rest_framework", "auth: token lookup (1 query)"),
    (r"^APIView\.check_permissions$", "rest_framework", "auth: permission check (2 queries)"),
    (
        r"^APIView\.(perform_content_negotiation|determine_version|check_throttles)$",
        "rest_framework",
        "drf: negotiation",
    ),
    (r"^Request\._load_data_and_files$", "rest_framework", "drf: parse JSON body"),
    (r"^(Serializer\.is_valid|BaseSerializer\.is_valid)$", "rest_framework", "serializer: validate request"),
    (r"^money_response$", "transfers/views", "serializer: response data"),
    (r"^APIView\.finalize_response$", "rest_framework", "drf: finalize + render response"),
    (r"^(Response\.rendered_content|SimpleTemplateResponse\.render)$", "", "drf: finalize + render response"),
    (r"^(is_usable|.*\.is_usable)$", "django/db/backends", "django: connection health check (SELECT 1)"),
    (r"^_execute$", "transfers/services", "service: other"),
    (r"^canonical_fingerprint$", "transfers/models", "service: movement fingerprint"),
    (r"^_find_log$", "transfers/services", "service: idempotency lookup (1 query)"),
    (r"^idempotency_lock$", "transfers/locks", "service: Redis lock acquire/release"),
    (r"^.*resolve_wallets$", "transfers/services", "service: resolve wallets (1 query)"),
    (r"^_record_pending$", "transfers/services", "service: PENDING log (BEGIN, INSERT, COMMIT)"),
    (r"^transaction_settle$", "transfers/services", "settle: other (BEGIN/COMMIT, atomic)"),
    (r"^lock_log_and_wallets$", "transfers/locks", "settle: lock the log row, then the wallets"),
    (r"^lock_wallets$", "transfers/locks", "settle: lock wallets"),
    (r"^_move_money$", "transfers/services", "settle: UPDATE wallets"),
    (r"^Model\.save$", "django/db/models", None),  # labelled by its caller below
]

LAYERS = [
    ("psycopg", "psycopg (driver)"),
    ("django/db/backends", "django db backend"),
    ("django/db/models", "django ORM"),
    ("django/contrib/auth", "django auth"),
    ("rest_framework", "DRF"),
    ("redis", "redis-py"),
    ("django_redis", "redis-py"),
    ("gunicorn", "gunicorn"),
    ("whitenoise", "whitenoise"),
    ("django", "django core"),
    ("transfers/", "app code"),
    ("wallets/", "app code"),
    ("wallet_project/", "app code"),
    ("logging/", "logging"),
    ("json/", "json"),
]

FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*):(?P<line>\d+)\)$")


def parse_raw(path: Path):
    """Collapsed stacks -> list of (frames [(func, file)], count), worker processes only."""
    out = []
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = []
        for f in stack.split(";"):
            m = FRAME.match(f)
            if m:
                frames.append((m["func"], m["file"]))
        out.append((frames, int(count)))
    return out


def phase_of(frames) -> str:
    label = "unattributed (py-spy partial stacks), web server loop"
    in_settle = False
    for func, file in frames:
        if func == "_settle_once" and "transfers/services" in file:
            in_settle = True
        for pattern, fragment, name in PHASES:
            if fragment in file and re.match(pattern, func):
                if name is None:  # Model.save
                    name = "settle: UPDATE log (save)" if in_settle else label
                label = name
                break
    return label


def layer_of(frames) -> str:
    if not frames:
        return "?"
    func, file = frames[-1]
    for fragment, name in LAYERS:
        if fragment in file:
            return name
    return "python stdlib / other"


def analyse(path: Path, cpu_ms_per_request: float | None, title: str, only_requests: bool = False) -> str:
    stacks = parse_raw(path)
    if only_requests:
        stacks = [(f, n) for f, n in stacks if any(func == "WSGIHandler.__call__" for func, _ in f)]
    total = sum(n for _, n in stacks) or 1
    phases, layers = collections.Counter(), collections.Counter()
    for frames, n in stacks:
        phases[phase_of(frames)] += n
        layers[layer_of(frames)] += n
    lines = [
        f"## {title}",
        f"{total} samples" + (f"; {cpu_ms_per_request:.2f} CPU ms per request" if cpu_ms_per_request else ""),
    ]
    per = f"{'ms/req':>7}" if cpu_ms_per_request else ""
    lines.append(f"\n{'by phase (deepest match)':<52}{'share':>7}{per}")
    for name, n in phases.most_common():
        ms = f"{n / total * cpu_ms_per_request:7.2f}" if cpu_ms_per_request else ""
        lines.append(f"  {name:<50}{n / total * 100:6.1f}%{ms}")
    lines.append(f"\n{'by layer (leaf frame)':<52}{'share':>7}{per}")
    for name, n in layers.most_common():
        ms = f"{n / total * cpu_ms_per_request:7.2f}" if cpu_ms_per_request else ""
        lines.append(f"  {name:<50}{n / total * 100:6.1f}%{ms}")
    return "\n".join(lines)


def analyse_wall(path: Path) -> str:
    """c=1 with --idle: of the time a request is in progress, how much waits on
    PostgreSQL, on Redis, and how much runs Python."""
    stacks = [(f, n) for f, n in parse_raw(path) if any(func == "WSGIHandler.__call__" for func, _ in f)]
    total = sum(n for _, n in stacks) or 1
    kinds = collections.Counter()
    for frames, n in stacks:
        leaf_func, leaf_file = frames[-1] if frames else ("?", "?")
        files = " ".join(file for _, file in frames[-4:])
        if "psycopg" in leaf_file and ("wait" in leaf_func.lower()):
            kinds["waiting on PostgreSQL (psycopg wait)"] += n
        elif "redis" in files and ("read" in leaf_func.lower() or "recv" in leaf_func.lower() or "socket" in leaf_file):
            kinds["waiting on Redis (socket read)"] += n
        else:
            kinds["running Python (or runnable)"] += n
    phases = collections.Counter()
    for frames, n in stacks:
        phases[phase_of(frames)] += n
    lines = ["## wall clock of a lone transfer (c=1, py-spy --idle, request in progress only)", f"{total} samples"]
    for name, n in kinds.most_common():
        lines.append(f"  {name:<50}{n / total * 100:6.1f}%")
    lines.append("  by phase:")
    for name, n in phases.most_common():
        lines.append(f"    {name:<48}{n / total * 100:6.1f}%")
    return "\n".join(lines)


# --- driving it ---------------------------------------------------------------------------------


def record(bench, out: Path, name: str, workload: str, conc: int, extra: list[str]) -> dict:
    raw = out / f"pyspy-{name}.txt"
    spy = subprocess.Popen(
        [
            str(VENV_BIN / "py-spy"),
            "record",
            "--pid",
            str(bench.service.master_pid),
            "--subprocesses",
            "--nonblocking",
            "--rate",
            str(RATE),
            "--format",
            "raw",
            "--duration",
            str(int(DURATION) + 2),
            "-o",
            str(raw),
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    time.sleep(1.0)
    with CpuMeter(bench.service, bench.postmaster) as meter:
        res = run_wrk(
            url=bench.service.url,
            mode=workload,
            connections=conc,
            threads=1,
            duration=DURATION,
            wallets_file=bench.wallets_file,
            token=bench.token,
            run_id=f"prof-{name}",
            replay_file=bench.replay_file if workload == "replay" else None,
            raw_dir=bench.raw,
        )
    spy_out = spy.communicate()[0]
    (out / f"pyspy-{name}.log").write_text(spy_out)
    cpu_ms = meter.result["service_ms"] / max(res["transfers"], 1)
    log(f"profiled {name}: {res['tps']:.1f}/s under py-spy, {cpu_ms:.2f} service CPU ms per request")
    return {"raw": raw, "cpu_ms_per_request": cpu_ms, "tps": res["tps"], "p50_ms": res["p50_ms"]}


def main() -> None:
    if not shutil.which("wrk") or not (VENV_BIN / "py-spy").exists():
        sys.exit("needs wrk (apt-get install -y wrk) and py-spy (.venv/bin/pip install py-spy)")
    out = RESULTS / f"profile-{time.strftime('%Y%m%d-%H%M%S')}"
    bench = bench_run.Bench(out)
    try:
        bench.setup()
        bench.seed_replays()
        log("warm-up")
        bench.service_run("uniform", 8, 5, None)
        bench.service_run("replay", 8, 3, None)
        uniform = record(bench, out, "uniform-c8-gil", "uniform", 8, ["--gil"])
        replay = record(bench, out, "replay-c8-gil", "replay", 8, ["--gil"])
        lone = record(bench, out, "uniform-c1-idle", "uniform", 1, ["--idle"])
    finally:
        if getattr(bench, "service", None):
            bench.service.stop()
    log("round trips and in-process cost (bench/roundtrips.py)")
    subprocess.run(
        [PYTHON, "bench/roundtrips.py", str(out), "300"], cwd=ROOT, env=bench.env, check=True, stdout=subprocess.DEVNULL
    )
    rt = json.loads((out / "roundtrips.json").read_text())

    parts = [
        "# Profile of the wallet service (Procfile web server, DEBUG off)",
        f"py-spy at {RATE} Hz on master + workers; {DURATION:.0f} s per workload; service CPU from /proc.",
        "",
        analyse(
            uniform["raw"],
            uniform["cpu_ms_per_request"],
            f"CPU of a transfer (uniform, c=8, {uniform['tps']:.0f}/s under py-spy --gil)",
        ),
        "",
        analyse(
            replay["raw"],
            replay["cpu_ms_per_request"],
            f"CPU of a replay (c=8, {replay['tps']:.0f}/s under py-spy --gil)",
        ),
        "",
        analyse_wall(lone["raw"]),
        "",
        "## round trips of one request (bench/roundtrips.py, through the WSGI application)",
    ]
    for label in ("transfer", "replay"):
        r = rt[label]
        parts.append(
            f"{label}: HTTP {r['status']}; {r['sql_queries']} SQL statements from the ORM, "
            f"{r['postgres_round_trips']} PostgreSQL round trips, {r['redis_round_trips']} Redis round trips"
        )
        for s in r["postgres_wire"]:
            parts.append(f"    pg    {s[:160]}")
        for c in r["redis_commands"]:
            parts.append(f"    redis {c}")
    ip = rt["in_process"]
    parts += [
        "",
        "## in-process cost per request (no HTTP server, no load generator; one process, c=1)",
        *(
            f"{k}: {v['cpu_ms_per_request_plain']:.2f} CPU ms, {v['wall_ms_per_request_plain']:.2f} wall ms "
            f"(under cProfile: {v['cpu_ms_per_request_cprofiled']:.2f} CPU ms; see cprofile-{k}.txt)"
            for k, v in ip.items()
        ),
    ]
    summary = "\n".join(parts)
    (out / "summary.txt").write_text(summary + "\n")
    print(summary)
    log(f"profiles in {out}")


if __name__ == "__main__":
    main()
