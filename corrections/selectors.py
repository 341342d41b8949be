"""Reads of correction requests and their audit."""

from datetime import timedelta

from django.db.models import Count, Min, Q, QuerySet
from django.utils import timezone

from corrections.models import Correction, CorrectionAudit, CorrectionStatus


def pending_summary() -> tuple[int, timedelta | None]:
    """(how many requests are PENDING, the age of the oldest or None): one
    index range read (idx_corrections_status)."""
    summary = Correction.objects.filter(status=CorrectionStatus.PENDING).aggregate(
        count=Count("id"), oldest=Min("requested_at")
    )
    oldest = summary["oldest"]
    return summary["count"], (timezone.now() - oldest if oldest else None)


def corrections_of_transaction(*, log_id) -> QuerySet[Correction]:
    """The requests about a transaction: its reversal requests, and the one
    that wrote it (a compensating transaction, an adjustment)."""
    return Correction.objects.filter(Q(transaction_id=log_id) | Q(result_log_id=log_id)).select_related(
        "requested_by", "decided_by"
    )


def corrections_of_wallet(*, wallet_id) -> QuerySet[Correction]:
    """The requests about a wallet: its adjustments and unfreezing, and the
    reversals of transactions into or out of it."""
    return Correction.objects.filter(
        Q(wallet_id=wallet_id)
        | Q(transaction__source_wallet_id=wallet_id)
        | Q(transaction__destination_wallet_id=wallet_id)
    ).select_related("requested_by", "decided_by")


def corrections_about(*, object_id) -> QuerySet[Correction]:
    """The request with this id, or the requests about the transaction or
    wallet with this id (the admin's search)."""
    return (
        Correction.objects.filter(pk=object_id)
        | corrections_of_transaction(log_id=object_id)
        | corrections_of_wallet(wallet_id=object_id)
    )


def audit_of(corrections: QuerySet[Correction]) -> QuerySet[CorrectionAudit]:
    return (
        CorrectionAudit.objects.filter(correction__in=corrections.values("pk"))
        .select_related("actor", "correction")
        .order_by("at", "id")
    )
