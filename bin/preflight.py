#!/usr/bin/env python
"""Before the service starts: is its port free, can we reach PostgreSQL and Redis?

Says which process holds the port, or which service is down and how to start
it, instead of a traceback, and creates the service's database on first run.
A setting the service cannot run without stops it at django.setup(), in one
line (wallet_project/settings.py, `required`).
"""

import errno
import os
import re
import shutil
import socket
import subprocess
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


def port_holder(port: int) -> str:
    """Who listens on TCP `port`: "nginx (pid 1234: nginx: master process ...)", from `ss`.

    Falls back to saying how to find out where `ss` is missing or names no
    process (another user's, without root).
    """
    ask = f"ss -ltnp 'sport = :{port}'"
    ss = shutil.which("ss")
    if ss:
        listing = subprocess.run(  # noqa: S603
            [ss, "-Hltnp", f"sport = :{port}"], capture_output=True, text=True, check=False
        ).stdout
        found = re.search(r'\("([^"]+)",pid=(\d+)', listing)
        if found:
            name, pid = found.groups()
            try:
                command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
            except OSError:
                command = ""
            return f"{name} (pid {pid}{': ' + command[:120] if command else ''})"
    return f"another process (`{ask}` names it)"


def check_port(host: str, port: int) -> None:
    """Exit with the process holding `host:port` if the web server could not listen there.

    Binds and closes at once, with SO_REUSEADDR as nginx binds, so a port in
    TIME_WAIT is not reported as taken.
    """
    family, kind, proto, _, address = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                print(f"\nCannot listen on {host}:{port}: {exc}\n", file=sys.stderr)
                sys.exit(1)
            print(
                f"\nPort {port} on {host} is taken by {port_holder(port)}.\n"
                f"Stop it, or start on another port: PORT={port + 1} make start\n",
                file=sys.stderr,
            )
            sys.exit(1)


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
    # Where bin/web's nginx will listen, with bin/web's defaults.
    check_port(os.environ.get("HOST", "127.0.0.1"), int(os.environ.get("PORT", "8000")))
    check_postgres()
    check_redis()
    print("PostgreSQL and Redis are reachable.")
