"""Gunicorn's settings for the API and admin (bin/web): the one place for them.

Read from the environment, as bin/web documents:
  HOST, PORT         where to listen (127.0.0.1:8000)
  WEB_CONCURRENCY    worker processes (default: one per core this process may run on)
  WEB_THREADS        threads per worker running Django (2)
  LOG_FORMAT         json (the default under DJANGO_ENV=production, as in
                     wallet_project/settings.py) or text, for Gunicorn's own lines

Why Gunicorn and these workers: docs/design.md, "Headers with an underscore",
and bench/HISTORY.md (2026-11-30) for what it costs.
"""

import os

from prometheus_client import multiprocess

bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY") or len(os.sched_getaffinity(0)))
# Threads, not more processes: a request mostly waits on PostgreSQL, and a
# thread keeps its client's connection open between requests (keep-alive).
worker_class = "gthread"
threads = int(os.environ.get("WEB_THREADS") or 2)
# Longer than a load balancer's idle timeout (60 s on most), so that the
# balancer, not this server, closes an idle connection: otherwise a request it
# sends as the server closes the connection fails.
keepalive = 75
graceful_timeout = 20
# A listening socket per worker (SO_REUSEPORT), so that the kernel spreads
# connections over the workers evenly. On one shared socket a worker whose
# threads are all busy still accepts (its main thread does), and a client's
# kept-alive connections pile up behind it while another worker idles: at
# c=8, p99 176-215 ms against 38 ms this way (bench/HISTORY.md, 2026-11-30).
# The price: a second server started on the same port by the same user
# shares it silently instead of failing to bind.
reuse_port = True

# A header whose name holds an underscore (Idempotency_Key, X_Forwarded_For)
# would reach Django under the same environ key as its hyphenated twin (CGI
# names both HTTP_IDEMPOTENCY_KEY), where it could stand in for a header the
# proxy in front vouches for. Dropped, as nginx does; this is Gunicorn's
# default, written here so that a change of default cannot undo it.
header_map = "drop"
# No peer is trusted to set the request's scheme or path through headers
# (X-Forwarded-Proto, SCRIPT_NAME): Django decides the scheme from
# SECURE_PROXY_SSL_HEADER in production (wallet_project/settings.py), in one
# place.
forwarded_allow_ips = ""
# Its control socket sits at one path in $HOME: two servers on one host would
# share it, and the image's user has no home.
control_socket_disable = True

if os.environ.get("LOG_FORMAT", "json" if os.environ.get("DJANGO_ENV") == "production" else "text") == "json":
    # Gunicorn's own lines (workers booted, exited, timed out) in the same JSON
    # as Django's (wallet_project/settings.py, LOGGING).
    logconfig_dict = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "json": {
                "()": "pythonjsonlogger.orjson.OrjsonFormatter",
                "fmt": "%(levelname)s %(name)s %(process)d %(message)s",
                "rename_fields": {"levelname": "level", "name": "logger", "process": "pid"},
                "static_fields": {"request_id": None},
                "timestamp": "time",
            }
        },
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stdout"}},
        "loggers": {"gunicorn.error": {"handlers": ["console"], "level": "INFO", "propagate": False}},
    }


def child_exit(server, worker):
    """A worker that exited (stopped, crashed or timed out) leaves its metrics
    file behind; prometheus_client then leaves its live gauges
    (wallet_replica_lag_seconds) out of /metrics. Counters keep counting."""
    multiprocess.mark_process_dead(worker.pid)


def post_worker_init(worker):
    """Gunicorn says when it forks a worker ("Booting worker"); this says when
    the worker has loaded Django and takes requests, which a start script
    waiting for every worker, and an operator reading a restart, need."""
    worker.log.info("Worker %s ready to serve", worker.pid)
