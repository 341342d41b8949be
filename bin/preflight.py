#!/usr/bin/env python
"""Before the service starts: can we reach PostgreSQL and Redis?

Says which one is down and how to start it, instead of a traceback, and
creates the service's database on first run.
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "wallet_project.settings")

import django  # noqa: E402

django.setup()

import psycopg  # noqa: E402
import redis  # noqa: E402
from django.conf import settings  # noqa: E402
from psycopg import sql  # noqa: E402

HOW_TO_START = {
    "PostgreSQL": "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
    "   (or: docker compose up -d postgres)",
    "Redis": 'redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no'
    "   (or: docker compose up -d redis)",
}


def fail(what: str, where: str, error: Exception) -> None:
    print(f"\n{what} is not reachable at {where}:\n  {error}".rstrip(), file=sys.stderr)
    print(
        f"Start it, or point {'DATABASE_URL' if what == 'PostgreSQL' else 'REDIS_URL'} at a running one:",
        file=sys.stderr,
    )
    print(f"  {HOW_TO_START[what]}\n", file=sys.stderr)
    sys.exit(1)


def conninfo(dbname: str) -> dict:
    db = settings.DATABASES["default"]
    params = {
        "dbname": dbname,
        "user": db.get("USER") or None,
        "password": db.get("PASSWORD") or None,
        "host": db.get("HOST") or None,
        "port": db.get("PORT") or None,
        "connect_timeout": 5,
    }
    params.update({k: v for k, v in db.get("OPTIONS", {}).items() if k in ("sslmode", "sslrootcert")})
    return {k: v for k, v in params.items() if v is not None}


def check_postgres() -> None:
    db = settings.DATABASES["default"]
    name = db["NAME"]
    where = f"{db.get('HOST') or 'localhost'}:{db.get('PORT') or 5432}"
    try:
        psycopg.connect(**conninfo(name)).close()
        return
    except psycopg.OperationalError as exc:
        if f'database "{name}" does not exist' not in str(exc):
            fail("PostgreSQL", where, exc)
    try:
        with psycopg.connect(**conninfo("postgres"), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        print(f"Created database {name!r}.")
    except psycopg.Error as exc:
        fail("PostgreSQL", where, exc)


def check_redis() -> None:
    try:
        redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        fail("Redis", settings.REDIS_URL.split("@")[-1], exc)
    if settings.CELERY_BROKER_URL != settings.REDIS_URL:
        try:
            redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_connect_timeout=3).ping()
        except redis.RedisError as exc:
            fail("Redis", settings.CELERY_BROKER_URL.split("@")[-1], exc)


if __name__ == "__main__":
    check_postgres()
    check_redis()
    print("PostgreSQL and Redis are reachable.")
