"""Where a transfer's and a replay's cost goes, and which project modules a
first-time transfer runs code in; the companion of bench/instructions.py.

    BENCH_DB=... .venv/bin/python bench/where.py [N]

Against a database bench/instructions.py has set up (the bench client and
its wallets; BENCH_DB names it), in this process, through the production
WSGI application (bench/roundtrips.py's driver):

1. the project modules with a frame on the stack during one first-time
   transfer (after warm-up), as issue 27's review counted them: the
   service's, not this driver's own (bench/);
2. a cProfile of N transfers and of their N replays: own time grouped by
   layer (each project module by name, each library by package), and the
   functions with the most own time. cProfile charges its own overhead to
   every call, so it overstates code that makes many small calls: use it to
   find candidates, and bench/instructions.py to measure a change.
"""

import collections
import cProfile
import json
import os
import pstats
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "wallet_project.settings")

import harness  # noqa: E402

os.environ.update(harness.service_env())

import roundtrips  # noqa: E402  (sets Django up)
from django.contrib.auth import get_user_model  # noqa: E402

from clients.api_keys import api_key_issue, api_key_revoke  # noqa: E402

WALLETS = 20
ROOT_TEXT = str(ROOT) + os.sep
VENV_TEXT = str(ROOT / ".venv")
BENCH_TEXT = str(ROOT / "bench") + os.sep


def layer(filename: str) -> str:
    """A project file by its module path, a library by its top package."""
    if filename.startswith(ROOT_TEXT) and ".venv" not in filename:
        return filename[len(ROOT_TEXT) :]
    parts = Path(filename).parts
    if "site-packages" in parts:
        return parts[parts.index("site-packages") + 1]
    if filename.startswith("<") or filename == "~":
        return "builtins"
    return "stdlib:" + Path(filename).stem


def body(i: int) -> bytes:
    src, dst = harness.wallet_id(1 + i % WALLETS), harness.wallet_id(1 + (i + 1) % WALLETS)
    return json.dumps(
        {"sourceWalletId": str(src), "destinationWalletId": str(dst), "amount": 0.01, "metadata": {"bench": "i"}}
    ).encode()


def modules_of_one_transfer(auth: dict, key: str) -> list[str]:
    seen = set()

    def profile(frame, event, arg):
        if event == "call":
            name = frame.f_code.co_filename
            if name.startswith(ROOT_TEXT) and ".venv" not in name and not name.startswith(BENCH_TEXT):
                seen.add(name[len(ROOT_TEXT) :])

    sys.setprofile(profile)
    try:
        status = roundtrips.wsgi("POST", "/api/transfer", body(0), {**auth, "Idempotency-Key": key})[0]
    finally:
        sys.setprofile(None)
    assert status == 201, status
    return sorted(seen)


def report(profiler: cProfile.Profile, n: int, label: str) -> None:
    stats = pstats.Stats(profiler)
    by_layer: dict[str, float] = collections.Counter()
    rows = []
    for (filename, line, function), (_cc, calls, own, cumulative, _callers) in stats.stats.items():
        by_layer[layer(filename)] += own
        rows.append((own, cumulative, calls, f"{layer(filename)}:{line}({function})"))
    total = sum(by_layer.values())
    print(f"\n== {label}: {total / n * 1e6:.0f} us own CPU time per request under cProfile")
    for name, own in sorted(by_layer.items(), key=lambda item: -item[1])[:30]:
        print(f"  {own / total:6.1%}  {name}")
    print(f"  -- top functions by own time ({label})")
    for own, cumulative, calls, where in sorted(rows, reverse=True)[:25]:
        print(f"  {own / total:6.1%}  cum {cumulative / total:6.1%}  {calls / n:5.1f}/req  {where}")
    project = [r for r in rows if not r[3].startswith(("stdlib:", "builtins")) and "/" in r[3].split(":")[0]]
    print(f"  -- project functions by cumulative time ({label})")
    for _own, cumulative, calls, where in sorted(project, key=lambda r: -r[1])[:25]:
        print(f"  cum {cumulative / total:6.1%}  {calls / n:5.1f}/req  {where}")


def main(n: int) -> None:
    issued = api_key_issue(client=get_user_model().objects.get(username=harness.CLIENT_NAME), name="bench/where.py")
    auth = {"Authorization": f"Token {issued.key}"}
    run = uuid.uuid4().hex[:8]
    try:
        for i in range(5):
            for expected in (201, 200):
                assert (
                    roundtrips.wsgi("POST", "/api/transfer", body(i), {**auth, "Idempotency-Key": f"w-{run}-{i}"})[0]
                    == expected
                )
        modules = modules_of_one_transfer(auth, f"m-{run}")
        print(f"== project modules with a frame during one first-time transfer: {len(modules)}")
        for name in modules:
            print(f"  {name}")
        keys = [f"p-{run}-{i}" for i in range(n)]
        for label, expected in (("transfer", 201), ("replay", 200)):
            # CPU time, not wall: waiting on PostgreSQL is not what instructions count.
            profiler = cProfile.Profile(time.process_time)
            profiler.enable()
            for i, key in enumerate(keys):
                status = roundtrips.wsgi("POST", "/api/transfer", body(i), {**auth, "Idempotency-Key": key})[0]
                assert status == expected, (label, status)
            profiler.disable()
            report(profiler, n, label)
            if os.environ.get("WHERE_DUMP"):
                profiler.dump_stats(f"{os.environ['WHERE_DUMP']}-{label}.prof")
    finally:
        api_key_revoke(api_key=issued.api_key)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
