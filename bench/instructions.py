"""Instructions per transfer and per replay, counted by callgrind: the one cost
figure that does not move with what else the machine is doing. Two runs of
one commit agree within about 0.01 % (bench/HISTORY.md, 2026-12-06 21:50);
two builds, up to 1 % apart for where their objects land: BENCH_LAYOUTS (main).

    .venv/bin/python bench/instructions.py [N]        # about 4 minutes
    .venv/bin/python bench/instructions.py N holds    # also per hold placed and captured, about 6

Sets up its own database (BENCH_DB, default wallet_instructions: an API client
and 20 funded wallets, as bench/run.py does), then runs the production WSGI
application in-process (bench/roundtrips.py's driver) under
`valgrind --tool=callgrind`, once: start-up and warm-up, N transfers, their N
replays byte for byte, each phase counted on its own between two markers
(callgrind dumps its counters when the driver calls os.getppid()); divided by
N, the instructions one request costs. With `holds`, then a warm-up of holds,
N holds placed (POST /api/holds, each of 0.01 toward the next wallet) and
each captured whole (POST /api/holds/{id}/capture): the cost of placing a
hold and of capturing one (docs/api.md, "Holds").

`instructions_per_refresh` is what a request costs more when the process's
API-key cache has expired and its PostgreSQL connection is replaced, which
production pays every API_AUTH_CACHE_SECONDS and CONN_MAX_AGE; the run pins
both clocks (PINNED, below; bench/README.md, "Instruction counts").
Prints one JSON line; compare two commits by running it on each.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("BENCH_DB", "wallet_instructions")

import harness  # noqa: E402

WALLETS = 20


def setup(env: dict) -> str:
    """A fresh database with the bench client and funded wallets; the client's key."""
    harness.recreate_database()
    harness.manage(env, "migrate", "--noinput")
    token = harness.manage(env, "create_api_client", harness.CLIENT_NAME, "--group", "Treasury client").split()[-1]
    subprocess.run(
        [harness.PYTHON, "bench/setup_data.py", harness.CLIENT_NAME, str(WALLETS)], cwd=ROOT, env=env, check=True
    )
    return token


# Every source of run-to-run difference found in the counts (bench/README.md,
# "Instruction counts: what is pinned"): under callgrind a request takes some
# 50 times as long, so a deadline measured in seconds falls at a random point
# of a phase and charges its refresh to whichever request meets it.
PINNED = {
    # str/bytes hashes, hence dict and set probing, the same in every run.
    "PYTHONHASHSEED": "0",
    # The API-key cache (clients/authentication.py) and the PostgreSQL
    # connection (Django's CONN_MAX_AGE) are refreshed every 10 s and 60 s in
    # production: once in thousands of requests, here once in a few dozen.
    # Kept for the whole run; what one refresh costs is counted apart
    # (instructions_per_refresh) instead.
    "API_AUTH_CACHE_SECONDS": "3600",
    "DATABASE_CONN_MAX_AGE": "3600",
    # Redis answers in microseconds, but the process reading the answer may be
    # descheduled for longer than 0.5 s on a loaded machine: a timeout would
    # send the request down the Redis-unavailable path.
    "REDIS_SOCKET_TIMEOUT": "30",
    # No replica: its health check runs on a clock (DATABASE_REPLICA_CHECK_SECONDS).
    "DATABASE_REPLICA_URL": "",
}
# The phase markers: callgrind dumps (and zeroes) its counters each time the
# driver calls os.getppid() (CPython's os_getppid), which nothing else calls.
MARKER = "os_getppid"


def forget_redis(env: dict) -> None:
    """The bench's keys in Redis (its own prefix), so every run starts from the
    same Redis: no rate-limit window, lock or credentials version left over."""
    import redis  # noqa: PLC0415

    client = redis.Redis.from_url(env["REDIS_URL"])
    for key in client.scan_iter(match=f"{env['CACHE_KEY_PREFIX']}:*", count=1000):
        client.delete(key)


def callgrind_phases(env: dict, n: int, with_holds: bool) -> dict[str, int]:
    """Instructions of each phase of one driver process, by name: callgrind's
    dumps in order, each counted from the one before."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        phases_file = Path(tmp) / "phases"
        subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", f"--dump-before={MARKER}",
             harness.PYTHON, __file__, "drive", str(n), "holds" if with_holds else "transfers"],
            cwd=ROOT, env={**env, "BENCH_PHASES_FILE": str(phases_file)}, check=True, capture_output=True,
        )  # fmt: skip
        dumps = {}
        for path in Path(tmp).glob("callgrind.out*"):
            text = path.read_text()
            part = re.search(r"^part: (\d+)", text, re.M)
            dumps[int(part.group(1)) if part else 0] = int(re.search(r"^summary: (\d+)", text, re.M).group(1))
        names = phases_file.read_text().split()
        if keep := os.environ.get("BENCH_CALLGRIND_DIR"):  # for callgrind_annotate
            shutil.copytree(tmp, keep, dirs_exist_ok=True)
    parts = sorted(k for k in dumps if k > 0)
    assert len(parts) > len(names), (parts, names)
    # Part i is the segment ended by the i-th marker; the last, to the exit, is not counted.
    return {name: dumps[part] for name, part in zip(names, parts, strict=False) if name != "-"}


def drive(n: int, mode: str) -> None:
    """In the process callgrind watches: each phase between two markers,
    with a full garbage collection between phases (in a segment of its own,
    not counted) so that no phase pays for the garbage of the one before.
    Phases: start-up and warm-up, N transfers with fresh keys, their N
    replays byte for byte, the refresh of the API-key cache and of the
    connection; with `holds`, a warm-up of holds, N holds placed, N captured."""
    import gc  # noqa: PLC0415

    layout = int(os.environ.get("BENCH_LAYOUT", "0"))
    # Objects kept for the whole run, allocated before anything is imported:
    # every object after them, the interned names included, lands at another
    # address (main(), BENCH_LAYOUTS).
    padding = [" " * (i % 61) + str(i) for i in range(layout * 997)]
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "wallet_project.settings")
    import roundtrips  # noqa: PLC0415 (sets Django up)
    from django.db import connection  # noqa: PLC0415

    from clients.authentication import client_cache  # noqa: PLC0415

    token = os.environ["BENCH_TOKEN"]
    auth = {"Authorization": f"Token {token}"}
    run = f"run{layout:02d}"  # a fresh database per run: the same keys every run
    phases = []

    def marker(name: str | None) -> None:
        """End the current segment: counted as `name`, or not at all (None)."""
        os.getppid()
        phases.append(name or "-")

    def next_phase(name: str) -> None:
        marker(name)
        gc.collect()
        marker(None)

    def body(i: int) -> bytes:
        src, dst = harness.wallet_id(1 + i % WALLETS), harness.wallet_id(1 + (i + 1) % WALLETS)
        return json.dumps(
            {"sourceWalletId": str(src), "destinationWalletId": str(dst), "amount": 0.01, "metadata": {"bench": "i"}}
        ).encode()

    def post(i: int, key: str, expected: int) -> None:
        status = roundtrips.wsgi("POST", "/api/transfer", body(i), {**auth, "Idempotency-Key": key})[0]
        assert status == expected, (key, status)

    def hold(i: int, key: str) -> str:
        payload = json.loads(body(i))
        payload["expiresInSeconds"] = 3600
        status, _, content = roundtrips.wsgi(
            "POST", "/api/holds", json.dumps(payload).encode(), {**auth, "Idempotency-Key": key}
        )
        assert status == 201, (key, status, content)
        return json.loads(content)["data"]["id"]

    def capture(hold_id: str, key: str) -> None:
        status = roundtrips.wsgi("POST", f"/api/holds/{hold_id}/capture", b"{}", {**auth, "Idempotency-Key": key})[0]
        assert status == 200, (hold_id, status)

    for i in range(5):
        post(i, f"warm-{run}-{i}", 201)
        post(i, f"warm-{run}-{i}", 200)
    next_phase("warm")
    keys = [f"{run}-transfer-{i:04d}" for i in range(n)]
    for i, key in enumerate(keys):
        post(i, key, 201)
    next_phase("transfers")
    for i, key in enumerate(keys):
        post(i, key, 200)
    next_phase("replays")
    # What production pays every API_AUTH_CACHE_SECONDS and every
    # CONN_MAX_AGE: one replay after both are forgotten, less one replay.
    client_cache.clear()
    connection.close()
    post(0, keys[0], 200)
    next_phase("refreshed_replay")
    post(0, keys[0], 200)
    next_phase("replay")
    if mode == "holds":
        for i in range(5):
            capture(hold(i, f"warm-hold-{run}-{i}"), f"warm-capture-{run}-{i}")
        next_phase("warm_holds")
        placed = [hold(i, f"hold-{run}-{i:04d}") for i in range(n)]
        next_phase("holds")
        for i, hold_id in enumerate(placed):
            capture(hold_id, f"capture-{run}-{i:04d}")
        next_phase("captures")
    Path(os.environ["BENCH_PHASES_FILE"]).write_text(" ".join(phases))
    del padding


def main(n: int, with_holds: bool = False) -> None:
    """One callgrind run per layout of BENCH_LAYOUTS (default "0"), one after
    the other on the same database; with several, each column is their mean,
    and `layouts` has every run's figures.

    Why layouts: CPython 3.11 finds a type's attributes through a cache
    indexed by the *address* of the attribute's name, so any change to the
    code run before the requests (a longer docstring in this very file, a
    module imported in another order) moves objects and changes which names
    collide there: up to 1 % of a replay, the same in every run of that code,
    different after any edit. To judge a change below 1 %, compare the means
    over a few layouts (BENCH_LAYOUTS=0,1,2,3), not one run of each commit."""
    env = harness.service_env()
    env["BENCH_TOKEN"] = setup(env)
    env.update(PINNED)
    runs = []
    for layout in [int(x) for x in os.environ.get("BENCH_LAYOUTS", "0").split(",")]:
        forget_redis(env)
        counts = callgrind_phases({**env, "BENCH_LAYOUT": str(layout)}, n, with_holds)
        figures = {
            "instructions_per_transfer": counts["transfers"] / n,
            "instructions_per_replay": counts["replays"] / n,
            "instructions_per_refresh": counts["refreshed_replay"] - counts["replay"],
        }
        if with_holds:
            figures["instructions_per_hold_placed"] = counts["holds"] / n
            figures["instructions_per_hold_captured"] = counts["captures"] / n
        runs.append({"layout": layout, **{k: round(v) for k, v in figures.items()}})
    result = {"n": n}
    for column in runs[0]:
        if column != "layout":
            result[column] = round(sum(r[column] for r in runs) / len(runs))
    if len(runs) > 1:
        result["layouts"] = runs
    print(json.dumps(result))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "drive":
        drive(int(sys.argv[2]), sys.argv[3])
    else:
        main(int(sys.argv[1]) if len(sys.argv) > 1 else 40, with_holds=sys.argv[2:3] == ["holds"])
