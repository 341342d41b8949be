"""Where a batch of payouts spends its time: N batches of SIZE payouts from
the pool wallet through the API (DRF's test client, in this process): the
SQL statements of one batch with their wall time as the service sees it
(round trip included), then wall and CPU per payout over N batches
(without the profiler), and a cProfile of N more.

    DATABASE_URL=... REDIS_URL=... python bench/profile_batch.py [SIZE] [N]

Against a database made by bench/run.py's setup (the "bench" API client and
wallets), e.g. BENCH_DB's after a `make bench`. Prints wall and CPU per
payout, the statements of one batch with their wall time, and cProfile's top
functions by cumulative and by own time (PROFILE_OUT=file: the whole profile,
for pstats).
"""

import cProfile
import io
import json
import os
import pstats
import random
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

from django.contrib.auth import get_user_model  # noqa: E402
from django.db import connection  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from harness import CLIENT_NAME, wallet_id  # noqa: E402
from rest_framework.test import APIClient  # noqa: E402

# A web worker's start-up (the URLconf loaded, start-up's objects frozen out
# of the garbage collector's generations), though requests go through DRF's
# test client.
import wallet_project.wsgi  # noqa: E402, F401, I001
from clients.api_keys import api_key_issue, api_key_revoke  # noqa: E402


def body(size: int, rng: random.Random) -> tuple[str, str]:
    key = f"profile-{uuid.uuid4().hex[:12]}"
    payouts = [
        {
            "destinationWalletId": str(wallet_id(rng.randint(1, 1000))),
            "amount": f"{rng.randint(1, 999) / 100:.2f}",
            "idempotencyKey": f"{key}-{i}",
        }
        for i in range(size)
    ]
    return key, json.dumps({"sourceWalletId": str(wallet_id(0)), "atomic": False, "transfers": payouts})


def main(size: int, batches: int) -> None:
    client = get_user_model().objects.get(username=CLIENT_NAME)
    issued = api_key_issue(client=client, name="profile_batch")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {issued.key}")
    rng = random.Random(7)

    def post(key: str, text: str):
        response = api.post(
            "/api/transfers/batch", text, content_type="application/json", headers={"Idempotency-Key": key}
        )
        assert response.status_code == 201, response.content[:300]
        return response

    try:
        post(*body(size, rng))  # warm: compiled locks, connections
        with CaptureQueriesContext(connection) as queries:
            post(*body(size, rng))
        print(f"one batch of {size}: {len(queries.captured_queries)} SQL statements")
        for query in queries.captured_queries:
            print(f"  {float(query['time']) * 1000:8.1f} ms  {' '.join(query['sql'].split())[:110]}")
        # CPU per payout without the profiler (its per-call cost would be
        # counted too), then the same number of batches under cProfile; the
        # bodies are made before the clock starts.
        bodies = [body(size, rng) for _ in range(2 * batches)]
        wall, cpu = time.perf_counter(), time.process_time()
        for key, text in bodies[:batches]:
            post(key, text)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        payouts = size * batches
        print(
            f"{batches} batches of {size}: wall {wall / payouts * 1000:.3f} ms and this process's CPU "
            f"{cpu / payouts * 1000:.3f} ms per payout (the rest of the wall time is PostgreSQL and Redis)"
        )
        # Timed by CPU, not the wall clock: waiting on PostgreSQL and Redis is not counted.
        profile = cProfile.Profile(time.process_time)
        profile.enable()
        for key, text in bodies[batches:]:
            post(key, text)
        profile.disable()
        out = io.StringIO()
        stats = pstats.Stats(profile, stream=out)
        stats.sort_stats("cumulative").print_stats(35)
        # Where the CPU itself goes, function by function.
        stats.sort_stats("tottime").print_stats(40)
        if os.environ.get("PROFILE_OUT"):
            stats.dump_stats(os.environ["PROFILE_OUT"])
        print(out.getvalue())
    finally:
        api_key_revoke(api_key=issued.api_key)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000, int(sys.argv[2]) if len(sys.argv) > 2 else 5)
