"""Rate limits per API client, DRF throttling counted in Redis.

Three scopes, their rates in REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]
(THROTTLE_RATE_* in the environment):

- transfers: a new money movement (transfer, deposit, withdrawal) and opening
  a wallet: what writes;
- replays: a money request that replays the result of a finished key;
- reads: every GET;
- auth_failures: failed authentications (an unknown, revoked or malformed
  key), per client address rather than per client, since there is no client
  (AddressFailureThrottle).

Whether a money request is new or a replay is known only once its key has
been looked up, so a view may name no scope for an action (None in its
throttle_scopes) and charge the request itself with ClientRateThrottle
(transfers/http.py does, before the transfer service takes a lock or writes
anything); every other request is charged by DRF before its view runs
(ActionScopeThrottle).
Over the limit the answer is 429 `throttled` in the envelope, with
Retry-After, and nothing is written.

With Redis unreachable the limits are not enforced (a warning is logged): the
service keeps moving money, as its correctness never depends on Redis.
"""

import functools
import logging

from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured
from django_redis import get_redis_connection
from redis.commands.core import Script
from rest_framework.exceptions import Throttled
from rest_framework.permissions import SAFE_METHODS
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle, SimpleRateThrottle

from wallet_project.addresses import client_address
from wallet_project.redis_health import REDIS_ERRORS

logger = logging.getLogger(__name__)

TRANSFERS, REPLAYS, READS, AUTH_FAILURES = "transfers", "replays", "reads", "auth_failures"
# How far past the instant a refused client may come back wait() aims: far
# more than the float error of the window arithmetic, far less than a second.
PAST_THE_EDGE = 0.001


# KEYS: this window's counter, the previous window's. ARGV: the limit, the
# previous window's weight, the counters' lifetime. Counts this request if it
# is let in; returns {let in (1/0), earlier requests this window, previous window's}.
SLIDING_WINDOW = """
local count = tonumber(redis.call('GET', KEYS[1]) or '0')
local previous = tonumber(redis.call('GET', KEYS[2]) or '0')
if count + previous * tonumber(ARGV[2]) >= tonumber(ARGV[1]) then
    return {0, count, previous}
end
redis.call('SET', KEYS[1], count + 1, 'EX', ARGV[3])
return {1, count, previous}
"""


@functools.cache
def _sliding_window(redis) -> Script:
    """The script, registered once per Redis client (redis-py sends EVALSHA,
    and loads the script first on a server that has not seen it)."""
    return redis.register_script(SLIDING_WINDOW)


class ClientRateThrottle(SimpleRateThrottle):
    """One scope's limit for one API client, in one Redis round trip.

    DRF's SimpleRateThrottle keeps a list of every request's time in one cache
    entry and rewrites it on each request: two round trips, a list as long as
    the rate to unpickle, and two concurrent requests can both slip through.
    This counts a sliding window instead, as a pair of fixed-window counters,
    in one Lua script (one round trip, atomic): the number of requests in the
    last `duration` seconds is estimated as this window's count plus the
    previous window's, weighted by how much of it the sliding window still
    covers. A refused request is not counted, so a client that waits its
    Retry-After gets in.
    """

    cache_format = "throttle:%(scope)s:%(ident)s"

    def __init__(self, scope: str):
        self.scope = scope
        super().__init__()

    def get_rate(self) -> str:
        # Read on each use, not at import as DRF's class attribute is, so
        # that a changed setting applies.
        try:
            return api_settings.DEFAULT_THROTTLE_RATES[self.scope]
        except KeyError:
            raise ImproperlyConfigured(f"No throttle rate for scope {self.scope!r}") from None

    def get_cache_key(self, request, view) -> str:
        return cache.make_key(self.cache_format % {"scope": self.scope, "ident": request.user.pk})

    def allow_request(self, request, view) -> bool:
        if self.rate is None:
            return True
        key = self.get_cache_key(request, view)
        now = self.timer()
        window, into_window = divmod(now, self.duration)
        current, previous = f"{key}:{int(window)}", f"{key}:{int(window) - 1}"
        weight = 1 - into_window / self.duration
        try:
            redis = get_redis_connection("default")
            allowed, count, previous_count = _sliding_window(redis)(
                keys=[current, previous], args=[self.num_requests, repr(weight), 2 * self.duration]
            )
        except REDIS_ERRORS as exc:
            logger.warning("rate limit not enforced, Redis unavailable: %s", exc)
            return True
        self._count, self._previous, self._into_window = count, previous_count, into_window
        return bool(allowed)

    def wait(self) -> float:
        """Seconds until a request would be let in again: just past the
        instant the estimate falls to the limit, which is still refused (the
        estimate must be below it). Retry-After rounds up to whole seconds,
        and that instant is often a whole number of seconds away (a window's
        edge), where a client that waited exactly that long would be refused
        again."""
        if self._count >= self.num_requests:
            # Not before the next window, and then once enough of this one
            # has slid out: count * (1 - t / d) < limit.
            to_next_window = self.duration - self._into_window
            return to_next_window + self.duration * (1 - self.num_requests / max(self._count, 1)) + PAST_THE_EDGE
        # The previous window must slide out far enough: in this window,
        # count + previous * (1 - t / d) < limit.
        slides_out_at = self.duration * (1 - (self.num_requests - self._count) / self._previous)
        return max(slides_out_at - self._into_window, 0.0) + PAST_THE_EDGE


class ActionScopeThrottle(BaseThrottle):
    """The default throttle class (REST_FRAMEWORK["DEFAULT_THROTTLE_CLASSES"]):
    charges a request to the scope its view names for the action in
    `throttle_scopes`, by default reads for a GET and transfers for a write.
    A scope of None: the view charges the request itself."""

    def __init__(self):
        self.limit: ClientRateThrottle | None = None

    def allow_request(self, request, view) -> bool:
        default = READS if request.method in SAFE_METHODS else TRANSFERS
        scope = getattr(view, "throttle_scopes", {}).get(getattr(view, "action", None), default)
        if scope is None:
            return True
        self.limit = ClientRateThrottle(scope)
        return self.limit.allow_request(request, view)

    def wait(self) -> float | None:
        return self.limit.wait() if self.limit else None


class AddressFailureThrottle(ClientRateThrottle):
    """The auth_failures limit of one client address (wallet_project/addresses.py,
    the address django-axes and the request log use), counted like the
    others but keyed by the address: a guesser has no client to be charged."""

    def __init__(self):
        super().__init__(AUTH_FAILURES)

    def get_cache_key(self, request, view) -> str:
        return cache.make_key(self.cache_format % {"scope": self.scope, "ident": client_address(request)})


def charge_failed_authentication(request) -> None:
    """Count one failed authentication against the request's client address.
    Raises Throttled (429, with Retry-After) instead once the address is over
    its auth_failures limit, so that a guesser gets 429 where it got 401.

    Only failures are counted, after the key was looked up: a live key is
    never refused for its address's failures, so a client behind the same
    address as a guesser (a NAT, a shared egress) keeps working, and a
    request that succeeds costs no extra round trip. Keys are 256 random
    bits: the limit is against the load and noise of guessing, not the odds."""
    limit = AddressFailureThrottle()
    if not limit.allow_request(request, None):
        raise Throttled(
            wait=limit.wait(),
            detail="Too many failed authentications from this address: wait Retry-After seconds, and send a live key.",
        )
