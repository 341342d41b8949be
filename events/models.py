"""The event outbox and webhook delivery.

The outbox sits below wallets and transfers because both write it in their
own transactions: wallets (freeze, unfreeze, tier) and transfers (settle,
reverse, batches, holds). A row holds the object as the API showed it to its
client when the change committed, rendered by the app that made the change,
so nothing here needs to know what a transaction is. Delivery (webhooks.py)
only reads these rows; it never decides what happened.
"""

import uuid

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import BrinIndex
from django.db import models
from django.db.models import Func, Q, Value
from django.db.models.functions import Cast, Now
from django.utils import timezone

# The tables and constraint names are those these models had in `wallets`,
# where they were born: the move to this app changed Django's state only
# (migrations/0001_initial.py), so no table, row or constraint was touched.


class EventType(models.TextChoices):
    TRANSFER_COMPLETED = "transfer.completed"
    TRANSFER_FAILED = "transfer.failed"
    TRANSFER_REVERSED = "transfer.reversed"
    DEPOSIT_COMPLETED = "deposit.completed"
    DEPOSIT_FAILED = "deposit.failed"
    WITHDRAWAL_COMPLETED = "withdrawal.completed"
    WITHDRAWAL_FAILED = "withdrawal.failed"
    BATCH_FINISHED = "batch.finished"
    HOLD_CREATED = "hold.created"
    HOLD_CAPTURED = "hold.captured"
    HOLD_VOIDED = "hold.voided"
    HOLD_EXPIRED = "hold.expired"
    HOLD_EXTENDED = "hold.extended"
    WALLET_FROZEN = "wallet.frozen"
    WALLET_UNFROZEN = "wallet.unfrozen"
    WALLET_TIER_CHANGED = "wallet.tier_changed"
    # The ledger chain's head, sent to LEDGER_CHECKPOINT_CLIENT (reconciliation/chain.py).
    LEDGER_CHECKPOINT = "ledger.checkpoint"


# The id of the writing transaction (PostgreSQL's xid8, as a bigint): listing
# only events whose transaction is older than every transaction still running
# is what makes the listing commit-ordered (events/outbox.py).
CURRENT_TXID = Cast(Cast(Func(function="pg_current_xact_id"), models.TextField()), models.BigIntegerField())
EVENT_SEQUENCE = "events_seq"


class Event(models.Model):
    """One client's copy of something that happened (the transactional
    outbox): a transfer between two clients is two events, one per owner,
    each showing what that owner may see."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, db_default=Func(function="gen_random_uuid"))
    # The cursor's tie-breaker within one writing transaction (a sequence the
    # migration creates, so that SQL inserts need not name it).
    seq = models.BigIntegerField(editable=False, db_default=Func(Value(EVENT_SEQUENCE), function="nextval"))
    # Indexed by the cursor index below (client first): every index is a write
    # in the settle statement, under the wallet row locks.
    client = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="events", db_index=False
    )
    type = models.CharField(max_length=32, choices=EventType.choices)
    data = models.JSONField(help_text="The object as the API showed it to this client when the change committed.")
    created_at = models.DateTimeField(default=timezone.now, db_default=Now())
    txid = models.BigIntegerField(
        editable=False,
        db_default=CURRENT_TXID,
        help_text="The id of the database transaction that wrote the event.",
    )

    class Meta:
        db_table = "events"
        ordering = ["txid", "seq"]
        permissions = [("resend_event", "Can send events to webhook endpoints again")]
        indexes = [
            models.Index(fields=["client", "txid", "seq"], name="idx_events_client_cursor"),
            # The retention purge's (events.outbox.expired_events) and a
            # resend's from an instant: a BRIN, a summary per range of pages,
            # as the rows are appended in created_at order; a b-tree was one
            # more entry per event, written in the settle statement under
            # the wallet row locks (bench/HISTORY.md, 2026-12-07 12:12).
            # A filled range is summarized by autovacuum (autosummarize);
            # one not yet summarized is read as a match, and the purge, oldest
            # pages first, stops at its batch's limit.
            BrinIndex(fields=["created_at"], name="idx_events_created_at", autosummarize=True),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(type__in=EventType.values), name="wallets_event_type_known"),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.id}"


class WebhookEndpoint(models.Model):
    """A client's URL that receives its events, signed per Standard Webhooks."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    client = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="webhook_endpoints")
    url = models.URLField(max_length=2000)
    event_types = ArrayField(models.CharField(max_length=32, choices=EventType.choices))
    # The signing secret, encrypted with a key derived from DJANGO_SECRET_KEY
    # (events/webhooks.py): the service must sign with it, so a hash will not do.
    secret_encrypted = models.TextField(editable=False)
    is_active = models.BooleanField(default=True)
    disabled_at = models.DateTimeField(null=True, blank=True, editable=False)
    disabled_reason = models.TextField(blank=True, editable=False)
    # Since when every attempt has failed; cleared by a success.
    failing_since = models.DateTimeField(null=True, blank=True, editable=False)
    # The last attempt to deliver to it, as its client reads it (GET /api/webhook-endpoints).
    last_attempt_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_status_code = models.PositiveIntegerField(null=True, blank=True, editable=False)
    last_error = models.TextField(blank=True, editable=False)
    # Fan-out has copied every event up to (cursor_txid, cursor_seq) into deliveries.
    cursor_txid = models.BigIntegerField(editable=False)
    cursor_seq = models.BigIntegerField(default=0, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        db_table = "webhook_endpoints"
        ordering = ["created_at"]
        indexes = [models.Index(fields=["client", "created_at"], name="idx_webhook_endpoints_client")]
        constraints = [
            models.CheckConstraint(
                condition=Q(url__startswith="https://") | Q(url__startswith="http://"),
                name="wallets_webhookendpoint_url_http",
            ),
        ]

    def __str__(self) -> str:
        return self.url


class DeliveryStatus(models.TextChoices):
    PENDING = "PENDING"
    DELIVERED = "DELIVERED"


class WebhookDelivery(models.Model):
    """One event to one endpoint: at least once, retried with backoff until
    a 2xx or the endpoint is disabled."""

    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    event = models.ForeignKey(
        Event,
        on_delete=models.CASCADE,
        related_name="deliveries",
    )
    status = models.CharField(max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    # Set while a worker holds the delivery (until next_attempt_at): a worker
    # that dies leaves it to be claimed again when the lease runs out.
    lease = models.UUIDField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "webhook_deliveries"
        verbose_name_plural = "webhook deliveries"
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["next_attempt_at"], condition=Q(status="PENDING"), name="idx_webhook_deliveries_due"),
            models.Index(fields=["endpoint", "-created_at"], name="idx_webhook_deliveries_recent"),
            # The deliveries in flight, counted per client at every claim (events/webhooks.py).
            models.Index(
                fields=["endpoint"],
                condition=Q(status="PENDING", lease__isnull=False),
                name="idx_webhook_deliveries_leased",
            ),
        ]
        constraints = [
            models.UniqueConstraint(fields=["endpoint", "event"], name="wallets_webhookdelivery_once_per_endpoint"),
        ]

    def __str__(self) -> str:
        return f"{self.event_id} to {self.endpoint_id}"
