"""The people of four eyes for tests: staff in the groups the migrations
create, and the whole flow (request, then another person's approval) for
tests that only need a correction applied."""

import threading
import uuid
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import connection

from conftest import ensure_migrated_groups
from corrections import services
from corrections.exceptions import NotPending
from corrections.models import Correction
from transfers import services as transfers
from transfers.models import TransactionLog
from transfers.tests.test_admin_e2e import PASSWORD


def staff(*groups: str, name: str = "staff"):
    """A staff user in these groups, who signs in with PASSWORD."""
    ensure_migrated_groups()
    user = get_user_model().objects.create_user(
        username=f"{name}-{uuid.uuid4().hex[:6]}", password=PASSWORD, is_staff=True
    )
    user.groups.add(*Group.objects.filter(name__in=groups))
    return get_user_model().objects.get(pk=user.pk)  # fresh: no cached permissions


def approved(correction: Correction, approver=None) -> Correction:
    """The request approved by another person (an Approver made for it)."""
    approver = approver or staff("Approver", name="approver")
    return services.correction_approve(
        correction_id=correction.pk, approver=approver, fingerprint=correction.fingerprint
    )


def reversed_with_four_eyes(log_id, reason: str, requested_by=None, approver=None) -> TransactionLog:
    """A reversal as the service makes it now: requested by a Finance user,
    approved by an Approver. Returns the compensating log (the old
    transaction_reverse's answer); raises the engine's refusal, as it did,
    when the approval could not apply it."""
    requested_by = requested_by or staff("Finance", name="finance")
    correction = approved(services.reversal_request(log_id=log_id, reason=reason, requested_by=requested_by), approver)
    correction.refresh_from_db()
    if correction.result_log is None:
        raise ReversalFailed(correction.decision_note)
    return correction.result_log


def completed_transfer(source, destination, amount: str = "40.00") -> TransactionLog:
    """A COMPLETED transfer between two funded wallets, by their owner."""
    return transfers.transfer_create(
        client=source.owner, source_wallet_id=source.pk, destination_wallet_id=destination.pk,
        amount=Decimal(amount), idempotency_key=f"k-{uuid.uuid4()}", metadata={},
    ).log  # fmt: skip


def approve_at_once(correction: Correction, approvers: list) -> list[str]:
    """Every approver approves the request at the same moment, each on its
    own thread and database connection; each one's outcome: "applied", or
    "already decided" (NotPending)."""
    barrier = threading.Barrier(len(approvers))
    outcomes: list[str] = []

    def approve(user):
        try:
            barrier.wait()
            services.correction_approve(correction_id=correction.pk, approver=user, fingerprint=correction.fingerprint)
            outcomes.append("applied")
        except NotPending:
            outcomes.append("already decided")
        finally:
            connection.close()

    threads = [threading.Thread(target=approve, args=(user,)) for user in approvers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sorted(outcomes)


class ReversalFailed(Exception):
    """The approval was recorded, the engine refused to apply it (FAILED)."""
