"""Redis as every floor of the service sees it: which errors mean "Redis is
unavailable", and whether it answers now.

The service keeps moving money with Redis down (docs/design.md: the lock is
skipped, the rate limits are not enforced, records are not written), so every
caller that talks to Redis catches exactly REDIS_ERRORS and carries on.
"""

import logging

from django_redis import get_redis_connection
from django_redis.exceptions import ConnectionInterrupted
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

# redis-py's own errors, django-redis's wrapper of them, and the socket errors
# a connection can raise before redis-py wraps them.
REDIS_ERRORS = (RedisError, ConnectionInterrupted, OSError)


def redis_up() -> bool:
    """True when Redis answers a PING now (for /health and /metrics)."""
    try:
        return bool(get_redis_connection("default").ping())
    except Exception as exc:  # any failure to answer is "down"
        logger.warning("health: Redis down: %s", exc)
        return False
