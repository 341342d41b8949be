"""SQL queries, PostgreSQL round trips and Redis round trips of one transfer
and one replay, through the production WSGI application (wallet_project.wsgi,
middleware, DRF, signals: the request_started/finished hooks included, which
the test client skips), in this process.

    DATABASE_URL=... REDIS_URL=... python bench/roundtrips.py OUT_DIR [N]

Run by bench/profile_service.py with the bench environment, against a database made by
bench/run.py's setup (the "bench" API client and the bench wallets).

- SQL statements: django.test.utils.CaptureQueriesContext (what the ORM sends);
- PostgreSQL round trips: libpq's own protocol trace (PGconn.trace), so the
  BEGIN/COMMIT psycopg sends for transaction.atomic and Django's connection
  health check (SELECT 1, CONN_HEALTH_CHECKS) are counted too;
- Redis round trips: a counting wrapper on redis-py's connection.

Then N (default 300) transfers and N replays in a loop: in-process wall and
CPU time per request (no HTTP server, no load generator), and a cProfile of
each loop, saved as text.
"""

import cProfile
import io
import json
import os
import pstats
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "wallet_project.settings")

import django  # noqa: E402

django.setup()

import redis.connection  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.db import connection  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from harness import CLIENT_NAME, wallet_id  # noqa: E402
from psycopg import pq  # noqa: E402

from clients.api_keys import api_key_issue, api_key_revoke  # noqa: E402
from wallet_project.wsgi import application  # noqa: E402

# --- Redis: count what goes over the wire ------------------------------------------------

REDIS_LOG: list[str] = []
_send_packed = redis.connection.AbstractConnection.send_packed_command
_send_command = redis.connection.AbstractConnection.send_command


def _counting_send_packed(self, command, check_health=True):
    REDIS_LOG.append("<round trip>")
    return _send_packed(self, command, check_health)


def _naming_send_command(self, *args, **kwargs):
    REDIS_LOG.append(" ".join(str(a)[:60] for a in args[:3]))
    return _send_command(self, *args, **kwargs)


redis.connection.AbstractConnection.send_packed_command = _counting_send_packed
redis.connection.AbstractConnection.send_command = _naming_send_command


def redis_summary(entries: list[str]) -> tuple[int, list[str]]:
    trips = sum(1 for e in entries if e == "<round trip>")
    return trips, [e for e in entries if e != "<round trip>"]


# --- the production WSGI path ------------------------------------------------------------------


def wsgi(method: str, path: str, body: bytes = b"", headers: dict | None = None):
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1:8000",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    for name, value in (headers or {}).items():
        environ["HTTP_" + name.upper().replace("-", "_")] = value
    captured = {}

    def start_response(status, response_headers, exc_info=None):
        captured["status"], captured["headers"] = status, dict(response_headers)

    result = application(environ, start_response)
    try:
        content = b"".join(result)
    finally:
        if hasattr(result, "close"):
            result.close()  # request_finished, as a WSGI server does
    return int(captured["status"].split()[0]), captured["headers"], content


class Wire:
    """libpq's trace of the current Django connection: every message sent."""

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self):
        connection.ensure_connection()
        self.file = open(self.path, "w")  # noqa: SIM115
        self.pgconn = connection.connection.pgconn
        self.pgconn.trace(self.file.fileno())
        self.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)
        return self

    def __exit__(self, *exc):
        self.pgconn.untrace()
        self.file.close()
        sent = [line.split("\t") for line in self.path.read_text().splitlines() if line.startswith("F\t")]
        # Simple protocol: one Query per round trip; extended: one Sync.
        self.statements = [m[3].strip() if len(m) > 3 else m[2] for m in sent if m[2] in ("Query", "Parse")]
        self.round_trips = sum(1 for m in sent if m[2] in ("Query", "Sync"))
        return False


def measure(label: str, out: Path, method: str, path: str, body: bytes, headers: dict) -> dict:
    REDIS_LOG.clear()
    with CaptureQueriesContext(connection) as queries, Wire(out / f"libpq-trace-{label}.txt") as wire:
        status, response_headers, content = wsgi(method, path, body, headers)
    trips, commands = redis_summary(REDIS_LOG)
    return {
        "label": label,
        "status": status,
        "replayed_header": response_headers.get("Idempotent-Replayed"),
        "response": json.loads(content),
        "sql_queries": len(queries.captured_queries),
        "sql": [q["sql"] for q in queries.captured_queries],
        "postgres_round_trips": wire.round_trips,
        "postgres_wire": wire.statements,
        "redis_round_trips": trips,
        "redis_commands": commands,
    }


def main(out: Path, n: int) -> None:
    out.mkdir(parents=True, exist_ok=True)
    # A key of its own (only hashes are stored, so the bench client's cannot
    # be read back), revoked when done.
    issued = api_key_issue(client=get_user_model().objects.get(username=CLIENT_NAME), name="bench/roundtrips.py")
    try:
        run_measurements(out, n, {"Authorization": f"Token {issued.key}"})
    finally:
        api_key_revoke(api_key=issued.api_key)


def run_measurements(out: Path, n: int, auth: dict) -> None:

    def transfer_body(i: int) -> bytes:
        # two different customer wallets
        src, dst = wallet_id(1 + i % 1000), wallet_id(1 + (i % 1000 + 1 + (i * 7) % 998) % 1000)
        return json.dumps(
            {"sourceWalletId": str(src), "destinationWalletId": str(dst), "amount": 1.25, "metadata": {"bench": "rt"}}
        ).encode()

    run = uuid.uuid4().hex[:8]
    # Warm: imports, URLconf, connections, the lock's Lua script in Redis.
    for i in range(3):
        key = f"rt-warm-{run}-{i}"
        assert wsgi("POST", "/api/transfer", transfer_body(i), {**auth, "Idempotency-Key": key})[0] == 201
        assert wsgi("POST", "/api/transfer", transfer_body(i), {**auth, "Idempotency-Key": key})[0] == 200

    key = f"rt-{run}-measured"
    body = transfer_body(11)
    first = measure("transfer", out, "POST", "/api/transfer", body, {**auth, "Idempotency-Key": key})
    replay = measure("replay", out, "POST", "/api/transfer", body, {**auth, "Idempotency-Key": key})
    assert first["status"] == 201, first
    assert replay["status"] == 200 and replay["replayed_header"] == "true", replay

    # Cost per request in this process: no HTTP server, no load generator.
    # First with cProfile (saved), then plain; transfers with fresh keys,
    # then replays of those keys.
    timings = {"transfer": {"n": n}, "replay": {"n": n}}
    for phase in ("cprofiled", "plain"):
        keys = [f"rt-{phase}-{run}-{i}" for i in range(n)]
        for label, expected in (("transfer", 201), ("replay", 200)):
            profiler = cProfile.Profile() if phase == "cprofiled" else None
            wall0, cpu0 = time.perf_counter(), time.process_time()
            if profiler:
                profiler.enable()
            for i, k in enumerate(keys):
                status = wsgi("POST", "/api/transfer", transfer_body(i), {**auth, "Idempotency-Key": k})[0]
                assert status == expected, (label, status)
            if profiler:
                profiler.disable()
                stream = io.StringIO()
                pstats.Stats(profiler, stream=stream).sort_stats("cumulative").print_stats(80)
                (out / f"cprofile-{label}.txt").write_text(stream.getvalue())
            timings[label][f"wall_ms_per_request_{phase}"] = (time.perf_counter() - wall0) / n * 1000
            timings[label][f"cpu_ms_per_request_{phase}"] = (time.process_time() - cpu0) / n * 1000

    result = {"transfer": first, "replay": replay, "in_process": timings}
    (out / "roundtrips.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result))


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 300)
