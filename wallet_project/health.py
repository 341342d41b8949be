"""GET /health: is the service able to move money? No authentication."""

import logging

from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

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


@csrf_exempt  # no session, no state: every method gets this view's own answer
def health(request: HttpRequest) -> JsonResponse:
    """GET (or HEAD) /health: 200 when PostgreSQL and Redis answer, else 503
    naming what is down. Any other method is a 405 naming the allowed ones."""
    if request.method not in ("GET", "HEAD"):
        response = JsonResponse(
            {"success": False, "message": "/health answers GET and HEAD only.", "code": "method_not_allowed"},
            status=405,
        )
        response["Allow"] = "GET, HEAD"
        return response
    checks = {"database": "up" if database_up() else "down", "redis": "up" if redis_up() else "down"}
    down = [name for name, state in checks.items() if state == "down"]
    # Imported here: this module loads with the middleware (metrics imports it),
    # which REST framework's settings load while it defines APIView (the
    # throttle imports client_address); wallet_project.api needs APIView.
    from wallet_project.api import timestamp_text

    timestamp = timestamp_text(timezone.now())
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
