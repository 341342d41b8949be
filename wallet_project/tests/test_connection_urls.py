"""Credentials and TLS travel in the connection URLs (docs/operations.md, "Production
profile"): a Redis password in REDIS_URL and CELERY_BROKER_URL, PostgreSQL's
TLS options in DATABASE_URL. Each is checked in a fresh `manage.py` process,
which reads the URLs as a deployment does."""

import os
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from django.db import connection

from reconciliation.tests.faults import free_port

ROOT = Path(__file__).resolve().parents[2]

# Reads and writes through the cache, takes and releases a transfer lock, and
# reaches the Celery broker: everything the service does with Redis.
USE_REDIS = """
from django.core.cache import cache
from transfers.locks import idempotency_lock
from wallet_project.celery import app
cache.set("url-probe", "ok", 5)
assert cache.get("url-probe") == "ok"
with idempotency_lock(1, "url-probe"):
    pass
with app.connection_for_write() as conn:
    conn.ensure_connection(max_retries=1)
print("REDIS OK")
"""


def manage_shell(code: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "shell", "--verbosity", "0", "-c", code],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "wallet_project.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def redis_with_password():
    """A Redis server of its own that wants a password."""
    if not shutil.which("redis-server"):
        pytest.skip("redis-server is not installed")
    password, port = secrets.token_urlsafe(16), free_port()
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--requirepass", password,
         "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis(port=port, password=password).ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield port, password
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_a_redis_password_in_the_urls_is_used(redis_with_password):
    port, password = redis_with_password
    url = f"redis://:{password}@127.0.0.1:{port}/0"

    result = manage_shell(USE_REDIS, REDIS_URL=url, CELERY_BROKER_URL=url)

    assert result.returncode == 0, result.stderr
    assert "REDIS OK" in result.stdout


def test_without_the_password_redis_refuses(redis_with_password):
    port, _ = redis_with_password
    url = f"redis://127.0.0.1:{port}/0"

    result = manage_shell(USE_REDIS, REDIS_URL=url, CELERY_BROKER_URL=url)

    assert result.returncode != 0
    assert "AuthenticationError" in result.stderr, result.stderr


def test_postgresql_tls_options_in_the_url_reach_the_driver():
    url = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=verify-full&sslrootcert=/etc/ssl/wallet-ca.pem"

    result = manage_shell(
        "from django.conf import settings; o = settings.DATABASES['default']['OPTIONS']; "
        "print(o['sslmode'], o['sslrootcert'], o['keepalives'])",
        DATABASE_URL=url,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["verify-full", "/etc/ssl/wallet-ca.pem", "1"]


@pytest.mark.django_db
def test_postgresql_tls_is_demanded_of_the_server():
    """sslmode=require reaches libpq: over TLS where the server offers it, and
    no connection at all (never a plain-text fallback) where it does not."""
    with connection.cursor() as cursor:
        cursor.execute("SHOW ssl")
        server_offers_tls = cursor.fetchone()[0] == "on"
    url = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=require"

    result = manage_shell(
        "from django.db import connection; cursor = connection.cursor(); "
        "cursor.execute('SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()'); "
        "print('TLS', cursor.fetchone()[0])",
        DATABASE_URL=url,
    )

    if server_offers_tls:
        assert "TLS True" in result.stdout, result.stderr
    else:
        assert result.returncode != 0
        assert "server does not support SSL" in result.stderr, result.stderr
