"""Two checkouts side by side on one machine, by setting one variable:
WALLET_INSTANCE prefixes the database name, the Redis key prefix, Celery's
queue and beat's schedule file (docs/operations.md, "Two checkouts on one
machine"). Read as a fresh process reads its settings, from a `.env` of the
test's own (WALLET_ENV_FILE), with none of the variables it replaces set.
"""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from django.conf import settings

BASE_DIR = Path(settings.BASE_DIR)
TMP = tempfile.gettempdir()
REPLACED = ("DATABASE_URL", "CACHE_KEY_PREFIX", "CELERY_BEAT_SCHEDULE_FILE", "WALLET_INSTANCE")
READ_SETTINGS = """
import json, django
django.setup()
from django.conf import settings
from wallet_project.celery import app
print(json.dumps({
    "database": settings.DATABASES["default"]["NAME"],
    "cache_prefix": settings.CACHES["default"]["KEY_PREFIX"],
    "queue": app.conf.task_default_queue,
    "beat_schedule": app.conf.beat_schedule_filename,
}))
"""


def read_settings(tmp_path: Path, env_file: str, **environment: str) -> subprocess.CompletedProcess:
    """A fresh process's settings, with `env_file` as its .env."""
    dotenv = tmp_path / f"env-{len(list(tmp_path.iterdir()))}"
    dotenv.write_text(env_file)
    env = {key: value for key, value in os.environ.items() if key not in REPLACED}
    env.update(
        WALLET_ENV_FILE=str(dotenv),
        DJANGO_SETTINGS_MODULE="wallet_project.settings",
        DJANGO_SECRET_KEY="x" * 50,
        **environment,
    )
    return subprocess.run(  # noqa: S603
        [sys.executable, "-c", READ_SETTINGS], cwd=BASE_DIR, env=env, capture_output=True, text=True, check=False
    )


def settings_of(tmp_path: Path, env_file: str, **environment: str) -> dict:
    run = read_settings(tmp_path, env_file, **environment)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout.splitlines()[-1])


def test_without_an_instance_the_defaults_are_the_service_names(tmp_path):
    assert settings_of(tmp_path, "") == {
        "database": "wallet",
        "cache_prefix": "wallet",
        "queue": "celery",
        "beat_schedule": f"{TMP}/wallet-celerybeat-schedule",
    }


def test_one_variable_in_env_keeps_two_checkouts_apart(tmp_path):
    blue = settings_of(tmp_path, "WALLET_INSTANCE=blue\n")
    green = settings_of(tmp_path, "WALLET_INSTANCE=green\n")

    assert blue == {
        "database": "blue_wallet",
        "cache_prefix": "blue",
        "queue": "blue-celery",
        "beat_schedule": f"{TMP}/wallet-blue-celerybeat-schedule",
    }
    assert all(blue[name] != green[name] for name in blue)


def test_explicit_settings_win_over_the_instance(tmp_path):
    chosen = settings_of(
        tmp_path,
        "WALLET_INSTANCE=blue\n",
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/elsewhere",
        CACHE_KEY_PREFIX="mine",
        CELERY_BEAT_SCHEDULE_FILE="/var/lib/wallet/beat",
    )

    assert (chosen["database"], chosen["cache_prefix"], chosen["beat_schedule"]) == (
        "elsewhere",
        "mine",
        "/var/lib/wallet/beat",
    )


def test_an_instance_name_that_cannot_name_a_database_is_refused(tmp_path):
    dotenv = tmp_path / "env"
    dotenv.write_text("WALLET_INSTANCE=blue;drop\n")
    env = {key: value for key, value in os.environ.items() if key not in REPLACED}
    env.update(
        WALLET_ENV_FILE=str(dotenv), DJANGO_SETTINGS_MODULE="wallet_project.settings", DJANGO_SECRET_KEY="x" * 50
    )

    run = subprocess.run(  # noqa: S603
        [sys.executable, "-c", READ_SETTINGS], cwd=BASE_DIR, env=env, capture_output=True, text=True, check=False
    )

    assert run.returncode != 0
    assert "WALLET_INSTANCE must be letters, digits and underscores" in run.stderr
