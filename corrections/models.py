"""Corrections: changes to the books that take effect only when a second
person approves them (docs/design.md, "Corrections: four eyes").

A Correction is a request: a reversal of a COMPLETED transaction, a manual
adjustment of a customer wallet against its currency's suspense wallet, or
the unfreezing of a wallet frozen for fraud. What it asks for (`payload`) is
frozen when it is made, with the SHA-256 of its canonical JSON
(`fingerprint`); the approval page shows both and the approval is refused
unless the fingerprint the approver saw is the stored one. PostgreSQL
itself refuses a change to what was asked, and any change to a request that
is no longer PENDING (migration 0001's trigger).

Every step is a row of correction_audit, which PostgreSQL refuses to UPDATE
or DELETE: the record of who asked, who approved or rejected and why, and
what was applied.
"""

import hashlib
import json
import uuid

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from transfers.models import TransactionLog
from wallets.models import DECIMAL_PLACES, MAX_DIGITS, Wallet


class CorrectionKind(models.TextChoices):
    REVERSAL = "REVERSAL", "Reversal"
    ADJUSTMENT = "ADJUSTMENT", "Manual adjustment"
    UNFREEZE = "UNFREEZE", "Unfreeze (frozen for fraud)"


class CorrectionStatus(models.TextChoices):
    PENDING = "PENDING", "Waiting for approval"
    APPLIED = "APPLIED", "Applied"
    REJECTED = "REJECTED", "Rejected"
    EXPIRED = "EXPIRED", "Expired"
    # Approved, but the money engine refused it (the receiver no longer
    # holds the money, ...): nothing moved; a new request may follow.
    FAILED = "FAILED", "Approved, not applied"


def payload_fingerprint(payload: dict) -> str:
    """SHA-256 (hex) of the payload's canonical JSON: keys sorted, no
    whitespace, UTF-8. Amounts are strings with two places, so one request
    has one fingerprint however it was typed."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


class Correction(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=16, choices=CorrectionKind.choices)
    status = models.CharField(max_length=16, choices=CorrectionStatus.choices, default=CorrectionStatus.PENDING)
    # What was asked, frozen (the trigger refuses a change): everything the
    # approval applies is read from here.
    payload = models.JSONField()
    fingerprint = models.CharField(max_length=64, help_text="SHA-256 of the payload's canonical JSON.")
    reason = models.TextField()
    # What it concerns, to list it on that object's admin page: the
    # transaction a reversal undoes, the wallet an adjustment or unfreeze changes.
    transaction = models.ForeignKey(
        TransactionLog, null=True, blank=True, on_delete=models.PROTECT, related_name="corrections"
    )
    wallet = models.ForeignKey(Wallet, null=True, blank=True, on_delete=models.PROTECT, related_name="corrections")
    # What money it moves (none for an unfreeze): compared with
    # CORRECTION_SINGLE_APPROVAL_BELOW, and shown in the approvers' list.
    amount = models.DecimalField(max_digits=MAX_DIGITS, decimal_places=DECIMAL_PLACES, null=True, blank=True)
    currency = models.CharField(max_length=3, blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="corrections_requested"
    )
    requested_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    # Who approved, rejected or let it expire (None for expiry).
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="corrections_decided"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    # Why it was rejected, or why the engine refused it (FAILED).
    decision_note = models.TextField(blank=True, default="")
    # Applied by its requester alone: below CORRECTION_SINGLE_APPROVAL_BELOW.
    applied_alone = models.BooleanField(default=False)
    # The log the correction wrote (the compensating transaction, the adjustment).
    result_log = models.OneToOneField(
        TransactionLog, null=True, blank=True, on_delete=models.PROTECT, related_name="correction_applied"
    )

    class Meta:
        db_table = "corrections"
        verbose_name = "correction request"
        ordering = ["-requested_at"]
        permissions = [
            ("approve_correction", "Can approve or reject another person's correction"),
            ("request_adjustment", "Can request a manual adjustment of a customer wallet"),
        ]
        indexes = [models.Index(fields=["status", "requested_at"], name="idx_corrections_status")]
        constraints = [
            models.CheckConstraint(
                condition=Q(kind__in=CorrectionKind.values), name="corrections_correction_kind_valid"
            ),
            models.CheckConstraint(
                condition=Q(status__in=CorrectionStatus.values), name="corrections_correction_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(fingerprint__regex=r"^[0-9a-f]{64}$"), name="corrections_correction_fingerprint_sha256"
            ),
            # Four eyes: whoever applied it is not whoever asked, unless it
            # was applied alone (below the threshold), by its requester.
            models.CheckConstraint(
                condition=~Q(status=CorrectionStatus.APPLIED)
                | Q(applied_alone=False, decided_by__isnull=False) & ~Q(decided_by=F("requested_by"))
                | Q(applied_alone=True, decided_by=F("requested_by")),
                name="corrections_correction_four_eyes",
            ),
            # One request at a time for a transaction, and for a wallet's unfreezing.
            models.UniqueConstraint(
                fields=["transaction"],
                condition=Q(status=CorrectionStatus.PENDING),
                name="corrections_correction_one_pending_per_transaction",
            ),
            models.UniqueConstraint(
                fields=["wallet"],
                condition=Q(status=CorrectionStatus.PENDING, kind=CorrectionKind.UNFREEZE),
                name="corrections_correction_one_pending_unfreeze_per_wallet",
            ),
            models.CheckConstraint(
                condition=Q(status=CorrectionStatus.APPLIED, result_log__isnull=False)
                | ~Q(status=CorrectionStatus.APPLIED, kind__in=[CorrectionKind.REVERSAL, CorrectionKind.ADJUSTMENT]),
                name="corrections_correction_applied_money_has_log",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {str(self.pk)[:8]} ({self.status})"


class AuditAction(models.TextChoices):
    REQUESTED = "REQUESTED", "Requested"
    APPROVED = "APPROVED", "Approved"
    REJECTED = "REJECTED", "Rejected"
    EXPIRED = "EXPIRED", "Expired"
    APPLIED = "APPLIED", "Applied"
    FAILED = "FAILED", "Not applied"


class CorrectionAudit(models.Model):
    """One step of a correction. Append-only: PostgreSQL refuses UPDATE and
    DELETE of these rows whoever sends them (migration 0001's trigger)."""

    id = models.BigAutoField(primary_key=True)
    correction = models.ForeignKey(Correction, on_delete=models.PROTECT, related_name="audit")
    action = models.CharField(max_length=16, choices=AuditAction.choices)
    # None: the service itself (expiry).
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    at = models.DateTimeField()
    note = models.TextField(blank=True, default="")
    # The request's fingerprint as it stood at this step.
    fingerprint = models.CharField(max_length=64)

    class Meta:
        db_table = "correction_audit"
        ordering = ["at", "id"]
        verbose_name = "correction audit entry"
        verbose_name_plural = "correction audit"
        indexes = [models.Index(fields=["at", "id"], name="idx_correction_audit_at")]
        constraints = [
            models.CheckConstraint(condition=Q(action__in=AuditAction.values), name="corrections_audit_action_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.action} {self.correction_id} at {self.at:%Y-%m-%d %H:%M:%S}"
