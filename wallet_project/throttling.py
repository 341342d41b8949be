"""Rate limits per API client, DRF throttling counted in Redis.

Five scopes, their rates in REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]
(THROTTLE_RATE_* in the environment):

- transfers: a new money movement (transfer, deposit, withdrawal, each payout
  of a batch) and opening a wallet: what writes;
- replays: a money request that replays the result of a finished key;
- reads: every GET;
- auth_failures: failed authentications (an unknown, revoked or malformed
  key), per client address rather than per client, since there is no client
  (AddressFailureThrottle);
- no_key: requests refused for carrying no credentials at all, per client
  address too (charge_request_without_key, from the exception handler).

Each viewset names the scope of every action it routes in `throttle_scopes`,
and DRF charges the request before the view runs (ActionScopeThrottle); a
routed action without one stops the service at start-up
(check_throttle_scopes), never a request let through on a guess. What is not
an action (OPTIONS, a method the route does not take: 405, a plain APIView
such as the schema's) is charged as reads for a safe method, transfers else. Whether a money request is new or a
replay, and how many payouts a batch holds, are known only once its key has
been looked up and its body read: such an action names both scopes in a
ChargedOnLookup entry, and its view charges the request itself through DRF's
throttles (ApiViewSet.charge) before anything is locked or stored. Every
entry is checked at start-up too: a scope without a rate is an error, never
a request let through uncounted.
Over the limit the answer is 429 `throttled` in the envelope, with
Retry-After, and nothing is written.

With Redis unreachable the limits are not enforced (a warning is logged): the
service keeps moving money, as its correctness never depends on Redis.
"""

import hashlib
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import NamedTuple

from django.core import checks
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.urls import URLPattern, URLResolver, get_resolver
from django_redis import get_redis_connection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rest_framework.exceptions import ParseError, Throttled, UnsupportedMediaType, ValidationError
from rest_framework.permissions import SAFE_METHODS
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle, SimpleRateThrottle

from wallet_project.middleware import client_address
from wallet_project.redis_health import REDIS_ERRORS

logger = logging.getLogger(__name__)

TRANSFERS, REPLAYS, READS, AUTH_FAILURES = "transfers", "replays", "reads", "auth_failures"
NO_KEY = "no_key"
# How far past the instant a refused client may come back wait() aims: far
# more than the float error of the window arithmetic, far less than a second.
PAST_THE_EDGE = 0.001


# KEYS: this window's counter, the previous window's, then optionally the
# credentials version (ActionScopeThrottle) and a lock to take (ChargeLock).
# ARGV: the limit, the previous window's weight, the counters' lifetime, the
# units this request costs, the credentials version the request's client was
# cached under ('' for none to check), the lock's token ('' for no lock) and
# its lifetime in milliseconds.
# A version other than the expected one stops the script before it counts or
# locks anything (the client must be read again: a revoked key is a 401,
# never charged). Else it counts the request if it is let in (its last unit
# must still start below the limit: a request of one unit, as before units
# existed), and only then takes the lock as redis-py's Lock.acquire does
# (SET NX PX, our token): a refused request takes no lock.
# Returns {let in (1), refused (0) or stopped at the version (2), units
# counted earlier this window, previous window's, the version read (nil:
# none asked, or unset), lock taken (1/0)}.
SLIDING_WINDOW = """
local count = tonumber(redis.call('GET', KEYS[1]) or '0')
local previous = tonumber(redis.call('GET', KEYS[2]) or '0')
local units = tonumber(ARGV[4])
local watched = false
local lock = 3
if ARGV[5] ~= '' then
    watched = redis.call('GET', KEYS[3])
    lock = 4
    if watched ~= ARGV[5] then
        return {2, count, previous, watched, 0}
    end
end
if count + units - 1 + previous * tonumber(ARGV[2]) >= tonumber(ARGV[1]) then
    return {0, count, previous, watched, 0}
end
redis.call('SET', KEYS[1], count + units, 'EX', ARGV[3])
local locked = 0
if ARGV[6] ~= '' and redis.call('SET', KEYS[lock], ARGV[6], 'NX', 'PX', ARGV[7]) then
    locked = 1
end
return {1, count, previous, watched, locked}
"""
STOPPED_AT_VERSION = 2
SLIDING_WINDOW_SHA = hashlib.sha1(SLIDING_WINDOW.encode()).hexdigest()  # noqa: S324 (Redis names scripts by SHA-1)
# ClientRateThrottle.watched before its script has run (or when it did not
# run: a scope without a rate).
UNREAD = object()


class _ScriptConnection(threading.local):
    """The sliding-window script's own Redis connection, one per thread of a
    process, made once with the default cache's pool's settings and kept: every
    request's charge runs on it (run_sliding_window).

    Why not redis-py's Script: a command through the client (its retry
    wrapper, observability hooks and response callbacks) and the pool's
    checkout and return (its lock, counters and event dispatch), and finding
    the pool through Django's caches, cost about 140K instructions a request
    above sending the command and reading its answer: 2.33M -> 2.19M a
    replay, 4.44M -> 4.30M a transfer (bench/HISTORY.md, 2026-12-07 03:10).
    What the pool's checkout
    guards against is kept (run_sliding_window): a connection left with
    unread data or closed by the server is reconnected before it is used,
    and one that failed mid-command is disconnected by redis-py itself.
    Forgotten when the cache settings change (tests point the cache at
    another Redis) and in a forked child (the socket is the parent's)."""

    connection = None
    generation = -1

    def get(self):
        connection = self.connection
        if connection is None or connection.pid != os.getpid() or self.generation != _settings_generation[0]:
            if connection is not None:
                connection.disconnect()  # in a forked child, closes only the child's copy
            # Made with the pool's connection class and settings (timeouts,
            # address), not by the pool: its make_connection would count it
            # against max_connections (100 by default) for good, as it is
            # never returned, and a process whose cache settings change often
            # (the tests) would run out.
            pool = get_redis_connection("default").connection_pool
            connection = self.connection = pool.connection_class(**pool.connection_kwargs)
            self.generation = _settings_generation[0]
        return connection


_script_connection = _ScriptConnection()
# Bumped when the cache settings change: every thread then takes a new
# connection from the pool of the new settings.
_settings_generation = [0]


def _forget_script_connections(*, setting, **kwargs) -> None:
    if setting == "CACHES":
        _settings_generation[0] += 1


setting_changed.connect(_forget_script_connections, dispatch_uid="wallet.throttling.script_connection")


def run_sliding_window(keys: list, args: list) -> list:
    """SLIDING_WINDOW on this thread's script connection (_ScriptConnection):
    EVALSHA, and on a server that has not seen the script SCRIPT LOAD and
    EVALSHA again, as redis-py's Script does. Raises what redis-py raises
    (REDIS_ERRORS) when Redis is unreachable or fails."""
    connection = _script_connection.get()
    # As the pool checks a connection it hands out: connected (raises when
    # Redis is unreachable), and nothing left to read on it (an earlier
    # answer, or the server's end of a closed connection): else a new one.
    connection.connect()
    try:
        if connection.can_read():
            raise RedisConnectionError("Connection has data")
    except (RedisConnectionError, RedisTimeoutError, OSError):
        connection.disconnect()
        connection.connect()
    try:
        connection.send_command("EVALSHA", SLIDING_WINDOW_SHA, len(keys), *keys, *args)
        return connection.read_response()
    except NoScriptError:
        connection.send_command("SCRIPT", "LOAD", SLIDING_WINDOW)
        connection.read_response()
        connection.send_command("EVALSHA", SLIDING_WINDOW_SHA, len(keys), *keys, *args)
        return connection.read_response()


class ClientRateThrottle(SimpleRateThrottle):
    """One scope's limit for one API client, in one Redis round trip; a
    request costs `units` (a batch: one per payout), counted at once.

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

    def __init__(self, scope: str, units: int = 1, watch: "Watch | None" = None, lock: "ChargeLock | None" = None):
        """`watch`: a Redis key to read in the same round trip and the value
        it must hold; what it holds (bytes, or None when unset or Redis
        unreachable) is left in `watched`, and a different value stops the
        script before it charges (`stopped_at_version`). `lock`: a lock to
        take in the same round trip once the request is let in; `locked`
        says whether it was."""
        self.scope, self.units, self.watch, self.lock = scope, units, watch, lock
        self.watched: bytes | None | object = UNREAD
        self.stopped_at_version = self.locked = False
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
        # A rate of None (DRF's "unlimited") never gets here: the start-up
        # check wallet.E001 refuses it (check_throttle_scopes).
        key = self.get_cache_key(request, view)
        now = self.timer()
        window, into_window = divmod(now, self.duration)
        current, previous = f"{key}:{int(window)}", f"{key}:{int(window) - 1}"
        weight = 1 - into_window / self.duration
        keys, args = [current, previous], [self.num_requests, repr(weight), 2 * self.duration, self.units]
        if self.watch is not None:
            keys.append(self.watch.key)
        args.append(self.watch.value if self.watch is not None else "")
        if self.lock is not None:
            keys.append(self.lock.name)
        args += [self.lock.token, self.lock.milliseconds] if self.lock is not None else ["", 0]
        try:
            allowed, count, previous_count, self.watched, locked = run_sliding_window(keys, args)
        except REDIS_ERRORS as exc:
            # As before the lock was taken here: let in uncounted, and no
            # lock (its owner tries again, and finds Redis down too).
            logger.warning("rate limit not enforced, Redis unavailable: %s", exc)
            self.watched = None
            return True
        self.stopped_at_version, self.locked = allowed == STOPPED_AT_VERSION, bool(locked)
        self._count, self._previous, self._into_window = count, previous_count, into_window
        return allowed == 1

    def wait(self) -> float:
        """Seconds until this request would be let in again: just past the
        instant the estimate falls to the limit, which is still refused (the
        estimate must be below it). Retry-After rounds up to whole seconds,
        and that instant is often a whole number of seconds away (a window's
        edge), where a client that waited exactly that long would be refused
        again. A request of several units needs room for all of them: its
        limit is the rate less the units beyond its first."""
        limit = self.num_requests - (self.units - 1)
        if limit < 1:
            # More units than the whole rate: never let in. A full window,
            # so that a client backs off; the start-up check keeps the API's
            # largest request (BATCH_MAX_PAYOUTS) within the rate.
            return float(self.duration)
        if self._count >= limit:
            # Not before the next window, and then once enough of this one
            # has slid out: count * (1 - t / d) < limit.
            to_next_window = self.duration - self._into_window
            return to_next_window + self.duration * (1 - limit / max(self._count, 1)) + PAST_THE_EDGE
        # The previous window must slide out far enough: in this window,
        # count + previous * (1 - t / d) < limit.
        slides_out_at = self.duration * (1 - (limit - self._count) / self._previous)
        return max(slides_out_at - self._into_window, 0.0) + PAST_THE_EDGE


@dataclass(frozen=True)
class ChargedOnLookup:
    """A throttle_scopes entry for an action whose cost is known only once
    its idempotency key has been looked up: a replay of a finished request is
    charged to `replay`, anything else to `new`, and a batch one unit per
    payout. DRF lets the request past its throttles before the view runs;
    the view charges it with ApiViewSet.charge before it locks or stores
    anything."""

    new: str
    replay: str

    @property
    def scopes(self) -> tuple[str, ...]:
        return (self.new, self.replay)


class Watch(NamedTuple):
    """A Redis key the rate limit's script reads on the way, and the value it
    must hold for the request to be charged (the credentials version its
    client was cached under: clients/authentication.py)."""

    key: str
    value: bytes


class ChargeLock(NamedTuple):
    """A lock the charge takes in its own round trip once the request is let
    in, as redis-py's Lock.acquire would (SET `name` `token` NX PX
    `milliseconds`): the idempotency lock of a first-time money request
    (transfers/locks.py, taken_with_charge). Its owner releases it as any
    redis-py lock, by compare-and-delete on the token."""

    name: str
    token: str
    milliseconds: int


class Charge(NamedTuple):
    """What one request is charged: `units` of `scope`, and a lock to take
    with it (`lock`, or None)."""

    scope: str
    units: int = 1
    lock: ChargeLock | None = None


class ActionScopeThrottle(BaseThrottle):
    """The default throttle class (REST_FRAMEWORK["DEFAULT_THROTTLE_CLASSES"]):
    charges a request to the scope its view names for the action in
    `throttle_scopes` (action_scope).
    For a ChargedOnLookup action, what the view's charge says
    (view.request_charge), and nothing before it does; whether the charge's
    lock was taken is left in `view.charge_locked`.

    An authenticator that let the request in on a cached credential (its
    `unconfirmed_key`: clients/authentication.py) has it confirmed here, in
    the same round trip: the script reads that key too and, under another
    version than the cached client's, stops before it charges or locks
    anything; the authenticator's `confirm` gets the value, which may refuse
    the request (401: a revoked key is never charged) or change its user
    (then permissions are checked again, and the request charged in a second
    round trip, the rare path of a credentials change). Whether or not the
    limit would let the request in: a revoked key is a 401, not a 429.
    """

    def __init__(self):
        self.limit: ClientRateThrottle | None = None

    def allow_request(self, request, view) -> bool:
        entry = action_scope(view, request.method)
        if isinstance(entry, ChargedOnLookup):
            charge = getattr(view, "request_charge", None)
            if charge is None:
                # DRF's check before the view runs: the view charges (ApiViewSet.charge).
                return True
        else:
            charge = Charge(entry)
        authenticator = request.successful_authenticator
        version = getattr(authenticator, "unconfirmed_version", None)
        watch = Watch(authenticator.unconfirmed_key, version) if version is not None else None
        self.limit = ClientRateThrottle(charge.scope, charge.units, watch=watch, lock=charge.lock)
        allowed = self.limit.allow_request(request, view)
        if watch is not None and authenticator.confirm(request, self.limit.watched):
            view.check_permissions(request)
        if self.limit.stopped_at_version:
            # Confirmed above under the new version (a revoked key raised):
            # now charge it.
            self.limit = ClientRateThrottle(charge.scope, charge.units, lock=charge.lock)
            allowed = self.limit.allow_request(request, view)
        if charge.lock is not None:
            view.charge_locked = self.limit.locked
        return allowed

    def wait(self) -> float | None:
        return self.limit.wait() if self.limit else None


@contextmanager
def charged_if_malformed(request, view) -> Iterator[None]:
    """The one rule for a malformed money request (docs/api.md, "Rate
    limits"): refused as malformed (400: a query, a key or a body that does
    not validate, a body that does not parse; 415: a type the API does not
    read), a request of an action whose view charges it (ChargedOnLookup)
    is charged one unit of its `new` scope (transfers), whatever its key
    names, then refused: a client sending bad requests in a loop meets its
    limit as anyone else. Any other action was charged by DRF before its
    view ran. Used by transfers.views.admit (key and body) and
    ApiViewSet.initial (query)."""
    try:
        yield
    except (ValidationError, ParseError, UnsupportedMediaType):
        if isinstance(action_scope(view, request.method), ChargedOnLookup):
            view.charge(request, replay=False)
        raise


class AddressFailureThrottle(ClientRateThrottle):
    """The auth_failures (or no_key) limit of one client address
    (client_address in wallet_project/middleware.py, the address django-axes and the request
    log use), counted like the others but keyed by the address: a guesser
    has no client to be charged."""

    def __init__(self, scope: str = AUTH_FAILURES):
        super().__init__(scope)

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
    _charge_address(
        request,
        AUTH_FAILURES,
        "Too many failed authentications from this address: wait Retry-After seconds, and send a live key.",
    )


def charge_request_without_key(request) -> None:
    """Count one request refused for carrying no credentials (DRF's
    NotAuthenticated, 401) against its client address, in the no_key scope.
    Raises Throttled (429, with Retry-After) instead once the address is over
    that limit. Without it such requests were never limited: nothing
    authenticates them, so no client scope or auth_failures counts them.
    Kept apart from auth_failures so that a client that forgot its key does
    not use up a guesser's budget, nor the reverse."""
    _charge_address(
        request,
        NO_KEY,
        "Too many requests without an API key from this address: wait Retry-After seconds, and send "
        "`Authorization: Token <key>`.",
    )


def _charge_address(request, scope: str, detail: str) -> None:
    """Count one request against its client address in `scope`; Throttled
    (429, Retry-After, `detail`) once the address is over that limit."""
    limit = AddressFailureThrottle(scope)
    if not limit.allow_request(request, None):
        raise Throttled(wait=limit.wait(), detail=detail)


def action_scope(view, method: str) -> str | ChargedOnLookup:
    """The throttle_scopes entry of the view's action (every routed action
    has one: check_throttle_scopes). A request that reaches no action (OPTIONS,
    a method the route does not take, a view that is not a viewset) is
    charged as reads for a safe method, as transfers for any other."""
    action = getattr(view, "action", None)
    if action is None or action == "metadata" or not hasattr(view, "throttle_scopes"):
        return READS if method in SAFE_METHODS else TRANSFERS
    return view.throttle_scopes[action]


def check_throttle_scopes(app_configs=None, **kwargs) -> list[checks.Error]:
    """A Django system check (registered by transfers.apps): every action of
    every routed viewset has a throttle_scopes entry, and every entry names
    scopes that have a rate. A missing entry, a scope of None, or one without
    a rate would let requests through uncounted or on a guess; each stops the
    service at start-up instead."""
    rates = api_settings.DEFAULT_THROTTLE_RATES
    errors = []
    for view_class, actions in sorted(_routed_actions(get_resolver().url_patterns).items(), key=lambda i: str(i[0])):
        declared = getattr(view_class, "throttle_scopes", {})
        for action in sorted(actions - set(declared)):
            errors.append(
                checks.Error(
                    f"{view_class.__module__}.{view_class.__name__} routes the action {action!r} without a "
                    "throttle_scopes entry: it would be charged on a guess.",
                    hint=f"Add throttle_scopes[{action!r}]: one of {sorted(rates)}, or ChargedOnLookup(new=..., "
                    "replay=...) for an action its view charges itself.",
                    obj=view_class,
                    id="wallet.E002",
                )
            )
        for action, entry in declared.items():
            scopes = entry.scopes if isinstance(entry, ChargedOnLookup) else (entry,)
            for scope in scopes:
                if rates.get(scope) is None:
                    errors.append(
                        checks.Error(
                            f"{view_class.__module__}.{view_class.__name__}.throttle_scopes[{action!r}] names "
                            f"{scope!r}, which has no rate: the action would not be rate limited.",
                            hint=f"Name one of {sorted(rates)}, or ChargedOnLookup(new=..., replay=...) for an "
                            "action its view charges itself.",
                            obj=view_class,
                            id="wallet.E001",
                        )
                    )
    return errors


def _routed_actions(patterns) -> dict[type, set[str]]:
    """The viewset classes of every URL pattern and the actions routed to
    them (DRF's as_view() keeps its class as .cls and a viewset's method ->
    action map as .actions)."""
    found: dict[type, set[str]] = {}
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            for view_class, actions in _routed_actions(pattern.url_patterns).items():
                found.setdefault(view_class, set()).update(actions)
        elif isinstance(pattern, URLPattern) and hasattr(pattern.callback, "cls"):
            actions = getattr(pattern.callback, "actions", None) or {}
            found.setdefault(pattern.callback.cls, set()).update(actions.values())
    return found
