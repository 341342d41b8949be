"""GET /health: 200 when PostgreSQL and Redis both answer, 503 naming what is
down. No authentication: a load balancer has no token."""

from datetime import datetime

import pytest
from django.conf import settings
from django.db import OperationalError
from django.test import Client, override_settings
from rest_framework.test import APIClient

from wallet_project import health

pytestmark = pytest.mark.django_db

# django-redis at a port nothing listens on: refused at once.
REDIS_DOWN = {
    "default": {
        **settings.CACHES["default"],
        "LOCATION": "redis://127.0.0.1:1/0",
    }
}


class UnreachableDatabase:
    """Stands in for django.db.connection: the first query fails as a refused connection does."""

    def cursor(self):
        raise OperationalError('connection to server at "127.0.0.1", port 5432 failed: Connection refused')


@pytest.fixture
def database_down(monkeypatch):
    monkeypatch.setattr(health, "connection", UnreachableDatabase())


def get_health(**headers):
    return APIClient().get("/health", headers=headers)


def test_healthy_service_is_200_with_the_seed_body():
    response = get_health()

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert (body["success"], body["message"]) == (True, "Service is healthy")
    assert body["checks"] == {"database": "up", "redis": "up"}
    assert datetime.fromisoformat(body["timestamp"]).tzinfo is not None
    assert body["timestamp"].endswith("Z"), "in UTC, written as every timestamp of the API is"


def test_health_ignores_credentials_it_does_not_need():
    # A bad token would be a 401 under /api/; here it is simply not read.
    assert get_health(Authorization="Token " + "0" * 40).status_code == 200


def assert_unhealthy(response, *, down: list[str]) -> dict:
    assert response.status_code == 503
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["success"] is False
    assert body["code"] == "service_unavailable"
    for name in down:
        assert name in body["message"]
    assert body["checks"] == {name: ("down" if name in down else "up") for name in ("database", "redis")}
    return body


def test_redis_down_is_503_naming_redis():
    with override_settings(CACHES=REDIS_DOWN):
        response = get_health()

    body = assert_unhealthy(response, down=["redis"])
    assert "database" not in body["message"]


def test_database_down_is_503_naming_the_database(database_down):
    body = assert_unhealthy(get_health(), down=["database"])

    assert "redis" not in body["message"]


def test_both_down_is_503_naming_both(database_down):
    with override_settings(CACHES=REDIS_DOWN):
        response = get_health()

    assert_unhealthy(response, down=["database", "redis"])


def test_health_recovers_when_redis_comes_back():
    with override_settings(CACHES=REDIS_DOWN):
        assert get_health().status_code == 503

    assert get_health().status_code == 200


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "TRACE", "QUERY"])
def test_health_answers_another_method_405_in_json_naming_the_allowed_ones(method):
    # Not the CSRF middleware's HTML 403: /health is its own answer to every method.
    response = Client(enforce_csrf_checks=True).generic(method, "/health")

    assert response.status_code == 405
    assert response["Allow"] == "GET, HEAD"
    assert response.json()["code"] == "method_not_allowed"
