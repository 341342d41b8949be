"""Four eyes in the service: a request moves nothing, a second person
applies it exactly once, what is applied is what was asked, and every step
is audited (docs/design.md, "Corrections: four eyes")."""

from datetime import timedelta
from decimal import Decimal

import pytest

from corrections import services
from corrections.exceptions import (
    FingerprintMismatch,
    NotCorrectable,
    NotPending,
    NotPermitted,
    OwnRequest,
    RequestExpired,
)
from corrections.models import AuditAction, Correction, CorrectionAudit, CorrectionStatus
from corrections.tests.people import approve_at_once, completed_transfer, staff
from reconciliation.services import ledger_discrepancies
from transfers.models import TransactionLog, TransactionStatus
from wallets.models import Wallet

pytestmark = pytest.mark.django_db


def actions(correction) -> list[str]:
    return list(CorrectionAudit.objects.filter(correction=correction).values_list("action", flat=True))


def balance(wallet) -> Decimal:
    return Wallet.objects.get(pk=wallet.pk).balance


def test_a_reversal_request_moves_nothing_until_another_person_approves_it(funded_wallet):
    source, destination = funded_wallet("100.00"), funded_wallet("0")
    original = completed_transfer(source, destination)
    finance, approver = staff("Finance"), staff("Approver")

    correction = services.reversal_request(log_id=original.pk, reason="paid twice", requested_by=finance)

    assert correction.status == CorrectionStatus.PENDING
    assert TransactionLog.objects.get(pk=original.pk).status == TransactionStatus.COMPLETED
    assert balance(destination) == Decimal("40.00")
    assert correction.expires_at - correction.requested_at == timedelta(hours=24)

    services.correction_approve(correction_id=correction.pk, approver=approver, fingerprint=correction.fingerprint)

    correction.refresh_from_db()
    assert correction.status == CorrectionStatus.APPLIED and correction.decided_by == approver
    assert correction.result_log.reversal_of_id == original.pk
    assert TransactionLog.objects.get(pk=original.pk).status == TransactionStatus.REVERSED
    assert (balance(source), balance(destination)) == (Decimal("100.00"), Decimal("0.00"))
    assert actions(correction) == [AuditAction.REQUESTED, AuditAction.APPROVED, AuditAction.APPLIED]
    assert ledger_discrepancies() == []


def test_the_requester_can_never_approve_their_own_request_even_holding_the_approver_role(funded_wallet):
    original = completed_transfer(funded_wallet("100.00"), funded_wallet("0"))
    both = staff("Finance", "Approver")
    correction = services.reversal_request(log_id=original.pk, reason="mine", requested_by=both)

    with pytest.raises(OwnRequest):
        services.correction_approve(correction_id=correction.pk, approver=both, fingerprint=correction.fingerprint)

    correction.refresh_from_db()
    assert correction.status == CorrectionStatus.PENDING
    assert actions(correction) == [AuditAction.REQUESTED]
    assert TransactionLog.objects.get(pk=original.pk).status == TransactionStatus.COMPLETED


def test_approving_needs_the_approver_role(funded_wallet):
    original = completed_transfer(funded_wallet("100.00"), funded_wallet("0"))
    correction = services.reversal_request(log_id=original.pk, reason="x", requested_by=staff("Finance"))

    with pytest.raises(NotPermitted):
        services.correction_approve(
            correction_id=correction.pk, approver=staff("Finance"), fingerprint=correction.fingerprint
        )
    assert Correction.objects.get(pk=correction.pk).status == CorrectionStatus.PENDING


def test_an_approval_of_other_content_than_the_request_holds_is_refused(funded_wallet):
    original = completed_transfer(funded_wallet("100.00"), funded_wallet("0"))
    correction = services.reversal_request(log_id=original.pk, reason="x", requested_by=staff("Finance"))

    with pytest.raises(FingerprintMismatch):
        services.correction_approve(correction_id=correction.pk, approver=staff("Approver"), fingerprint="0" * 64)
    assert Correction.objects.get(pk=correction.pk).status == CorrectionStatus.PENDING


def test_an_expired_request_is_refused_and_stays_expired(funded_wallet, settings):
    settings.CORRECTION_EXPIRES_AFTER = timedelta(seconds=0)
    original = completed_transfer(funded_wallet("100.00"), funded_wallet("0"))
    correction = services.reversal_request(log_id=original.pk, reason="late", requested_by=staff("Finance"))

    with pytest.raises(RequestExpired):
        services.correction_approve(
            correction_id=correction.pk, approver=staff("Approver"), fingerprint=correction.fingerprint
        )

    correction.refresh_from_db()
    assert correction.status == CorrectionStatus.EXPIRED
    assert actions(correction) == [AuditAction.REQUESTED, AuditAction.EXPIRED]
    assert TransactionLog.objects.get(pk=original.pk).status == TransactionStatus.COMPLETED
    with pytest.raises(NotPending):
        services.correction_approve(
            correction_id=correction.pk, approver=staff("Approver"), fingerprint=correction.fingerprint
        )


def test_the_expiry_task_expires_what_waited_too_long_and_nothing_else(funded_wallet, settings):
    settings.CORRECTION_EXPIRES_AFTER = timedelta(seconds=0)
    old = services.reversal_request(
        log_id=completed_transfer(funded_wallet("100.00"), funded_wallet("0")).pk, reason="old",
        requested_by=staff("Finance"),
    )  # fmt: skip
    settings.CORRECTION_EXPIRES_AFTER = timedelta(hours=24)
    fresh = services.reversal_request(
        log_id=completed_transfer(funded_wallet("100.00"), funded_wallet("0")).pk, reason="fresh",
        requested_by=staff("Finance"),
    )  # fmt: skip

    assert services.corrections_expire() == 1
    assert services.corrections_expire() == 0

    assert Correction.objects.get(pk=old.pk).status == CorrectionStatus.EXPIRED
    assert Correction.objects.get(pk=fresh.pk).status == CorrectionStatus.PENDING
    assert actions(old) == [AuditAction.REQUESTED, AuditAction.EXPIRED]


def test_a_rejected_request_is_never_applied_and_keeps_its_audit_rows(funded_wallet):
    original = completed_transfer(funded_wallet("100.00"), funded_wallet("0"))
    finance, approver = staff("Finance"), staff("Approver")
    correction = services.reversal_request(log_id=original.pk, reason="wrong", requested_by=finance)

    services.correction_reject(correction_id=correction.pk, rejector=approver, reason="the customer was right")

    with pytest.raises(NotPending):
        services.correction_approve(
            correction_id=correction.pk, approver=staff("Approver"), fingerprint=correction.fingerprint
        )
    correction.refresh_from_db()
    assert correction.status == CorrectionStatus.REJECTED
    assert correction.decision_note == "the customer was right"
    audit = list(CorrectionAudit.objects.filter(correction=correction).values_list("action", "actor", "note"))
    assert audit == [
        (AuditAction.REQUESTED, finance.pk, "wrong"),
        (AuditAction.REJECTED, approver.pk, "the customer was right"),
    ]
    assert TransactionLog.objects.get(pk=original.pk).status == TransactionStatus.COMPLETED


def test_a_second_request_for_a_transaction_waiting_for_approval_is_refused(funded_wallet):
    original = completed_transfer(funded_wallet("100.00"), funded_wallet("0"))
    services.reversal_request(log_id=original.pk, reason="first", requested_by=staff("Finance"))

    with pytest.raises(NotCorrectable, match="already waiting"):
        services.reversal_request(log_id=original.pk, reason="second", requested_by=staff("Finance"))
    assert Correction.objects.count() == 1


def test_a_reversal_the_engine_refuses_at_approval_is_failed_and_moves_nothing(funded_wallet):
    source, destination, third = funded_wallet("100.00"), funded_wallet("0"), funded_wallet("0")
    original = completed_transfer(source, destination)
    correction = services.reversal_request(log_id=original.pk, reason="too late", requested_by=staff("Finance"))
    completed_transfer(destination, third, "30.00")

    services.correction_approve(
        correction_id=correction.pk, approver=staff("Approver"), fingerprint=correction.fingerprint
    )

    correction.refresh_from_db()
    assert correction.status == CorrectionStatus.FAILED
    assert correction.decision_note.startswith("insufficient_balance: ")
    assert actions(correction) == [AuditAction.REQUESTED, AuditAction.APPROVED, AuditAction.FAILED]
    assert TransactionLog.objects.get(pk=original.pk).status == TransactionStatus.COMPLETED
    assert balance(destination) == Decimal("10.00")


def test_below_the_threshold_one_person_applies_a_correction_alone(funded_wallet, settings):
    settings.CORRECTION_SINGLE_APPROVAL_BELOW = {"NGN": Decimal("50.00")}
    small = completed_transfer(funded_wallet("100.00"), funded_wallet("0"), "49.99")
    large = completed_transfer(funded_wallet("100.00"), funded_wallet("0"), "50.00")
    finance = staff("Finance")

    alone = services.reversal_request(log_id=small.pk, reason="small", requested_by=finance)
    waits = services.reversal_request(log_id=large.pk, reason="large", requested_by=finance)

    assert (alone.status, alone.applied_alone, alone.decided_by) == (CorrectionStatus.APPLIED, True, finance)
    assert actions(alone) == [AuditAction.REQUESTED, AuditAction.APPLIED]
    assert TransactionLog.objects.get(pk=small.pk).status == TransactionStatus.REVERSED
    assert waits.status == CorrectionStatus.PENDING


def test_by_default_every_correction_needs_a_second_person(settings, funded_wallet):
    assert settings.CORRECTION_SINGLE_APPROVAL_BELOW == {}
    small = completed_transfer(funded_wallet("100.00"), funded_wallet("0"), "0.01")

    correction = services.reversal_request(log_id=small.pk, reason="tiny", requested_by=staff("Finance"))

    assert correction.status == CorrectionStatus.PENDING


@pytest.mark.django_db(transaction=True)
def test_two_approvers_at_once_apply_a_correction_once(funded_wallet, migrated_groups):
    source, destination = funded_wallet("100.00"), funded_wallet("0")
    original = completed_transfer(source, destination)
    correction = services.reversal_request(log_id=original.pk, reason="race", requested_by=staff("Finance"))

    outcomes = approve_at_once(correction, [staff("Approver"), staff("Approver")])

    assert outcomes == ["already decided", "applied"]
    assert TransactionLog.objects.filter(reversal_of=original).count() == 1
    assert actions(correction) == [AuditAction.REQUESTED, AuditAction.APPROVED, AuditAction.APPLIED]
    assert (balance(source), balance(destination)) == (Decimal("100.00"), Decimal("0.00"))
    assert ledger_discrepancies() == []
