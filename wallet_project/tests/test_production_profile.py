"""The production profile (DJANGO_ENV=production) and the hardening that is on
everywhere: check --deploy, HTTPS settings, CORS, admin login throttling."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION_ENV = {
    "DJANGO_ENV": "production",
    "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
    "DJANGO_ALLOWED_HOSTS": "wallet.example.com",
}


def manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env={**clean, **env}, capture_output=True, text=True
    )


def test_check_deploy_is_clean_under_the_production_profile():
    result = manage("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION_ENV)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_check_deploy_warns_without_it():
    # The same check is not vacuous: the local profile trips it.
    result = manage("check", "--deploy", "--fail-level", "WARNING", DJANGO_SECRET_KEY=secrets.token_urlsafe(50))

    assert result.returncode != 0
    assert "security.W008" in result.stderr + result.stdout  # SECURE_SSL_REDIRECT


def test_production_refuses_to_start_without_named_hosts_or_with_debug():
    no_hosts = manage("check", **{k: v for k, v in PRODUCTION_ENV.items() if k != "DJANGO_ALLOWED_HOSTS"})
    with_debug = manage("check", **PRODUCTION_ENV, DJANGO_DEBUG="true")

    assert no_hosts.returncode != 0 and "DJANGO_ALLOWED_HOSTS" in no_hosts.stderr
    assert with_debug.returncode != 0 and "DJANGO_DEBUG must be off" in with_debug.stderr


@pytest.mark.django_db
def test_admin_login_is_locked_after_repeated_failures(settings, django_user_model):
    django_user_model.objects.create_superuser("boss", "boss@example.com", "right-horse-battery")
    browser = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        response = browser.post("/admin/login/", {"username": "boss", "password": "wrong"})
        assert response.status_code == 200  # the form again, with an error
    last_try = browser.post("/admin/login/", {"username": "boss", "password": "wrong"})

    locked = browser.post("/admin/login/", {"username": "boss", "password": "right-horse-battery"})

    assert last_try.status_code == 429
    assert locked.status_code == 429
    assert "_auth_user_id" not in browser.session


@pytest.mark.django_db
def test_a_correct_admin_login_still_works_below_the_limit(django_user_model):
    django_user_model.objects.create_superuser("boss", "boss@example.com", "right-horse-battery")
    browser = Client()
    browser.post("/admin/login/", {"username": "boss", "password": "wrong"})

    response = browser.post("/admin/login/", {"username": "boss", "password": "right-horse-battery"})

    assert response.status_code == 302
    assert "_auth_user_id" in browser.session


@pytest.mark.django_db
def test_cors_answers_only_configured_origins(settings, transfer_api):
    settings.CORS_ALLOWED_ORIGINS = ["https://app.example.com"]

    allowed = transfer_api.options(
        "/api/transfer",
        HTTP_ORIGIN="https://app.example.com",
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization, idempotency-key, content-type",
    )
    other = transfer_api.options(
        "/api/transfer", HTTP_ORIGIN="https://evil.example.com", HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST"
    )

    assert allowed.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert "idempotency-key" in allowed.headers["Access-Control-Allow-Headers"]
    assert "Access-Control-Allow-Origin" not in other.headers


@pytest.mark.django_db
def test_an_allowed_origin_may_read_every_header_the_api_documents(settings, transfer_api):
    # Browsers hide response headers not listed in Access-Control-Expose-Headers.
    # django-guid used to overwrite corsheaders' list with X-Request-ID alone.
    settings.CORS_ALLOWED_ORIGINS = ["https://app.example.com"]

    allowed = transfer_api.get("/api/transfer/no-such-key", HTTP_ORIGIN="https://app.example.com")
    other = transfer_api.get("/api/transfer/no-such-key", HTTP_ORIGIN="https://evil.example.com")

    exposed = {h.strip().lower() for h in allowed.headers["Access-Control-Expose-Headers"].split(",")}
    assert exposed == {"idempotent-replayed", "retry-after", "x-request-id"}
    assert "Access-Control-Expose-Headers" not in other.headers
    assert other.headers["X-Request-ID"]
