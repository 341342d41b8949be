"""Fixtures of the fault tests: a Redis of a test's own, and an unreachable one
(test_fault_redis_down.py, test_fault_batch_redis_down.py)."""

import signal
import subprocess
import time

import pytest
import redis

from reconciliation.tests.faults import caches_at, free_port, stop_process


@pytest.fixture
def own_redis(tmp_path):
    """A redis-server of this test's own: (process, url)."""
    port = free_port()
    process = subprocess.Popen(  # noqa: S603, S607 (fixed arguments; redis-server from PATH, as .ci/run uses it)
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis.from_url(url, socket_timeout=0.5).ping()
                break
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)
        yield process, url
    finally:
        stop_process(process)


@pytest.fixture(params=["refused", "hung"])
def unreachable_redis(request, settings):
    """The cache points at a Redis that refuses connections (nothing listens),
    or at one that accepts them and never answers (SIGSTOP)."""
    if request.param == "refused":
        url = f"redis://127.0.0.1:{free_port()}/0"
    else:
        process, url = request.getfixturevalue("own_redis")
        process.send_signal(signal.SIGSTOP)
    settings.CACHES = caches_at(settings, url)
    return request.param
