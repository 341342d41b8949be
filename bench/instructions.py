"""Instructions per transfer and per replay, counted by callgrind: the one cost
figure that does not move with what else the machine is doing.

    .venv/bin/python bench/instructions.py [N]        # about 4 minutes
    .venv/bin/python bench/instructions.py N holds    # also per hold placed and captured, about 8

With `holds`, two more runs: warm-up and N holds placed (POST /api/holds,
each of 0.01 toward the next wallet), and warm-up, N holds placed and each
captured whole (POST /api/holds/{id}/capture): the differences are the cost
of placing a hold and of capturing one (docs/api.md, "Holds").

Sets up its own database (BENCH_DB, default wallet_instructions: an API client
and 20 funded wallets, as bench/run.py does), then runs the production WSGI
application in-process (bench/roundtrips.py's driver) under
`valgrind --tool=callgrind` three times: warm-up only, warm-up and N transfers,
warm-up and N replays of those transfers, byte for byte. The differences,
divided by N, are the instructions one request costs, start-up excluded.
Prints one JSON line; compare two commits by running it on each.
"""

import json
import os
import re
import subprocess
import sys
import tempfile
import uuid
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


def callgrind_total(env: dict, phase: str, n: int, run: str) -> int:
    """Instructions of one driver process (callgrind's 'summary' line)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", harness.PYTHON, __file__, "drive", phase,
             str(n), run],
            cwd=ROOT, env=env, check=True, capture_output=True,
        )  # fmt: skip
        return int(re.search(r"^summary: (\d+)", out.read_text(), re.M).group(1))


def drive(phase: str, n: int, run: str) -> None:
    """In the process callgrind watches: warm up, then `n` transfers with
    fresh keys ("transfers"), or n transfers unmeasured-by-difference and
    their n replays ("replays": the transfers phase's cost is subtracted)."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "wallet_project.settings")
    import roundtrips  # noqa: PLC0415 (sets Django up)

    token = os.environ["BENCH_TOKEN"]
    auth = {"Authorization": f"Token {token}"}

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
        post(i, f"warm-{run}-{phase}-{i}", 201)
        post(i, f"warm-{run}-{phase}-{i}", 200)
    if phase in ("warm-holds", "holds", "captures"):
        for i in range(5):
            capture(hold(i, f"warm-hold-{run}-{phase}-{i}"), f"warm-capture-{run}-{phase}-{i}")
        placed = [hold(i, f"hold-{run}-{phase}-{i}") for i in range(n)] if phase != "warm-holds" else []
        if phase == "captures":
            for i, hold_id in enumerate(placed):
                capture(hold_id, f"capture-{run}-{phase}-{i}")
        return
    keys = [f"{run}-{phase}-{i}" for i in range(n)]
    if phase in ("transfers", "replays"):
        for i, key in enumerate(keys):
            post(i, key, 201)
    if phase == "replays":
        for i, key in enumerate(keys):
            post(i, key, 200)


def main(n: int, with_holds: bool = False) -> None:
    env = harness.service_env()
    env["BENCH_TOKEN"] = setup(env)
    run = uuid.uuid4().hex[:8]
    base = callgrind_total(env, "warm", n, run)
    transfers = callgrind_total(env, "transfers", n, run)
    replays = callgrind_total(env, "replays", n, run)
    result = {
        "n": n,
        "instructions_per_transfer": round((transfers - base) / n),
        "instructions_per_replay": round((replays - transfers) / n),
    }
    if with_holds:
        # The same warm-up (transfers and five holds captured), then N holds, then N holds and N captures.
        warm = callgrind_total(env, "warm-holds", n, run)
        placed = callgrind_total(env, "holds", n, run)
        captured = callgrind_total(env, "captures", n, run)
        result["instructions_per_hold_placed"] = round((placed - warm) / n)
        result["instructions_per_hold_captured"] = round((captured - placed) / n)
    print(json.dumps(result))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "drive":
        drive(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    else:
        main(int(sys.argv[1]) if len(sys.argv) > 1 else 40, with_holds=sys.argv[2:3] == ["holds"])
