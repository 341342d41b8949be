"""GET /health: is the service able to move money? No authentication."""

import logging

from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.utils import timezone

from wallet_project.redis_health import redis_up

logger = logging.getLogger(__name__)


def database_up() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True
    except Exception as exc:  # any failure to answer is "down"
        logger.warning("health: PostgreSQL down: %s", exc)
        return False


def health(request: HttpRequest) -> JsonResponse:
    checks = {"database": "up" if database_up() else "down", "redis": "up" if redis_up() else "down"}
    down = [name for name, state in checks.items() if state == "down"]
    timestamp = timezone.now().isoformat()
    if not down:
        return JsonResponse(
            {"success": True, "message": "Service is healthy", "timestamp": timestamp, "checks": checks}
        )
    return JsonResponse(
        {
            "success": False,
            "message": f"Service is unhealthy: {' and '.join(down)} down",
            "code": "service_unavailable",
            "timestamp": timestamp,
            "checks": checks,
        },
        status=503,
    )
