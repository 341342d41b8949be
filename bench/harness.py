"""The pieces bench/run.py, bench/profile_service.py and bench/instructions.py
share: the bench database, the service as the Procfile starts it in
production (bin/web: Granian), the load generators (wrk, pgbench) and the CPU
meters that read /proc.

Nothing here imports Django: the service runs in its own processes, set up
through manage.py and bench/setup_data.py with the bench environment.
"""

from __future__ import annotations

import glob
import hashlib
import json
import math
import os
import re
import resource
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
# The checkout's virtualenv; BENCH_VENV_BIN points elsewhere (a worktree
# using its main checkout's).
VENV_BIN = Path(os.environ.get("BENCH_VENV_BIN", ROOT / ".venv" / "bin"))
PYTHON = str(VENV_BIN / "python")

PG_HOST = os.environ.get("BENCH_PG_HOST", "127.0.0.1")
PG_PORT = os.environ.get("BENCH_PG_PORT", "5432")
PG_USER = os.environ.get("BENCH_PG_USER", "postgres")
BENCH_DB = os.environ.get("BENCH_DB", "wallet_bench")
# A Redis database number nobody else uses on this shared server.
BENCH_REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/5")
CLIENT_NAME = "bench"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# --- identities: wallet n has a fixed id, so pgbench can name it in SQL --------


def wallet_id(n: int) -> uuid.UUID:
    """Wallet n (0 = the pool wallet, 1..N = customers): md5('bench-wallet-n') as
    a UUID, which pgbench computes in SQL as md5('bench-wallet-' || n)::uuid."""
    return uuid.UUID(hashlib.md5(f"bench-wallet-{n}".encode()).hexdigest())


def wallet_user_id(n: int) -> uuid.UUID:
    return uuid.UUID(hashlib.md5(f"bench-user-{n}".encode()).hexdigest())


# --- the bench database --------------------------------------------------------------


def pg_admin(sql: str, db: str = "postgres") -> list[tuple]:
    import psycopg

    with psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=db, autocommit=True) as conn:
        cur = conn.execute(sql)
        return cur.fetchall() if cur.description else []


def database_url() -> str:
    return f"postgres://{PG_USER}@{PG_HOST}:{PG_PORT}/{BENCH_DB}"


def service_env(secret_key: str | None = None) -> dict[str, str]:
    """The environment of a production start (DEBUG off, a real secret key)
    pointed at the bench database and the bench Redis database."""
    env = dict(os.environ)
    env.update(
        DJANGO_DEBUG="false",
        DJANGO_SECRET_KEY=secret_key or secrets.token_urlsafe(50),
        DATABASE_URL=database_url(),
        REDIS_URL=BENCH_REDIS_URL,
        CELERY_BROKER_URL=BENCH_REDIS_URL,
        # Its own key space: two benches sharing a Redis database would
        # otherwise share the credentials version, and one's set-up would
        # empty the other's API key cache mid-measurement.
        CACHE_KEY_PREFIX=f"bench_{BENCH_DB}",
        # As production logs: one JSON line per request and per movement.
        LOG_FORMAT="json",
        METRICS_TOKEN=secrets.token_urlsafe(32),
        # The rate limits stay on (their Redis round trip is part of the cost
        # measured), set far above what one bench client sends.
        THROTTLE_RATE_TRANSFERS="10000000/min",
        THROTTLE_RATE_REPLAYS="10000000/min",
        THROTTLE_RATE_READS="10000000/min",
        PATH=f"{VENV_BIN}:{env.get('PATH', '')}",
        PYTHONUNBUFFERED="1",
    )
    env.pop("DJANGO_SETTINGS_MODULE", None)
    return env


def manage(env: dict, *args: str, capture: bool = True) -> str:
    proc = subprocess.run(
        [PYTHON, "manage.py", *args], cwd=ROOT, env=env, capture_output=capture, text=True, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def recreate_database() -> None:
    pg_admin(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')
    pg_admin(f'CREATE DATABASE "{BENCH_DB}"')


def vacuum_analyze() -> None:
    """autovacuum is off on this server: before each run, do what it would
    have done meanwhile in production (where it is on) to every table the
    runs write, for the service and pgbench alike: dead row versions
    removed, statistics and visibility maps fresh. Without it a run inherits
    the one before's dead versions: after the hot runs the pool wallet's row
    had some 13,000, and every foreign-key check of a batch's 1,000 payouts
    walked them, a batch's PENDING commit 15 -> 229 ms (bench/HISTORY.md,
    2026-12-07 17:40)."""
    pg_admin("VACUUM (ANALYZE)", db=BENCH_DB)


def redis_db_keys() -> int:
    import redis

    return redis.Redis.from_url(BENCH_REDIS_URL).dbsize()


# --- the service, as the Procfile starts it --------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_times(pid: int) -> tuple[int, int, int, int, int] | None:
    """(ppid, utime, stime, cutime, cstime) in clock ticks, None if gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    rest = data[data.rindex(")") + 2 :].split()
    # rest[0] is the state (field 3); utime is field 14.
    return int(rest[1]), int(rest[11]), int(rest[12]), int(rest[13]), int(rest[14])


def all_pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def children_of(ppid: int) -> list[int]:
    out = []
    for pid in all_pids():
        t = proc_times(pid)
        if t and t[0] == ppid:
            out.append(pid)
    return out


def descendants_of(root: int) -> dict[int, int]:
    """Every process below `root` (children, theirs, ...): pid -> parent pid."""
    parents = {}
    for pid in all_pids():
        t = proc_times(pid)
        if t:
            parents[pid] = t[0]
    below: dict[int, int] = {}
    frontier = {root}
    while frontier:
        frontier = {pid for pid, ppid in parents.items() if ppid in frontier and pid not in below}
        below.update((pid, parents[pid]) for pid in frontier)
    return below


def is_granian(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"granian" in f.read()
    except OSError:
        return False


def procfile_command(name: str) -> str:
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.startswith(f"{name}:"):
            return line.split(":", 1)[1].strip()
    raise RuntimeError(f"no {name!r} process in the Procfile")


@dataclass
class Service:
    port: int
    env: dict
    log_path: Path
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        # Exactly the Procfile's web line (what `make start` runs), with the
        # bench port; `exec` so that the server is this process, for /proc.
        env = {**self.env, "HOST": "127.0.0.1", "PORT": str(self.port), "PATH": f"{VENV_BIN}:{os.environ['PATH']}"}
        self.log_file = open(self.log_path, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            ["bash", "-c", f"exec {procfile_command('web')}"],
            cwd=ROOT,
            env=env,
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the web server exited ({self.proc.returncode}); see {self.log_path}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        else:
            raise RuntimeError(f"/health did not answer 200 within 60 s; see {self.log_path}")
        # All workers booted (they answer /health in turn; give stragglers a moment).
        time.sleep(1.0)

    @property
    def master_pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def worker_pids(self) -> list[int]:
        """Granian's workers: the children of the Granian process, which
        bin/web runs beside nginx (the edge)."""
        tree = descendants_of(self.master_pid)
        granian = {pid for pid, ppid in tree.items() if ppid == self.master_pid and is_granian(pid)}
        return [pid for pid, ppid in tree.items() if ppid in granian]

    def cpu_ticks(self) -> int:
        """The whole service: bin/web and every process below it (Granian and
        its workers, nginx and its workers), utime+stime, plus what exited
        processes used (their parents reaped them: cutime+cstime)."""
        total = 0
        for pid in [self.master_pid, *descendants_of(self.master_pid)]:
            t = proc_times(pid)
            if t:
                total += t[1] + t[2] + t[3] + t[4]
        return total

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log_file.close()


# --- PostgreSQL CPU from /proc -----------------------------------------------------------


def postgres_pids() -> list[int]:
    pids = []
    for pid in all_pids():
        try:
            with open(f"/proc/{pid}/comm") as f:
                if f.read().strip() == "postgres":
                    pids.append(pid)
        except OSError:
            pass
    return pids


def postmaster_pid() -> int:
    pids = set(postgres_pids())
    for pid in pids:
        t = proc_times(pid)
        if t and t[0] not in pids:
            return pid
    raise RuntimeError("no postgres postmaster visible in /proc (is PostgreSQL on this machine?)")


def postgres_ticks(postmaster: int) -> int:
    """All postgres processes: live ones' utime+stime, plus the postmaster's
    cutime+cstime, which holds the CPU of every backend that has exited
    (pgbench's connections close before the run's last reading)."""
    total = 0
    for pid in postgres_pids():
        t = proc_times(pid)
        if t:
            total += t[1] + t[2]
            if pid == postmaster:
                total += t[3] + t[4]
    return total


def _pg_backend_db(pid: int) -> str:
    """The database of a backend from its process title
    ("postgres: 15/main: postgres wallet_bench 127.0.0.1(5432) idle"),
    or "background" for the checkpointer, walwriter and the like."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            title = f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return "gone"
    parts = title.split(":", 2)
    words = parts[-1].split() if len(parts) == 3 else []
    if len(words) >= 3 and ("(" in words[2] or words[2] == "[local]"):
        return words[1]
    return "background"


class PgSampler:
    """Samples every postgres process every `interval` s during a run, to split
    the exact total (postgres_ticks) into the bench database's backends, other
    databases' backends (other engineers' tests: noise) and background
    processes. A backend that exits loses at most its last interval."""

    def __init__(self, interval: float = 0.1):
        self.interval = interval
        self.first: dict[int, int] = {}
        self.last: dict[int, int] = {}
        self.kind: dict[int, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _sample(self, initial: bool) -> None:
        for pid in postgres_pids():
            t = proc_times(pid)
            if not t:
                continue
            ticks = t[1] + t[2]
            if pid not in self.first:
                self.first[pid] = ticks if initial else 0
            self.last[pid] = ticks
            db = _pg_backend_db(pid)
            if db != "gone" and (pid not in self.kind or self.kind[pid] == "background"):
                self.kind[pid] = db

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample(initial=False)

    def start(self) -> None:
        self._sample(initial=True)
        self._thread.start()

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join()
        self._sample(initial=False)
        out: dict[str, float] = {"bench_db": 0.0, "other_db": 0.0, "background": 0.0}
        for pid, last in self.last.items():
            ms = (last - self.first[pid]) * 1000 / CLK_TCK
            kind = self.kind.get(pid, "background")
            key = "bench_db" if kind == BENCH_DB else "background" if kind == "background" else "other_db"
            out[key] += ms
        return out


def machine_busy_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]
    total = sum(fields[:8])
    return total - idle, total


@dataclass
class CpuMeter:
    """CPU of the service, of PostgreSQL, of the load generator and of the
    whole machine over one run, in ms."""

    service: Service | None
    postmaster: int
    started: dict = field(default_factory=dict)

    def __enter__(self):
        self.sampler = PgSampler()
        self.sampler.start()
        self.started = {
            "service": self.service.cpu_ticks() if self.service else 0,
            "postgres": postgres_ticks(self.postmaster),
            "children": resource.getrusage(resource.RUSAGE_CHILDREN),
            "machine": machine_busy_ticks(),
            "wall": time.monotonic(),
        }
        return self

    def __exit__(self, *exc):
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        before = self.started
        busy, total = machine_busy_ticks()
        ms = 1000 / CLK_TCK
        self.result = {
            "wall_s": time.monotonic() - before["wall"],
            "service_ms": ((self.service.cpu_ticks() if self.service else 0) - before["service"]) * ms,
            "postgres_ms": (postgres_ticks(self.postmaster) - before["postgres"]) * ms,
            "postgres_split_ms": self.sampler.stop(),
            # wrk or pgbench: the only children reaped during the run.
            "loadgen_ms": (
                children.ru_utime + children.ru_stime - before["children"].ru_utime - before["children"].ru_stime
            )
            * 1000,
            "machine_busy_ms": (busy - before["machine"][0]) * ms,
            "machine_total_ms": (total - before["machine"][1]) * ms,
        }
        return False


# --- load generators ------------------------------------------------------------------------


def run_wrk(
    *,
    url: str,
    mode: str,
    connections: int,
    threads: int,
    duration: float,
    wallets_file: Path,
    token: str,
    run_id: str,
    replay_file: Path | None,
    raw_dir: Path,
    script: str = "transfer.lua",
) -> dict:
    cmd = [
        "wrk",
        f"-t{min(threads, connections)}",
        f"-c{connections}",
        f"-d{int(duration)}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(BENCH / "wrk" / script),
        url,
        "--",
        mode,
        str(wallets_file),
        token,
        run_id,
    ]
    if replay_file:
        cmd.append(str(replay_file))
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    (raw_dir / f"{run_id}.wrk.txt").write_text(proc.stdout + "\n--- stderr ---\n" + proc.stderr)
    match = re.search(r"^BENCH_JSON (.*)$", proc.stdout, re.M)
    if proc.returncode != 0 or not match:
        raise RuntimeError(f"wrk failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    data = json.loads(match.group(1))
    seconds = data["duration_us"] / 1e6
    s = data["status"]
    return {
        "tool": "wrk",
        "transfers": s["2xx"],
        "tps": s["2xx"] / seconds,
        "requests": data["requests"],
        "p50_ms": data["latency_us"]["p50"] / 1000,
        "p99_ms": data["latency_us"]["p99"] / 1000,
        "latency_us": data["latency_us"],
        "non_2xx": data["non_2xx_3xx"],
        "5xx": s["5xx"],
        "socket_errors": sum(data["socket_errors"].values()),
        "status": s,
        "replay_ok": data["replay_ok"],
        "replay_bad": data["replay_bad"],
        "unexpected_samples": proc.stderr.strip().splitlines()[:5],
    }


def run_pgbench(
    *,
    hot: bool,
    connections: int,
    threads: int,
    duration: float,
    client_id: int,
    run_number: int,
    nwallets: int,
    protocol: str,
    raw_dir: Path,
    run_id: str,
) -> dict:
    prefix = raw_dir / f"{run_id}.pgblog"
    cmd = [
        "pgbench",
        "-h",
        PG_HOST,
        "-p",
        PG_PORT,
        "-U",
        PG_USER,
        "-n",
        f"--protocol={protocol}",
        "-c",
        str(connections),
        "-j",
        str(min(threads, connections)),
        "-T",
        str(int(duration)),
        "-f",
        str(BENCH / "pgbench" / "transfer.sql"),
        "-D",
        f"client={client_id}",
        "-D",
        f"run={run_number}",
        "-D",
        f"nwallets={nwallets}",
        "-D",
        f"hot={1 if hot else 0}",
        "-D",
        "n=0",
        "-l",
        f"--log-prefix={prefix}",
        BENCH_DB,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    (raw_dir / f"{run_id}.pgbench.txt").write_text(proc.stdout + "\n--- stderr ---\n" + proc.stderr)
    latencies, failed = [], 0
    for path in glob.glob(f"{prefix}.*"):
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3 and parts[2].isdigit():
                    latencies.append(int(parts[2]))
                elif len(parts) >= 3:
                    failed += 1
        os.remove(path)
    processed = re.search(r"number of transactions actually processed: (\d+)", proc.stdout)
    tps = re.search(r"tps = ([\d.]+) \(without initial connection time\)", proc.stdout)
    fails = re.search(r"number of failed transactions: (\d+)", proc.stdout)
    aborted = len(re.findall(r"client \d+ aborted", proc.stderr))
    if not processed or not tps:
        raise RuntimeError(f"pgbench failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    latencies.sort()
    return {
        "tool": "pgbench",
        "transfers": int(processed.group(1)),
        "tps": float(tps.group(1)),
        "p50_ms": percentile(latencies, 50) / 1000,
        "p99_ms": percentile(latencies, 99) / 1000,
        "non_2xx": (int(fails.group(1)) if fails else 0) + failed + aborted,
        "5xx": 0,
        "aborted_clients": aborted,
        "returncode": proc.returncode,
        "stderr": proc.stderr.strip().splitlines()[:5],
    }


def percentile(sorted_values: list[int], p: float) -> float:
    if not sorted_values:
        return float("nan")
    # nearest rank
    k = max(0, min(len(sorted_values) - 1, math.ceil(p / 100 * len(sorted_values)) - 1))
    return sorted_values[k]


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def require_tools() -> None:
    missing = [t for t in ("wrk", "pgbench") if shutil.which(t) is None]
    if missing:
        sys.exit(f"missing {', '.join(missing)}: apt-get install -y wrk (pgbench comes with postgresql-client)")
