"""Webhooks: a client's endpoints, and the delivery of its events to them
(docs/api.md and README, "Events and webhooks").

Delivery reads the outbox (events/outbox.py) and never decides what happened:

1. Fan-out copies each endpoint's new events, in commit order, into
   deliveries (one row per event and endpoint, unique), advancing the
   endpoint's cursor; endpoints are locked with SKIP LOCKED, so runs overlap
   safely.
2. A worker claims one due delivery with SKIP LOCKED and, in one short
   transaction, leases it (next_attempt_at moves to the end of the lease) and
   counts the attempt, then commits: no transaction stays open during the
   HTTP call. Only a delivery whose client receives deliveries (active, with
   a live API key) and holds fewer than WEBHOOK_MAX_IN_FLIGHT_PER_CLIENT in
   flight is claimed: one client's slow receiver never takes the whole pool.
   A worker that dies mid-delivery leaves the lease to run out; the delivery
   is then claimed again: at least once, once more at most per lost worker.
3. The POST is signed per Standard Webhooks (`standardwebhooks`): header
   webhook-id is the event id (the same on every retry, so a receiver drops
   duplicates by it), webhook-timestamp, webhook-signature (v1, HMAC-SHA256).
   The URL's host is resolved at delivery time and every address checked
   (events/webhook_addresses.py, as at registration), and
   the connection goes to the checked address (no second lookup that DNS
   could answer differently). No redirect is followed (a 3xx is a failure).
   The whole exchange ends within WEBHOOK_TIMEOUT_SECONDS of the claim, or
   the connection is cut and the attempt fails; the lease outlasts it.
4. The outcome is written only by the worker that still holds the lease. A
   2xx delivers; anything else retries with exponential backoff and jitter
   (retry_delay); a 410 disables the endpoint at once, and an endpoint that
   has failed without a success for WEBHOOK_DISABLE_AFTER_SECONDS is
   disabled; the client sees why (GET /api/webhook-endpoints).
"""

import base64
import contextlib
import hashlib
import http.client
import json
import logging
import random
import secrets
import socket
import ssl
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from cryptography.fernet import Fernet
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet
from django.db.models.functions import Coalesce
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from clients.models import ApiKey
from events.exceptions import WebhookEndpointNotFound, WebhookEndpointsLimit
from events.models import DeliveryStatus, Event, WebhookDelivery, WebhookEndpoint
from events.outbox import current_horizon
from events.serializers import EventSerializer
from events.webhook_addresses import DELIVERY_LOOKUPS, UnsafeAddress, resolve_allowed

logger = logging.getLogger(__name__)

SECRET_PREFIX = "whsec_"  # noqa: S105 (the format, not a secret)
# What a receiver's answer may cost us to read.
MAX_RESPONSE_BYTES = 64 * 1024
USER_AGENT = "wallet-service-webhooks/1"


# --- the signing secret, encrypted at rest ------------------------------------------
#
# The service signs with the secret, so it must be able to read it: a hash
# will not do. It is stored encrypted (Fernet: AES-128-CBC with an
# HMAC-SHA256) under a key derived from DJANGO_SECRET_KEY, so a copy of the
# database alone (a backup, a replica, a read-only leak) does not reveal it.
# Rotating DJANGO_SECRET_KEY makes stored secrets unreadable: rotate endpoint
# secrets with it (delete and recreate the endpoints).


def _fernet() -> Fernet:
    key = hashlib.sha256(b"wallet-service webhook signing secrets\x00" + settings.SECRET_KEY.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(key))


def _encrypt(secret: str) -> str:
    return _fernet().encrypt(secret.encode()).decode()


def signing_secret(endpoint: WebhookEndpoint) -> str:
    """The endpoint's signing secret in clear ("whsec_..."), for signing."""
    return _fernet().decrypt(endpoint.secret_encrypted.encode()).decode()


# With the client's id as the second key: serialises one client's endpoint creations.
_CLIENT_ENDPOINTS_LOCK = 0x77680002


# --- endpoints: the client's own -------------------------------------------------------


def webhook_endpoint_create(
    *, client: AbstractBaseUser, url: str, event_types: list[str]
) -> tuple[WebhookEndpoint, str]:
    """A new endpoint of `client` for `event_types`, receiving the events
    committed from now on. Returns (endpoint, secret): the secret in clear
    exists only in this return value (the API shows it once) and is stored
    encrypted. The URL has been checked by the caller's serializer
    (http or https, a host at an allowed address); its addresses are checked
    again at each delivery. Raises WebhookEndpointsLimit when the client
    has WEBHOOK_MAX_ENDPOINTS_PER_CLIENT endpoints already: every endpoint
    costs each delivery tick, so no client may have them without bound."""
    secret = SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()
    with transaction.atomic(), connection.cursor() as cursor:
        # Concurrent creations by one client are counted one after the other.
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [_CLIENT_ENDPOINTS_LOCK, client.pk])
        if client_webhook_endpoints(client=client).count() >= settings.WEBHOOK_MAX_ENDPOINTS_PER_CLIENT:
            raise WebhookEndpointsLimit()
        endpoint = WebhookEndpoint.objects.create(
            client=client,
            url=url,
            event_types=sorted(set(event_types)),
            secret_encrypted=_encrypt(secret),
            # Events whose transaction ends from now on (events/outbox.py).
            cursor_txid=current_horizon(),
            cursor_seq=0,
        )
    return endpoint, secret


def client_webhook_endpoints(*, client: AbstractBaseUser) -> QuerySet[WebhookEndpoint]:
    """The client's endpoints, oldest first (the API lists them newest first,
    in pages); never another client's."""
    return WebhookEndpoint.objects.filter(client=client).order_by("created_at", "id")


def webhook_endpoint_delete(*, client: AbstractBaseUser, endpoint_id: uuid.UUID) -> WebhookEndpoint:
    """Delete one of the client's endpoints and its deliveries; returns it as
    it was. Another client's endpoint is WebhookEndpointNotFound, as an
    unknown one."""
    endpoint = client_webhook_endpoints(client=client).filter(pk=endpoint_id).first()
    if endpoint is None:
        raise WebhookEndpointNotFound()
    endpoint.delete()
    endpoint.pk = endpoint_id
    return endpoint


# --- fan-out ---------------------------------------------------------------------------


def fan_out(*, limit: int = 1000) -> int:
    """Copy each active endpoint's new events (those of its client, past its
    cursor, below the commit horizon) into deliveries, for the types it asked
    for. Returns how many deliveries it queued. Safe to run concurrently:
    an endpoint another run holds is skipped, and (endpoint, event) is unique.
    One short transaction per endpoint with new events: a transaction that
    writes holds the commit horizon (events/outbox.py) back while it lasts.
    With no new event it costs two statements however many endpoints there
    are (one index probe each, in the database), not a transaction each."""
    horizon = current_horizon()
    behind = Event.objects.filter(client_id=OuterRef("client_id"), txid__lt=horizon).filter(
        Q(txid__gt=OuterRef("cursor_txid")) | Q(txid=OuterRef("cursor_txid"), seq__gt=OuterRef("cursor_seq"))
    )
    due = WebhookEndpoint.objects.filter(Exists(behind), is_active=True, client_id__in=receiving_clients())
    due = due.values_list("pk", flat=True)
    return sum(_fan_out_endpoint(endpoint_id, limit) for endpoint_id in list(due))


def _fan_out_endpoint(endpoint_id: uuid.UUID, limit: int) -> int:
    horizon = current_horizon()
    with transaction.atomic():
        locked = WebhookEndpoint.objects.select_for_update(skip_locked=True).filter(pk=endpoint_id, is_active=True)
        endpoint = locked.first()
        if endpoint is None:
            return 0
        after = Q(txid__gt=endpoint.cursor_txid) | Q(txid=endpoint.cursor_txid, seq__gt=endpoint.cursor_seq)
        events = list(
            Event.objects.filter(after, client_id=endpoint.client_id, txid__lt=horizon)
            .order_by("txid", "seq")
            .values_list("pk", "type", "txid", "seq")[:limit]
        )
        if not events:
            return 0
        wanted = [
            WebhookDelivery(endpoint=endpoint, event_id=pk)
            for pk, type_, _, _ in events
            if type_ in endpoint.event_types
        ]
        created = len(WebhookDelivery.objects.bulk_create(wanted, ignore_conflicts=True))
        endpoint.cursor_txid, endpoint.cursor_seq = events[-1][2], events[-1][3]
        endpoint.save(update_fields=["cursor_txid", "cursor_seq"])
    return created


# --- delivery --------------------------------------------------------------------------


def retry_delay(attempts: int) -> timedelta:
    """How long to wait after the `attempts`-th failed attempt: exponential
    from WEBHOOK_RETRY_BASE_SECONDS, doubling, capped at
    WEBHOOK_RETRY_CAP_SECONDS, times a random factor in [0.5, 1] so that the
    retries of many deliveries that failed together spread out. With the
    defaults (5 s, 1 h): about 5 s, 10 s, 20 s, 40 s, 80 s, 160 s, 5 min,
    11 min, 21 min, 43 min, then every 1 h until a success or the endpoint is
    disabled (WEBHOOK_DISABLE_AFTER_SECONDS, 3 days, of failures)."""
    ceiling = min(settings.WEBHOOK_RETRY_CAP_SECONDS, settings.WEBHOOK_RETRY_BASE_SECONDS * 2 ** (attempts - 1))
    return timedelta(seconds=ceiling * random.uniform(0.5, 1.0))


# What a lease holds beyond the attempt's deadline: the claim's commit, the
# read of the delivery before the deadline starts, and the outcome's commit.
LEASE_MARGIN_SECONDS = 10.0


def lease_seconds() -> float:
    """How long a claimed delivery is held, in seconds: longer than the whole
    attempt can last (WEBHOOK_TIMEOUT_SECONDS, counted from the claim, then
    the connection is cut), so that no other worker claims it again while
    it is still being sent."""
    return settings.WEBHOOK_TIMEOUT_SECONDS + LEASE_MARGIN_SECONDS


def _in_flight(now: datetime) -> QuerySet[WebhookDelivery]:
    """Deliveries a worker is sending: PENDING, leased, the lease (until
    next_attempt_at) not yet run out."""
    return WebhookDelivery.objects.filter(status=DeliveryStatus.PENDING, lease__isnull=False, next_attempt_at__gt=now)


def receiving_clients() -> QuerySet:
    """The ids of the clients that receive deliveries: active, and holding a
    live API key. A deactivated client, or one whose keys are all revoked,
    receives nothing (its events wait in GET /api/events); its endpoints'
    deliveries are sent once it may call the API again."""
    live_key = ApiKey.objects.filter(client=OuterRef("pk"), revoked_at__isnull=True)
    return get_user_model().objects.filter(Exists(live_key), is_active=True).values("pk")


# With the client's id as the second key: serialises the claims of one
# client's deliveries, so that two workers cannot both take its last free share.
_CLIENT_CLAIM_LOCK = 0x77680001


@dataclass
class Outcome:
    status_code: int | None
    error: str

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def deliver_due(*, budget_seconds: float = 50.0) -> dict[str, int]:
    """Claim and send due deliveries one at a time until none is due or the
    budget is spent. Returns counts by outcome (delivered, failed). Any
    number of workers may run it at once (SKIP LOCKED, leases)."""
    counts = {"delivered": 0, "failed": 0}
    deadline = time.monotonic() + budget_seconds
    while time.monotonic() < deadline:
        claimed = _claim_one()
        if claimed is None:
            break
        delivery_id, lease = claimed
        outcome = _attempt(delivery_id, deadline=time.monotonic() + settings.WEBHOOK_TIMEOUT_SECONDS)
        _record(delivery_id, lease, outcome)
        counts["delivered" if outcome.delivered else "failed"] += 1
    return counts


def _claim_one(*, tries: int = 3) -> tuple[int, uuid.UUID] | None:
    """Lease one due delivery and count the attempt: (delivery id, lease), or
    None when none is due whose client receives deliveries and is below its
    share of the pool. A client holds at most WEBHOOK_MAX_IN_FLIGHT_PER_CLIENT
    deliveries in flight at once, so a slow receiver delays its own client's
    deliveries, never another's. Each try is one short transaction."""
    lease = uuid.uuid4()
    share = settings.WEBHOOK_MAX_IN_FLIGHT_PER_CLIENT
    for _ in range(tries):  # a try loses only to a claim for the same client just committed
        now = timezone.now()
        # The clients at their share are few (at most the pool's size).
        busy = (
            _in_flight(now)
            .values("endpoint__client_id")
            .annotate(held=Count("pk"))
            .filter(held__gte=share)
            .values("endpoint__client_id")
        )
        with transaction.atomic():
            candidate = (
                WebhookDelivery.objects.select_for_update(of=("self",), skip_locked=True)
                .filter(status=DeliveryStatus.PENDING, next_attempt_at__lte=now, endpoint__is_active=True)
                .filter(endpoint__client_id__in=receiving_clients())
                .exclude(endpoint__client_id__in=busy)
                .order_by("next_attempt_at")
                .values_list("pk", "endpoint__client_id")
                .first()
            )
            if candidate is None:
                return None
            delivery_id, client_id = candidate
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [_CLIENT_CLAIM_LOCK, client_id])
            # Counted again now that no other claim for this client is running.
            if _in_flight(now).filter(endpoint__client_id=client_id).count() < share:
                WebhookDelivery.objects.filter(pk=delivery_id).update(
                    lease=lease,
                    attempts=F("attempts") + 1,
                    last_attempt_at=now,
                    next_attempt_at=now + timedelta(seconds=lease_seconds()),
                )
                return delivery_id, lease
    return None


def _attempt(delivery_id: int, *, deadline: float) -> Outcome:
    """Send one claimed delivery, all of it before `deadline` (time.monotonic())."""
    delivery = WebhookDelivery.objects.select_related("endpoint", "event").filter(pk=delivery_id).first()
    if delivery is None:  # its endpoint was deleted, or its event purged, since the claim
        return Outcome(None, "gone before it was sent")
    body = json.dumps(event_body(delivery.event), separators=(",", ":"), ensure_ascii=False)
    sent_at = timezone.now()
    headers = {
        "webhook-id": str(delivery.event.pk),
        "webhook-timestamp": str(int(sent_at.timestamp())),
        "webhook-signature": Webhook(signing_secret(delivery.endpoint)).sign(
            msg_id=str(delivery.event.pk), timestamp=sent_at, data=body
        ),
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
    }
    try:
        status_code = post(delivery.endpoint.url, body.encode(), headers, deadline=deadline)
    except UnsafeAddress as refused:
        return Outcome(None, str(refused))
    except (OSError, http.client.HTTPException) as exc:  # refused, reset, timed out, TLS, malformed answer
        return Outcome(None, f"{type(exc).__name__}: {exc}"[:500])
    except ValueError as exc:  # http.client refused the URL (InvalidURL, a character outside ASCII)
        # A URL stored before registration refused such characters: the
        # attempt fails (and counts toward disabling) rather than raising out
        # of the tick with its lease unrecorded.
        return Outcome(None, f"the URL cannot be sent on a request line ({type(exc).__name__}): percent-encode it")
    if 300 <= status_code < 400:
        return Outcome(status_code, "redirects are not followed")
    return Outcome(status_code, "" if 200 <= status_code < 300 else f"HTTP {status_code}")


def _record(delivery_id: int, lease: uuid.UUID, outcome: Outcome) -> None:
    """The attempt's outcome, if this worker still holds the lease (one that
    ran out is another worker's now)."""
    now = timezone.now()
    with transaction.atomic():
        delivery = (
            WebhookDelivery.objects.select_for_update(of=("self",))
            .select_related("endpoint")
            .filter(pk=delivery_id, lease=lease)
            .first()
        )
        if delivery is None:
            logger.warning("webhook delivery %s: lease lost before the outcome was recorded", delivery_id)
            return
        delivery.lease = None
        delivery.last_status_code, delivery.last_error = outcome.status_code, outcome.error
        endpoint = WebhookEndpoint.objects.filter(pk=delivery.endpoint_id)
        endpoint.update(last_attempt_at=now, last_status_code=outcome.status_code, last_error=outcome.error)
        if outcome.delivered:
            delivery.status, delivery.delivered_at = DeliveryStatus.DELIVERED, now
            endpoint.update(failing_since=None)
        else:
            delivery.next_attempt_at = now + retry_delay(delivery.attempts)
            endpoint.update(failing_since=Coalesce("failing_since", now))
            failing_since = endpoint.values_list("failing_since", flat=True).first()
            if outcome.status_code == 410:
                _disable(endpoint, now, "The endpoint answered 410 Gone.")
            elif failing_since and now - failing_since >= settings.WEBHOOK_DISABLE_AFTER:
                _disable(
                    endpoint,
                    now,
                    f"Every delivery failed for {settings.WEBHOOK_DISABLE_AFTER} (since "
                    f"{failing_since.isoformat()}); last: {outcome.error}",
                )
        delivery.save()


def _disable(endpoint: QuerySet[WebhookEndpoint], now: datetime, reason: str) -> None:
    logger.warning("webhook endpoint %s disabled: %s", endpoint.values_list("pk", flat=True).first(), reason)
    endpoint.update(is_active=False, disabled_at=now, disabled_reason=reason)


def event_body(event: Event) -> dict:
    """An event as GET /api/events and webhooks show it."""
    return dict(EventSerializer(event).data)


# --- the HTTP request ------------------------------------------------------------------


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to the address already checked, not to a second lookup of the name."""

    def __init__(self, host: str, port: int, address: str, timeout: float):
        super().__init__(host, port, timeout=timeout)
        self.address = address

    def connect(self):
        self.sock = socket.create_connection((self.address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, address: str, timeout: float):
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self.address = address

    def connect(self):
        # Held before the handshake, so that the deadline can cut a handshake that drips.
        self.sock = socket.create_connection((self.address, self.port), self.timeout)
        # The certificate is checked against the URL's host name (SNI too).
        self.sock = self._context.wrap_socket(self.sock, server_hostname=self.host)


class AttemptDeadlineExceeded(TimeoutError):
    """The exchange (connect, send, the answer's headers and body) did not end
    within WEBHOOK_TIMEOUT_SECONDS."""


class _CutAtDeadline:
    """Shuts the connection's socket down when the attempt's time is up.

    A socket timeout bounds each operation, not the exchange: a receiver
    that sends a byte every few seconds never lets one expire, and held a
    worker for as long as it liked (docs/design.md, "Webhook delivery").
    Shutting the socket down from a timer ends whatever the sending thread
    is blocked in (connect, TLS handshake, send, read) at once."""

    def __init__(self, conn: http.client.HTTPConnection, deadline: float):
        self.expired = False
        self._conn = conn
        self._timer = threading.Timer(max(0.0, deadline - time.monotonic()), self._cut)
        self._timer.daemon = True

    def __enter__(self) -> "_CutAtDeadline":
        self._timer.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._timer.cancel()

    def _cut(self) -> None:
        self.expired = True
        sock = self._conn.sock
        if sock is not None:
            # socket.socket's own shutdown, under TLS too: SSLSocket's drops its
            # SSL object, and a read then in progress fails with a ValueError.
            with contextlib.suppress(OSError):  # already closed
                socket.socket.shutdown(sock, socket.SHUT_RDWR)


def post(url: str, body: bytes, headers: dict[str, str], *, deadline: float) -> int:
    """POST `body` to `url` once, redirects not followed; the status code.
    The whole exchange ends by `deadline` (a time.monotonic() value), or the
    connection is cut and AttemptDeadlineExceeded raised. Raises UnsafeAddress,
    OSError (refused, reset, AttemptDeadlineExceeded) or http.client.HTTPException."""
    parts = urlsplit(url)
    https = parts.scheme == "https"
    port = parts.port or (443 if https else 80)
    seconds = settings.WEBHOOK_TIMEOUT_SECONDS
    if deadline - time.monotonic() <= 0:
        raise AttemptDeadlineExceeded(f"no complete answer within {seconds:g} s")
    # The lookup is part of the exchange: a name whose DNS server never answers
    # is cut at the deadline too.
    address = resolve_allowed(parts.hostname, port, timeout=deadline - time.monotonic(), lookups=DELIVERY_LOOKUPS)
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise AttemptDeadlineExceeded(f"no complete answer within {seconds:g} s")
    connection_class = _PinnedHTTPSConnection if https else _PinnedHTTPConnection
    conn = connection_class(parts.hostname, port, address, remaining)
    try:
        with _CutAtDeadline(conn, deadline) as cut:
            try:
                conn.request("POST", (parts.path or "/") + (f"?{parts.query}" if parts.query else ""), body, headers)
                response = conn.getresponse()
                response.read(MAX_RESPONSE_BYTES)
            except (OSError, http.client.HTTPException) as exc:
                if cut.expired:
                    raise AttemptDeadlineExceeded(f"no complete answer within {seconds:g} s") from exc
                raise
        if cut.expired:  # cut just as the answer ended: it may be incomplete
            raise AttemptDeadlineExceeded(f"no complete answer within {seconds:g} s")
        return response.status
    finally:
        conn.close()


# --- sending again -----------------------------------------------------------------------


def event_resend(*, event: Event, endpoint: WebhookEndpoint | None = None) -> int:
    """Deliver `event` again to `endpoint`, or to each active endpoint of its
    client that takes its type, as soon as a worker is free (support's admin
    actions, `manage.py resend_events`). Same webhook-id: a receiver that has
    it already may drop it. Returns how many deliveries were queued."""
    queued = 0
    now = timezone.now()
    endpoints = WebhookEndpoint.objects.filter(client_id=event.client_id, is_active=True)
    if endpoint is not None:
        endpoints = endpoints.filter(pk=endpoint.pk)
    for endpoint in endpoints.filter(event_types__contains=[event.type]):
        WebhookDelivery.objects.update_or_create(
            endpoint=endpoint,
            event=event,
            defaults={"status": DeliveryStatus.PENDING, "next_attempt_at": now, "lease": None},
        )
        queued += 1
    return queued


def webhook_endpoint_enable(*, endpoint: WebhookEndpoint) -> None:
    """Enable a disabled endpoint again (support, once the client has fixed
    its receiver): its held deliveries and the events since are sent."""
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
        is_active=True, disabled_at=None, disabled_reason="", failing_since=None
    )


def events_resend_since(*, client: AbstractBaseUser, since: datetime) -> tuple[int, int]:
    """event_resend for every event of `client` created at or after `since`.
    Returns (events, deliveries queued)."""
    events = Event.objects.filter(client=client, created_at__gte=since).order_by("txid", "seq")
    count = queued = 0
    for event in events.iterator():
        count += 1
        queued += event_resend(event=event)
    return count, queued
