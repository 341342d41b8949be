"""Settings for the wallet service: one file, every value from the environment.

Defaults are for a developer machine with PostgreSQL and Redis on localhost.
Production sets DJANGO_DEBUG=false (the default) and a real DJANGO_SECRET_KEY.
"""

import logging
import re
import tempfile
import zoneinfo
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import NoReturn

import environ
from django_guid.integrations import CeleryIntegration

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()


def misconfigured(message: str) -> NoReturn:
    """End the process with one line on stderr saying what is wrong and how to fix it.

    A SystemExit, not ImproperlyConfigured: manage.py, pytest, Celery and
    bin/preflight.py print its message alone, where an exception would bury
    it under a 60-line traceback (docs/operations.md, "Configuration").
    """
    raise SystemExit(f"Configuration: {message}")


def required(name: str, fix: str) -> str:
    """The value of `name`, which the service cannot start without; `fix` says how to set it."""
    value = env.str(name, default="")
    if not value:
        misconfigured(f"{name} is not set. {fix}")
    return value


# WALLET_ENV_FILE: another file than the checkout's .env (a test reads settings from one of its own).
environ.Env.read_env(env.str("WALLET_ENV_FILE", default=str(BASE_DIR / ".env")), overwrite=False)

# WALLET_INSTANCE=blue lets a second checkout run beside the first on one
# machine, with one variable: it prefixes the default database name
# (blue_wallet), the Redis key prefix (blue), the beat schedule file and the
# Celery queue, so the two share no data, keys, schedule or tasks. An explicit
# DATABASE_URL, CACHE_KEY_PREFIX or CELERY_BEAT_SCHEDULE_FILE still wins.
# (PORT is the web server's, not Django's: give the second one another.)
INSTANCE = env.str("WALLET_INSTANCE", default="")
if INSTANCE and not INSTANCE.replace("_", "").isalnum():
    misconfigured("WALLET_INSTANCE must be letters, digits and underscores (it names a database).")

DEBUG = env.bool("DJANGO_DEBUG", default=False)
# DJANGO_ENV=production: HTTPS only, HSTS, secure cookies, explicit hosts (see
# "Production hardening" below). `manage.py check --deploy` is clean under it.
PRODUCTION = env("DJANGO_ENV", default="local") == "production"
if PRODUCTION and DEBUG:
    misconfigured("DJANGO_DEBUG must be off when DJANGO_ENV=production.")
# Outside DEBUG a real key is required: a missing one fails loudly at start-up.
SECRET_KEY = (
    required("DJANGO_SECRET_KEY", "Run `make .env` to add a random one to .env, or set it in the environment.")
    if not DEBUG
    else env("DJANGO_SECRET_KEY", default="dev-only-insecure-key")
)
if PRODUCTION:  # no default in production: name the hosts
    required("DJANGO_ALLOWED_HOSTS", "Set it to the comma-separated host names the service answers on.")
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]", "testserver"])

INSTALLED_APPS = [
    # django.contrib.admin, on the project's site (wallet_project/admin_lists.py).
    "wallet_project.apps.WalletAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "corsheaders",
    "axes",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_guid",
    # API clients and their keys, then the event outbox and webhooks: floors
    # below wallets, which every app above may use and which read no wallet.
    "clients",
    "events",
    "wallets",
    "transfers",
    "reconciliation",
    # Above transfers: its admin re-registers the transaction and wallet pages.
    "corrections",
]

MIDDLEWARE = [
    # First: the request id (X-Request-ID) every later log line carries (the
    # client's own only when it is a safe token; django-guid keeps it), no-store
    # on every /api/ answer, and the one log line and metrics of each request,
    # timed around all the rest (wallet_project/middleware.py).
    "wallet_project.middleware.RequestMiddleware",
    # From here to BrowserChainEnd, the browser's: a token API request goes
    # from BrowserChain past BrowserChainEnd in one step, with the headers
    # of the four header middleware (security, CORS, common, X-Frame-Options) and
    # nothing of the rest: no session, no user but its token's, nothing to
    # show (wallet_project/middleware.py).
    "wallet_project.middleware.BrowserChain",
    "django.middleware.security.SecurityMiddleware",
    # Outside CORS, so that a preflight CORS answers itself (/api/docs/,
    # /api/schema/) carries the policy too; none on the token API.
    "wallet_project.middleware.ContentSecurityPolicyMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # Last, as django-axes asks: turns a locked-out admin login into its answer.
    "axes.middleware.AxesMiddleware",
    "wallet_project.middleware.BrowserChainEnd",
]

ROOT_URLCONF = "wallet_project.urls"
WSGI_APPLICATION = "wallet_project.wsgi.application"
# The API paths have no trailing slash; never redirect a POST to add one.
APPEND_SLASH = False
CSRF_FAILURE_VIEW = "wallet_project.exceptions.csrf_failure"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- PostgreSQL -------------------------------------------------------------
DATABASES = {
    "default": env.db(
        "DATABASE_URL", default=f"postgres://postgres@127.0.0.1:5432/{INSTANCE + '_' if INSTANCE else ''}wallet"
    )
}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
# A connection that died since the last request is replaced instead of failing
# it; the check is a socket poll, not a round trip (wallet_project/db/base.py).
DATABASES["default"]["ENGINE"] = "wallet_project.db"
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DATABASES["default"].setdefault("OPTIONS", {})
DATABASES["default"]["OPTIONS"].setdefault("connect_timeout", env.int("DATABASE_CONNECT_TIMEOUT", default=5))
# A client frozen inside a transaction (a stopped VM, a cut network) would
# otherwise hold its wallet row locks until TCP keepalive gives up, hours
# later, and every movement on those wallets would queue behind it. No
# transaction here waits on anything but the database, so idle in one for
# this long means the client is gone: PostgreSQL ends the session and rolls
# back (a PENDING log stays PENDING, to be retried or reconciled).
IDLE_TIMEOUT_MS = env.int("DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS", default=10000)
# DATABASE_POOL_MODE=transaction: DATABASE_URL is PgBouncer in transaction
# pooling (docs/operations.md, "PgBouncer and the read replica"), where consecutive transactions may run on
# different server sessions, so nothing may rest on session state: no startup
# `options` (PgBouncer refuses them; the idle timeout is PgBouncer's
# idle_transaction_timeout, or the role's setting), no server-side cursors
# (they live in a session; Django's own switch), no prepared statements (below).
DATABASE_POOL_MODE = env("DATABASE_POOL_MODE", default="session")
if DATABASE_POOL_MODE == "transaction":
    DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = True
else:
    DATABASES["default"]["OPTIONS"].setdefault("options", f"-c idle_in_transaction_session_timeout={IDLE_TIMEOUT_MS}")
# And notice a dead peer in about a minute, not two hours.
DATABASES["default"]["OPTIONS"].update(keepalives=1, keepalives_idle=30, keepalives_interval=10, keepalives_count=3)
# Parameters travel apart from the SQL (the extended protocol), instead of
# being quoted into it by psycopg in Python (Django's default, client-side
# binding), which costs CPU on every statement of the hot path.
DATABASES["default"]["OPTIONS"].update(server_side_binding=True)
# Prepared statements: only those that ask (wallet_project/db/base.py's fetch
# and run, the money path's fixed statements), and only straight to
# PostgreSQL: PgBouncer's transaction pooling (1.18 here) would send a
# statement prepared on one server session to another. psycopg prepares a
# statement that asks only when its threshold is not None, and on its own
# any statement run that many times: a threshold no statement reaches keeps
# the ORM's statements unprepared.
DATABASES["default"]["OPTIONS"]["prepare_threshold"] = None if DATABASE_POOL_MODE == "transaction" else 2**62
# Services own their transactions: see transfers/services.py.
DATABASES["default"]["ATOMIC_REQUESTS"] = False
# A streaming replica for the reads that tolerate a little lag (history,
# finished transactions, admin lists); wallet_project/db/routers.py decides
# which reads, and sends them to the primary while the replica is down or
# more than DATABASE_REPLICA_MAX_LAG_SECONDS behind (checked at most every
# DATABASE_REPLICA_CHECK_SECONDS per process). Same options as the primary;
# a short connect timeout, since the primary can always answer instead.
DATABASE_REPLICA_URL = env("DATABASE_REPLICA_URL", default="")
if DATABASE_REPLICA_URL:
    _replica = env.db_url_config(DATABASE_REPLICA_URL)
    DATABASES["replica"] = {
        **DATABASES["default"],
        **{key: _replica[key] for key in ("NAME", "USER", "PASSWORD", "HOST", "PORT")},
        "OPTIONS": {
            **DATABASES["default"]["OPTIONS"],
            **_replica.get("OPTIONS", {}),
            "connect_timeout": env.int("DATABASE_REPLICA_CONNECT_TIMEOUT", default=2),
            # The money path's prepared statements run on the primary only; the
            # replica may sit behind a pooler the primary's DATABASE_POOL_MODE
            # does not describe, so nothing is prepared there.
            "prepare_threshold": None,
        },
        # Tests read the test database wherever this one points.
        "TEST": {"MIRROR": "default"},
    }
DATABASE_REPLICA_MAX_LAG_SECONDS = env.float("DATABASE_REPLICA_MAX_LAG_SECONDS", default=5.0)
DATABASE_REPLICA_CHECK_SECONDS = env.float("DATABASE_REPLICA_CHECK_SECONDS", default=1.0)
DATABASE_ROUTERS = ["wallet_project.db.routers.ReplicaRouter"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: cache and the transfer lock --------------------------------------
REDIS_URL = env("REDIS_URL", default="redis://127.0.0.1:6379/0")
CACHES = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": env("CACHE_KEY_PREFIX", default=INSTANCE or "wallet"),
        "OPTIONS": {
            # Redis is an optimisation here, never the guard: fail fast when it
            # is gone so a transfer falls back to PostgreSQL's locks quickly.
            "SOCKET_CONNECT_TIMEOUT": env.float("REDIS_CONNECT_TIMEOUT", default=0.5),
            "SOCKET_TIMEOUT": env.float("REDIS_SOCKET_TIMEOUT", default=0.5),
        },
    }
}

# --- Money -------------------------------------------------------------------
# The largest NUMERIC(20,2): the bound of every amount setting, and of every
# amount and balance (wallets/models.py's MAX_AMOUNT is this).
LEDGER_MAX_AMOUNT = Decimal("999999999999999999.99")


def env_amount(name: str, default: str) -> Decimal:
    """An amount setting: a plain decimal string (digits, an optional point and
    at most two places) from 0 to the largest NUMERIC(20,2). NaN, Infinity,
    a sign, an exponent or anything else stops the start-up in one line
    naming the variable: a limit must never read as
    "no limit" (Decimal("NaN") compares false with everything)."""
    text = env.str(name, default=default).strip()
    if not re.fullmatch(r"[0-9]+(\.[0-9]{1,2})?", text, re.ASCII):
        misconfigured(f"{name} must be an amount such as 1000000.00 (digits, at most two decimals), not {text!r}.")
    amount = Decimal(text)
    if amount > LEDGER_MAX_AMOUNT:
        misconfigured(f"{name} must be at most {LEDGER_MAX_AMOUNT} (NUMERIC(20,2)), not {text}.")
    return amount


# The ledger keeps two decimal places, so only currencies with two minor units.
SUPPORTED_CURRENCIES = env.list("SUPPORTED_CURRENCIES", default=["NGN", "USD", "EUR", "GBP", "GHS", "KES", "ZAR"])
DEFAULT_CURRENCY = env("DEFAULT_CURRENCY", default="NGN")
# How long the Redis lock on (client, idempotency key) lives if its holder dies.
TRANSFER_LOCK_TIMEOUT = env.float("TRANSFER_LOCK_TIMEOUT", default=30.0)
# What one API client's wallets may hold, per currency, of the money that came
# in through deposits: its deposits minus its withdrawals (its exposure,
# docs/design.md "Client exposure"). Every deposit moves the settlement wallet
# the other way, so without this one client could push it to the end of
# NUMERIC(20,2) and refuse every other client's deposits in that currency.
# 10^14: ten thousand clients at the limit fill the ledger's range.
CLIENT_EXPOSURE_LIMIT = env_amount("CLIENT_EXPOSURE_LIMIT", default="100000000000000.00")
# A settlement wallet beyond this (either sign) pages on-call
# (WalletSettlementBeyondAlertMagnitude in ops/prometheus/alerts.yml); 10^16
# is a hundredth of the ledger's range, far above any real volume.
SETTLEMENT_ALERT_MAGNITUDE = env_amount("SETTLEMENT_ALERT_MAGNITUDE", default="10000000000000000.00")


def env_amounts_by_currency(name: str) -> dict[str, Decimal]:
    """A per-currency amount setting: "NGN:50000.00,USD:100" (each amount as
    env_amount reads one; each currency a supported one, at most once).
    Empty or unset: no currency. Anything else stops the start-up in one
    line naming the variable."""
    text = env.str(name, default="").strip()
    amounts: dict[str, Decimal] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        currency, _, amount = item.partition(":")
        currency, amount = currency.strip(), amount.strip()
        if currency not in SUPPORTED_CURRENCIES:
            supported = ", ".join(SUPPORTED_CURRENCIES)
            misconfigured(f"{name}: {currency!r} is not one of SUPPORTED_CURRENCIES ({supported}).")
        if currency in amounts:
            misconfigured(f"{name} names {currency} twice.")
        if not re.fullmatch(r"[0-9]+(\.[0-9]{1,2})?", amount, re.ASCII) or Decimal(amount) > LEDGER_MAX_AMOUNT:
            misconfigured(
                f"{name} must read like NGN:50000.00,USD:100 (an amount of at most two decimals, up to "
                f"{LEDGER_MAX_AMOUNT}, per currency), not {item!r}."
            )
        amounts[currency] = Decimal(amount)
    return amounts


# --- Tier limits (docs/limits.md) ---------------------------------------------
# The business day the daily caps count in: a day starts at midnight here.
BUSINESS_TIME_ZONE = env.str("BUSINESS_TIME_ZONE", default="Africa/Lagos")
try:
    zoneinfo.ZoneInfo(BUSINESS_TIME_ZONE)
except (zoneinfo.ZoneInfoNotFoundError, ValueError):
    misconfigured(f"BUSINESS_TIME_ZONE must be an IANA time zone such as Africa/Lagos, not {BUSINESS_TIME_ZONE!r}.")
# The risk team's per-client caps, per currency ("NGN:5000000.00"; unset: none):
# the most one movement may carry, and the most a client's wallets may send
# in one business day (counted only while set: docs/limits.md).
CLIENT_MAX_REQUEST_AMOUNT = env_amounts_by_currency("CLIENT_MAX_REQUEST_AMOUNT")
CLIENT_DAILY_DEBIT_LIMIT = env_amounts_by_currency("CLIENT_DAILY_DEBIT_LIMIT")

# --- Corrections (docs/design.md, "Corrections: four eyes") ---------------------
# Per currency, the amount below which one Finance user may apply a reversal
# or an adjustment alone ("NGN:50000.00,USD:100"). Unset, the default: every
# correction needs a second person.
CORRECTION_SINGLE_APPROVAL_BELOW = env_amounts_by_currency("CORRECTION_SINGLE_APPROVAL_BELOW")
# A request not approved within this is EXPIRED (by beat every minute, and
# checked again at approval).
CORRECTION_EXPIRES_AFTER = timedelta(seconds=env.int("CORRECTION_EXPIRES_AFTER_SECONDS", default=24 * 3600))
if CORRECTION_EXPIRES_AFTER.total_seconds() <= 0:
    misconfigured("CORRECTION_EXPIRES_AFTER_SECONDS must be more than 0.")
# A request waiting longer than this pages (WalletCorrectionsWaiting in
# ops/prometheus/alerts.yml): served as a metric so the rule reads the value.
CORRECTION_WAITING_ALERT_SECONDS = env.int("CORRECTION_WAITING_ALERT_SECONDS", default=4 * 3600)
# Statements (GET /api/wallets/{id}/statement, docs/api.md): the longest
# period one may cover, in days, and the most movements it may list (a
# longer one is a 400 asking for a shorter period).
STATEMENT_MAX_DAYS = env.int("STATEMENT_MAX_DAYS", default=366)
STATEMENT_MAX_ROWS = env.int("STATEMENT_MAX_ROWS", default=10_000)
if STATEMENT_MAX_DAYS < 1 or STATEMENT_MAX_ROWS < 1:
    misconfigured("STATEMENT_MAX_DAYS and STATEMENT_MAX_ROWS must be at least 1.")
# Deadlocks and serialization failures are retried this many times in all.
TRANSFER_MAX_ATTEMPTS = env.int("TRANSFER_MAX_ATTEMPTS", default=5)
# The Retry-After sent with 409 (key in use) and 503 (database down), seconds.
RETRY_AFTER_SECONDS = env.int("RETRY_AFTER_SECONDS", default=1)
# Metadata is for references and notes, not documents.
TRANSFER_METADATA_MAX_BYTES = env.int("TRANSFER_METADATA_MAX_BYTES", default=4096)
# Largest JSON body the API parses; larger gets 413.
API_MAX_BODY_BYTES = env.int("API_MAX_BODY_BYTES", default=64 * 1024)
# Batch payouts (POST /api/transfers/batch): at most this many in one batch,
# and its body may be this large (a view's max_body_bytes; 1,000 payouts with
# short metadata are about 200 KiB).
BATCH_MAX_PAYOUTS = env.int("BATCH_MAX_PAYOUTS", default=1000)
BATCH_MAX_BODY_BYTES = env.int("BATCH_MAX_BODY_BYTES", default=1024 * 1024)
# Holds (docs/api.md, "Holds"): the longest a hold may reserve money, from
# its placing or an extension; the expiry task's tick, and how many holds one
# tick's transaction expires at most (a larger backlog takes more ticks).
HOLD_MAX_SECONDS = env.int("HOLD_MAX_SECONDS", default=30 * 24 * 3600)
HOLD_EXPIRE_EVERY_SECONDS = env.float("HOLD_EXPIRE_EVERY_SECONDS", default=5.0)
HOLD_EXPIRE_BATCH = env.int("HOLD_EXPIRE_BATCH", default=500)
# Django's own bound, where DRF reads the body: the largest any route takes.
# Each route's own bound is the parser's (wallet_project/policies.py).
DATA_UPLOAD_MAX_MEMORY_SIZE = max(API_MAX_BODY_BYTES, BATCH_MAX_BODY_BYTES)
# The JSON decoder's bounds (wallet_project/policies.py), so that decoding costs
# what the body's size allows and no more: a number needing more digits than
# this once written out (1e1000000 needs a million), and nesting deeper than
# this, are a 400.
JSON_MAX_NUMBER_DIGITS = env.int("JSON_MAX_NUMBER_DIGITS", default=40)
JSON_MAX_DEPTH = env.int("JSON_MAX_DEPTH", default=32)

# How long each web process may keep an API key's client and permissions it
# has read. Any change made through Django (revoking a key, deactivating a
# client, a group or permission change) already bites on the next request
# (clients/authentication.py); this only bounds a change Django never saw
# (raw SQL) or could not announce (Redis down). 0: read them on every request.
API_AUTH_CACHE_SECONDS = env.float("API_AUTH_CACHE_SECONDS", default=10.0)

# --- Reconciliation ------------------------------------------------------------
RECONCILE_PENDING_AFTER = timedelta(seconds=env.int("RECONCILE_PENDING_AFTER_SECONDS", default=300))
RECONCILE_BATCH_SIZE = env.int("RECONCILE_BATCH_SIZE", default=500)

# verify_ledger runs from beat this often, and its result is a metric.
VERIFY_LEDGER_EVERY = timedelta(seconds=env.int("VERIFY_LEDGER_EVERY_SECONDS", default=3600))

# The ledger chain (docs/operations.md, "A provable history"): finished logs
# are chained this often (seconds), at most this many per transaction.
LEDGER_CHAIN_EVERY_SECONDS = env.float("LEDGER_CHAIN_EVERY_SECONDS", default=10.0)
LEDGER_CHAIN_BATCH_SIZE = env.int("LEDGER_CHAIN_BATCH_SIZE", default=5000)
# The chain's head is published this often (seconds): a line in the log
# always, and a ledger.checkpoint event to the API client of this user name
# when one is set (an auditor's client, whose webhook endpoint keeps the
# checkpoints outside this database).
LEDGER_CHECKPOINT_EVERY_SECONDS = env.float("LEDGER_CHECKPOINT_EVERY_SECONDS", default=3600.0)
LEDGER_CHECKPOINT_CLIENT = env.str("LEDGER_CHECKPOINT_CLIENT", default="")

# --- Events and webhooks (README "Events and webhooks") -------------------------
# Events older than this are purged (daily, by beat); GET /api/events and
# resend_events reach back this far.
EVENTS_RETENTION = timedelta(days=env.int("EVENTS_RETENTION_DAYS", default=30))
# Beat hands due webhook deliveries to a worker this often; a run sends for
# at most WEBHOOK_TASK_BUDGET_SECONDS, then leaves the rest to the next one.
WEBHOOK_DELIVER_EVERY_SECONDS = env.float("WEBHOOK_DELIVER_EVERY_SECONDS", default=2.0)
WEBHOOK_TASK_BUDGET_SECONDS = env.float("WEBHOOK_TASK_BUDGET_SECONDS", default=50.0)
# The whole exchange of one attempt (connect, send, the answer's headers and
# body), counted from the claim; then the connection is cut and the attempt
# fails (events/webhooks.py, post).
WEBHOOK_TIMEOUT_SECONDS = env.float("WEBHOOK_TIMEOUT_SECONDS", default=10.0)
# How many webhook endpoints one client may have (409 webhook_endpoints_limit beyond).
WEBHOOK_MAX_ENDPOINTS_PER_CLIENT = env.int("WEBHOOK_MAX_ENDPOINTS_PER_CLIENT", default=10)
# How many of the webhooks pool's processes one client's deliveries may hold
# at once: a client's slow receiver delays that client's deliveries only.
WEBHOOK_MAX_IN_FLIGHT_PER_CLIENT = env.int("WEBHOOK_MAX_IN_FLIGHT_PER_CLIENT", default=1)
if WEBHOOK_MAX_IN_FLIGHT_PER_CLIENT < 1:
    misconfigured("WEBHOOK_MAX_IN_FLIGHT_PER_CLIENT must be 1 or more (0 would deliver nothing).")
# Retry n waits about min(cap, base * 2**(n-1)), times a random 0.5-1.
WEBHOOK_RETRY_BASE_SECONDS = env.float("WEBHOOK_RETRY_BASE_SECONDS", default=5.0)
WEBHOOK_RETRY_CAP_SECONDS = env.float("WEBHOOK_RETRY_CAP_SECONDS", default=3600.0)
# An endpoint whose every attempt has failed for this long is disabled.
WEBHOOK_DISABLE_AFTER = timedelta(seconds=env.int("WEBHOOK_DISABLE_AFTER_SECONDS", default=3 * 24 * 3600))
# Deliveries go to public addresses only; on, loopback too (development and tests).
WEBHOOK_ALLOW_LOOPBACK = env.bool("WEBHOOK_ALLOW_LOOPBACK", default=False)
# The alert's bound on the age of the oldest undelivered event (a metric, so
# that ops/prometheus/alerts.yml compares against the configured value).
WEBHOOK_UNDELIVERED_ALERT_SECONDS = env.int("WEBHOOK_UNDELIVERED_ALERT_SECONDS", default=900)

# --- Celery ------------------------------------------------------------------
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default=REDIS_URL)
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
# A worker killed mid-task leaves the message unacknowledged: it runs again.
# Safe because every task is idempotent (see reconciliation/tasks.py).
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = "UTC"
# One checkout's tasks and schedule are its own (WALLET_INSTANCE above).
CELERY_TASK_DEFAULT_QUEUE = f"{INSTANCE}-celery" if INSTANCE else "celery"
# Webhook deliveries wait on clients' receivers: they run on a queue of their
# own, consumed by a worker pool of their own (wallet_project/worker.py), so
# that reconciliation and the other money tasks never wait behind them.
WEBHOOK_QUEUE = f"{INSTANCE}-webhooks" if INSTANCE else "webhooks"
# Hold expiries run on a queue and a worker pool of their own too: an expiry
# is due at a time, and must not wait behind reconciliation or a backlog.
HOLDS_QUEUE = f"{INSTANCE}-holds" if INSTANCE else "holds"
CELERY_TASK_ROUTES = {
    "wallets.tasks.deliver_webhooks": {"queue": WEBHOOK_QUEUE},
    "transfers.tasks.expire_holds": {"queue": HOLDS_QUEUE},
}
CELERY_BEAT_SCHEDULE_FILENAME = env.str(
    "CELERY_BEAT_SCHEDULE_FILE",
    default=str(Path(tempfile.gettempdir()) / f"wallet-{INSTANCE + '-' if INSTANCE else ''}celerybeat-schedule"),
)
CELERY_BEAT_SCHEDULE = {
    # Every minute: re-drive PENDING logs older than RECONCILE_PENDING_AFTER.
    "reconcile-stale-pending": {
        "task": "reconciliation.tasks.reconcile_stale_pending",
        "schedule": env.float("RECONCILE_EVERY_SECONDS", default=60.0),
    },
    "verify-ledger": {
        "task": "reconciliation.tasks.verify_ledger",
        "schedule": VERIFY_LEDGER_EVERY.total_seconds(),
    },
    # Every 10 seconds: append the logs finished since to the ledger chain.
    "chain-ledger": {
        "task": "reconciliation.tasks.chain_ledger",
        "schedule": LEDGER_CHAIN_EVERY_SECONDS,
        # A tick still queued when the next is due is dropped, as deliveries are.
        "options": {"expires": 2 * LEDGER_CHAIN_EVERY_SECONDS},
    },
    # Every hour: publish the chain's head (a log line, and ledger.checkpoint
    # to LEDGER_CHECKPOINT_CLIENT).
    "publish-ledger-checkpoint": {
        "task": "reconciliation.tasks.publish_ledger_checkpoint",
        "schedule": LEDGER_CHECKPOINT_EVERY_SECONDS,
    },
    # Every 2 seconds: copy new events into webhook deliveries and send what is due.
    "deliver-webhooks": {
        "task": "wallets.tasks.deliver_webhooks",
        "schedule": WEBHOOK_DELIVER_EVERY_SECONDS,
        # A tick still queued when the next is due is dropped: runs do not pile up behind a busy worker.
        "options": {"expires": 2 * WEBHOOK_DELIVER_EVERY_SECONDS},
    },
    # Every 5 seconds: OPEN holds whose expiry has come become EXPIRED (docs/api.md, "Holds").
    "expire-holds": {
        "task": "transfers.tasks.expire_holds",
        "schedule": HOLD_EXPIRE_EVERY_SECONDS,
        # A tick still queued when the next is due is dropped: the next one does its work.
        "options": {"expires": 2 * HOLD_EXPIRE_EVERY_SECONDS},
    },
    # Every minute: correction requests older than CORRECTION_EXPIRES_AFTER become EXPIRED.
    "expire-corrections": {
        "task": "corrections.tasks.expire_corrections",
        "schedule": 60.0,
    },
    # Every day: delete events older than EVENTS_RETENTION.
    "purge-events": {
        "task": "wallets.tasks.purge_events",
        "schedule": 24 * 3600.0,
    },
}
# Beat starts these every few seconds: Celery's own INFO lines about them
# (sent, received, succeeded) are left out of the log, so an idle tick writes
# nothing (wallet_project/log_format.py, QuietTicks).
QUIET_TASKS = [entry["task"] for entry in CELERY_BEAT_SCHEDULE.values() if entry["schedule"] < 60]
# Workers and beat log through LOGGING below (JSON lines with the request id
# of the request that queued the task), not Celery's own format.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# --- Django REST framework -------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["clients.authentication.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAuthenticated",
        "wallet_project.policies.ActionPermissions",
    ],
    "DEFAULT_PARSER_CLASSES": ["wallet_project.policies.DecimalJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "wallet_project.policies.FirstRendererNegotiation",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # OPTIONS: the route's methods in the envelope, no docstrings or field maps.
    "DEFAULT_METADATA_CLASS": "wallet_project.metadata.AllowedMethodsMetadata",
    "EXCEPTION_HANDLER": "wallet_project.exceptions.api_exception_handler",
    "UNAUTHENTICATED_USER": None,
    # Per API client, counted in Redis (wallet_project/throttling.py). Which
    # scope a request is charged to: see the viewsets' throttle_scopes. New
    # money movements (and opening wallets) are the dear ones; a replay of a
    # finished key and a read cost the service little, so get more.
    "DEFAULT_THROTTLE_CLASSES": ["wallet_project.throttling.ActionScopeThrottle"],
    "DEFAULT_THROTTLE_RATES": {
        "transfers": env("THROTTLE_RATE_TRANSFERS", default="1200/min"),
        "replays": env("THROTTLE_RATE_REPLAYS", default="6000/min"),
        "reads": env("THROTTLE_RATE_READS", default="6000/min"),
        # Per client address, not per client: failed authentications
        # (wallet_project/throttling.py, AddressFailureThrottle).
        "auth_failures": env("THROTTLE_RATE_AUTH_FAILURES", default="20/min"),
        # Per client address too: requests refused for carrying no key at all
        # (wallet_project/throttling.py, charge_request_without_key).
        "no_key": env("THROTTLE_RATE_NO_KEY", default="60/min"),
    },
    "NON_FIELD_ERRORS_KEY": "nonFieldErrors",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Wallet transfer service",
    "DESCRIPTION": "Moves money between wallets exactly once. The guide: docs/api.md in the repository.",
    "VERSION": "1.0.0",
    "OAS_VERSION": "3.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI is served from the installed sidecar package, never a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Enum components named for what they are (the generator would otherwise
    # disambiguate with hashes: StatusCf6Enum). Dotted paths: nothing imported here.
    "ENUM_NAME_OVERRIDES": {
        "TransactionStatusEnum": "transfers.models.TransactionStatus",
        "TransactionTypeEnum": "transfers.models.TransactionType",
        "BatchStatusEnum": "transfers.models.BatchStatus",
        "EventTypeEnum": "events.models.EventType",
        "WalletKindEnum": "wallets.models.WalletKind",
        "CurrencyEnum": "wallet_project.settings.SUPPORTED_CURRENCIES",
    },
    # Every id in a path (wallet_project.api.CanonicalUUIDConverter): a UUID, as
    # Django's own `uuid` converter was described.
    "PATH_CONVERTER_OVERRIDES": {"canonical_uuid": {"type": "string", "format": "uuid"}},
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "wallet_project.schema.complete_schema",
    ],
}

# --- Production hardening ----------------------------------------------------------
# TLS ends at the load balancer, which sets X-Forwarded-Proto; only trusted in
# production, where that is the deployment. /health stays plain HTTP for probes.
if PRODUCTION:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = PRODUCTION
# Probes and the Prometheus scraper call from inside the private network.
SECURE_REDIRECT_EXEMPT = [r"^health$", r"^metrics$"]
SECURE_HSTS_SECONDS = env.int("DJANGO_HSTS_SECONDS", default=31536000 if PRODUCTION else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = PRODUCTION
SECURE_HSTS_PRELOAD = PRODUCTION
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = PRODUCTION
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])
# What the admin's and the API docs' pages may load and run: their own
# scripts only (no inline script, no eval: an injected <script> does not
# run), nothing framed, forms posted back to the service only. Styles may be
# inline: the admin's templates and Swagger UI set style attributes, and a
# style runs no code. Swagger UI's icons are data: images. The docs load
# their start-up script from their own URL (wallet_project/schema.py).
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
    "frame-ancestors 'none'"
)
# Browsers may call the API only from these origins (none by default: the
# API's clients are servers). Never a wildcard.
CORS_ALLOWED_ORIGINS = env.list("CORS_ALLOWED_ORIGINS", default=[])
CORS_URLS_REGEX = r"^/api/.*$"
CORS_ALLOW_HEADERS = ["authorization", "content-type", "idempotency-key", "x-request-id"]
CORS_EXPOSE_HEADERS = ["idempotent-replayed", "retry-after", "x-request-id"]

# Admin login throttled against password guessing (django-axes): after
# AXES_FAILURE_LIMIT failures for one username from one client address, that
# username is refused from that address for AXES_COOLOFF_TIME. Keyed on both
# together: one address (an office behind NAT, or the load balancer's when the
# client address is read wrong) cannot lock every staff member out, and
# guessing one username's password cannot lock its owner out everywhere.
# And against a password spray (a few guesses at each of many usernames):
# after AXES_ADDRESS_FAILURE_LIMIT failures from one address, whatever the
# usernames, that address is refused for AXES_COOLOFF_TIME
# (wallet_project/admin_lockout.py). API clients use tokens, which axes never
# sees (their failures are counted by wallet_project/throttling.py).
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("AXES_COOLOFF_MINUTES", default=15))
AXES_ADDRESS_FAILURE_LIMIT = env.int("AXES_ADDRESS_FAILURE_LIMIT", default=20)
if AXES_ADDRESS_FAILURE_LIMIT < AXES_FAILURE_LIMIT:
    misconfigured("AXES_ADDRESS_FAILURE_LIMIT must be at least AXES_FAILURE_LIMIT.")
# In this order: wallet_project/admin_lockout.py reads the counts by position.
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"], "ip_address"]
AXES_HANDLER = "wallet_project.admin_lockout.UserAndAddressLockoutHandler"
AXES_RESET_ON_SUCCESS = True
# How many reverse proxies (load balancer, nginx) stand in front of the
# service, each appending the address it was called from to X-Forwarded-For.
# 0: the client is REMOTE_ADDR and X-Forwarded-For is ignored (anyone can
# write it). N: the client is the N-th address from the right of
# X-Forwarded-For, the one the outermost proxy wrote; what the client wrote
# itself, to the left of it, is never read. One function reads it
# (client_address in wallet_project/middleware.py), for django-axes, the failed-authentication
# throttle and the request log line alike.
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)
if TRUSTED_PROXY_COUNT < 0:
    misconfigured("TRUSTED_PROXY_COUNT must be 0 or more.")
AXES_CLIENT_IP_CALLABLE = "wallet_project.middleware.client_address"

# --- Auth, i18n, static -------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"

# --- Logs, request ids and metrics -------------------------------------------------
# One JSON object per line (LOG_FORMAT=json, the default in production), or
# plain text for a developer's terminal. Every line carries the request id.
LOG_FORMAT = env("LOG_FORMAT", default="json" if PRODUCTION else "text")
# No record needs the file, line and function that logged it, nor the thread
# or process name (no format shows them), and finding them costs work on every
# line: the logging HOWTO's "Optimization" section documents turning them off
# this way. The process id stays: JSON lines carry it as "pid".
# An API key as clients/api_keys.py writes them (wk_ + 8 characters of public
# prefix + _ + 43 of secret; clients/tests/test_api_keys.py holds the two
# together): cut back to the prefix in any log line (wallet_project/log_format.py).
LOG_REDACT_PATTERN = r"(wk_[a-z0-9]{8})_[A-Za-z0-9_-]{43}"
logging._srcfile = None
logging.logThreads = False
logging.logMultiprocessing = False
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request_id": {"()": "django_guid.log_filters.CorrelationId", "correlation_id_field": "request_id"},
        # Celery's lines about each delivery tick (every WEBHOOK_DELIVER_EVERY_SECONDS):
        # the task logs its own line when it did something (wallet_project/log_format.py).
        "quiet_ticks": {"()": "wallet_project.log_format.QuietTicks", "tasks": QUIET_TASKS},
    },
    "formatters": {
        "json": {
            # python-json-logger's orjson encoder: two lines are written per
            # money request, and the standard library's json encodes them slower.
            # (wallet_project/log_format.py: the line breaks orjson leaves, escaped.)
            "()": "wallet_project.log_format.SingleLineJsonFormatter",
            "fmt": "%(levelname)s %(name)s %(process)d %(request_id)s %(message)s",
            "rename_fields": {"levelname": "level", "name": "logger", "process": "pid"},
            # ISO 8601 in UTC, e.g. 2026-11-24T06:12:53.806123+00:00.
            "timestamp": "time",
            "redact": LOG_REDACT_PATTERN,
        },
        # Control characters escaped, so nothing a client sends can split a
        # line (wallet_project/log_format.py); JSON escapes them by itself.
        "text": {
            "()": "wallet_project.log_format.SingleLineFormatter",
            "format": "%(asctime)s %(levelname)s [%(request_id)s] %(name)s %(message)s",
            "redact": LOG_REDACT_PATTERN,
        },
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["request_id", "quiet_ticks"]}
    },
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    "loggers": {
        # django-axes announces itself at INFO in every process, commands included.
        "axes": {"level": "WARNING"},
        # django-guid says at INFO, on every request, where the id came from:
        # the request line's request_id is enough.
        "django_guid": {"level": "ERROR"},
        # Our request line covers every 4xx; Django's own would double it.
        # Errors (5xx, with their traceback) still come through.
        "django.request": {"level": "ERROR"},
    },
}

DJANGO_GUID = {
    # Which header carries the request id, in and out. The id itself is checked
    # or made by wallet_project.middleware.RequestMiddleware (a given one is
    # kept and echoed when it is a safe token, a load balancer's
    # `lb-7f3a-00012` as well as a UUID; otherwise a new one, 32 hex digits),
    # which keeps it where django-guid's log filter and Celery integration
    # read it: django-guid's own middleware is not used. corsheaders exposes
    # the header to allowed origins (CORS_EXPOSE_HEADERS).
    "GUID_HEADER_NAME": "X-Request-ID",
    "INTEGRATIONS": [
        # The request id travels into Celery tasks queued while serving a
        # request; a task beat starts gets an id of its own.
        CeleryIntegration(use_django_logging=True),
    ],
}

# GET /metrics, Prometheus text format, for a scraper holding this bearer
# token (wallet_project/metrics.py). Unset: the endpoint answers 404.
METRICS_TOKEN = env("METRICS_TOKEN", default="")
