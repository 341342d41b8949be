"""Corrections: a change to the books is a request by one person that takes
effect only when a different person approves it (docs/design.md,
"Corrections: four eyes"). Writes only; the money moves in
transfers/services.py (transaction_reverse, adjustment_post) and a wallet
is unfrozen in wallets/services.py, called from here alone.

Guarantees:
- A request moves nothing. Its content (`payload`) is frozen when made and
  fingerprinted (SHA-256 of its canonical JSON); what is applied is read
  from it, and only if the approver saw that fingerprint.
- The approver is never the requester, has corrections.approve_correction,
  and approves only a PENDING request that has not expired.
- Applied exactly once: the request's row lock serialises approvers (the
  second finds it no longer PENDING), the engine's own at-most-once backs
  it (reversal_of is unique; an adjustment's (client, key) is), and the
  status change, its audit rows and the money commit in one transaction.
- Below CORRECTION_SINGLE_APPROVAL_BELOW (per currency; default none) the
  requester applies a reversal or an adjustment alone, recorded as such.
- Every step is a row of correction_audit, which the database keeps
  append-only.
"""

import uuid
from decimal import Decimal

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from corrections.exceptions import (
    FingerprintMismatch,
    NotCorrectable,
    NotPending,
    NotPermitted,
    OwnRequest,
    RequestExpired,
)
from corrections.models import (
    AuditAction,
    Correction,
    CorrectionAudit,
    CorrectionKind,
    CorrectionStatus,
    payload_fingerprint,
)
from transfers.exceptions import BusinessRuleViolation, ReversalNotAllowed
from transfers.models import TransactionLog, TransactionStatus
from transfers.services import AdjustmentDirection, adjustment_post, transaction_reverse
from wallet_project.api import timestamp_text
from wallets.exceptions import WalletNotFound
from wallets.models import MAX_AMOUNT, FreezeReason, Wallet, WalletKind
from wallets.services import wallet_set_active

# Who may do what (granted by corrections/migrations/0002_approver_group.py).
REQUEST_PERMISSION = {
    CorrectionKind.REVERSAL: "transfers.reverse_transactionlog",
    CorrectionKind.ADJUSTMENT: "corrections.request_adjustment",
    CorrectionKind.UNFREEZE: "wallets.freeze_wallet",
}
APPROVE_PERMISSION = "corrections.approve_correction"


# --- requests -------------------------------------------------------------------------


def reversal_request(*, log_id: uuid.UUID, reason: str, requested_by: AbstractBaseUser) -> Correction:
    """Ask for a COMPLETED transaction to be reversed (the whole amount goes
    back; transfers.services.transaction_reverse). Returns the request:
    PENDING, or APPLIED when the amount is below the currency's
    single-approval threshold (FAILED if the engine then refused it).

    Raises NotPermitted without transfers.reverse_transactionlog;
    NotCorrectable for a transaction that is not COMPLETED, is itself a
    reversal or already has a request waiting; TransactionLog.DoesNotExist;
    ValueError for an empty reason.
    """
    _require(requested_by, CorrectionKind.REVERSAL)
    reason = _reason(reason)
    log = TransactionLog.objects.select_related("source_wallet", "destination_wallet").get(pk=log_id)
    if log.status != TransactionStatus.COMPLETED:
        raise NotCorrectable(f"{log.reference} is {log.status}; only COMPLETED can be reversed.")
    if log.reversal_of_id is not None:
        raise NotCorrectable(f"{log.reference} is itself a reversal and cannot be reversed.")
    payload = {
        "kind": CorrectionKind.REVERSAL.value,
        "transaction": {
            "id": str(log.pk),
            "reference": log.reference,
            "type": log.type,
            "amount": f"{log.amount:.2f}",
            "currency": log.currency,
            # Money goes back from the destination to the source.
            "sourceWalletId": str(log.source_wallet_id),
            "destinationWalletId": str(log.destination_wallet_id),
            "completedAt": timestamp_text(log.completed_at),
        },
        "reason": reason,
    }
    return _record_request(
        kind=CorrectionKind.REVERSAL, payload=payload, reason=reason, requested_by=requested_by,
        transaction_id=log.pk, amount=log.amount, currency=log.currency,
    )  # fmt: skip


def adjustment_request(
    *,
    wallet_id: uuid.UUID,
    direction: AdjustmentDirection,
    amount: Decimal,
    reason: str,
    ticket: str,
    requested_by: AbstractBaseUser,
) -> Correction:
    """Ask for a customer wallet to be credited (from its currency's suspense
    wallet) or debited (to it) by `amount` (Decimal, > 0, two places at
    most), with a reason and the ticket that asks for it. Returns the
    request, PENDING or applied alone below the threshold.

    Raises NotPermitted without corrections.request_adjustment;
    WalletNotFound for anything but a customer wallet; ValueError for an
    amount out of range or an empty reason or ticket.
    """
    _require(requested_by, CorrectionKind.ADJUSTMENT)
    reason, ticket = _reason(reason), ticket.strip()
    if not ticket:
        raise ValueError("An adjustment needs the reference of the ticket that asks for it.")
    if not (Decimal("0") < amount <= MAX_AMOUNT) or amount != amount.quantize(Decimal("0.01")):
        raise ValueError(f"An adjustment moves more than 0 and at most {MAX_AMOUNT}, in cents.")
    wallet = Wallet.objects.filter(pk=wallet_id, kind=WalletKind.CUSTOMER).first()
    if wallet is None:
        raise WalletNotFound()
    payload = {
        "kind": CorrectionKind.ADJUSTMENT.value,
        "walletId": str(wallet.pk),
        "currency": wallet.currency,
        "direction": AdjustmentDirection(direction).value,
        "amount": f"{amount:.2f}",
        "ticket": ticket,
        "reason": reason,
    }
    return _record_request(
        kind=CorrectionKind.ADJUSTMENT, payload=payload, reason=reason, requested_by=requested_by,
        wallet_id=wallet.pk, amount=amount, currency=wallet.currency,
    )  # fmt: skip


def unfreeze_request(*, wallet_id: uuid.UUID, reason: str, requested_by: AbstractBaseUser) -> Correction:
    """Ask for a wallet frozen for fraud to be unfrozen: always four eyes
    (no amount, so no threshold). Raises NotPermitted without
    wallets.freeze_wallet; NotCorrectable when the wallet is not frozen for
    fraud (any other frozen wallet is unfrozen by one person) or already has
    an unfreeze waiting; Wallet.DoesNotExist."""
    _require(requested_by, CorrectionKind.UNFREEZE)
    reason = _reason(reason)
    wallet = Wallet.objects.get(pk=wallet_id)
    if wallet.is_active or wallet.frozen_reason != FreezeReason.FRAUD:
        raise NotCorrectable("Only a wallet frozen for suspected fraud needs a second person to unfreeze it.")
    payload = {
        "kind": CorrectionKind.UNFREEZE.value,
        "walletId": str(wallet.pk),
        "currency": wallet.currency,
        "frozenReason": wallet.frozen_reason,
        "reason": reason,
    }
    return _record_request(
        kind=CorrectionKind.UNFREEZE, payload=payload, reason=reason, requested_by=requested_by,
        wallet_id=wallet.pk, amount=None, currency=wallet.currency,
    )  # fmt: skip


def single_approval_applies(*, kind: CorrectionKind, amount: Decimal | None, currency: str) -> bool:
    """Whether one person may apply this correction alone: a reversal or an
    adjustment strictly below its currency's CORRECTION_SINGLE_APPROVAL_BELOW
    (none by default). An unfreeze never."""
    threshold = settings.CORRECTION_SINGLE_APPROVAL_BELOW.get(currency)
    return kind != CorrectionKind.UNFREEZE and threshold is not None and amount is not None and amount < threshold


def _record_request(
    *,
    kind: CorrectionKind,
    payload: dict,
    reason: str,
    requested_by: AbstractBaseUser,
    amount: Decimal | None,
    currency: str,
    transaction_id: uuid.UUID | None = None,
    wallet_id: uuid.UUID | None = None,
) -> Correction:
    now = timezone.now()
    alone = single_approval_applies(kind=kind, amount=amount, currency=currency)
    try:
        with transaction.atomic(durable=True):
            correction = Correction.objects.create(
                kind=kind, payload=payload, fingerprint=payload_fingerprint(payload), reason=reason,
                transaction_id=transaction_id, wallet_id=wallet_id, amount=amount, currency=currency,
                requested_by=requested_by, requested_at=now, expires_at=now + settings.CORRECTION_EXPIRES_AFTER,
            )  # fmt: skip
            _audit(correction, AuditAction.REQUESTED, requested_by, now, reason)
            if alone:
                threshold = settings.CORRECTION_SINGLE_APPROVAL_BELOW[currency]
                _apply(correction, requested_by, now, note=f"Applied alone: below {threshold} {currency}.")
    except IntegrityError as conflict:
        if "one_pending" in str(conflict):
            raise NotCorrectable(
                "A request for this is already waiting for approval: approve or reject it first."
            ) from None
        raise
    return correction


# --- decisions ------------------------------------------------------------------------


def correction_approve(*, correction_id: uuid.UUID, approver: AbstractBaseUser, fingerprint: str) -> Correction:
    """Approve a PENDING request and apply it, in one transaction under the
    request's row lock: APPLIED (with the log it wrote), or FAILED when the
    money engine refused it (its reason in decision_note; nothing moved).
    `fingerprint` is the one the approval page showed.

    Raises, changing nothing: NotPermitted (no approve permission),
    OwnRequest (the approver asked for it), NotPending, FingerprintMismatch.
    RequestExpired once its time is up, after marking it EXPIRED.
    """
    if not approver.has_perm(APPROVE_PERMISSION):
        raise NotPermitted("Approving a correction needs the Approver role.")
    with transaction.atomic(durable=True):
        correction = _lock(correction_id)
        now = timezone.now()
        _check_decidable(correction, approver)
        if correction.expires_at <= now:
            _expire(correction, now)
            expired = True
        else:
            expired = False
            seen, held = fingerprint, payload_fingerprint(correction.payload)
            if seen != correction.fingerprint or held != correction.fingerprint:
                raise FingerprintMismatch(
                    "What you approved is not what the request holds now: open it again and check."
                )
            _audit(correction, AuditAction.APPROVED, approver, now, "")
            _apply(correction, approver, now, note="")
    if expired:
        raise RequestExpired(f"The request expired at {correction.expires_at:%Y-%m-%d %H:%M:%S %Z}: ask again.")
    return correction


def correction_reject(*, correction_id: uuid.UUID, rejector: AbstractBaseUser, reason: str) -> Correction:
    """Reject a PENDING request with a reason: REJECTED, nothing applied,
    its audit rows kept. The requester may withdraw their own request this
    way too (it moves nothing); anyone else needs the approve permission.
    Raises NotPermitted, NotPending, ValueError (no reason)."""
    reason = _reason(reason)
    with transaction.atomic(durable=True):
        correction = _lock(correction_id)
        if correction.requested_by_id != rejector.pk and not rejector.has_perm(APPROVE_PERMISSION):
            raise NotPermitted("Rejecting another person's correction needs the Approver role.")
        if correction.status != CorrectionStatus.PENDING:
            raise NotPending(f"This request is already {correction.get_status_display().lower()}.")
        now = timezone.now()
        _decide(correction, CorrectionStatus.REJECTED, rejector, now, reason)
        _audit(correction, AuditAction.REJECTED, rejector, now, reason)
    return correction


def corrections_expire() -> int:
    """Mark EXPIRED every PENDING request past its expiry, each with its
    audit row (beat, every minute). Safe to run twice at once: rows another
    run (or an approver) holds are skipped. Returns how many expired."""
    expired = 0
    while True:
        with transaction.atomic(durable=True):
            now = timezone.now()
            batch = list(
                Correction.objects.select_for_update(skip_locked=True)
                .filter(status=CorrectionStatus.PENDING, expires_at__lte=now)
                .order_by("expires_at")[:100]
            )
            for correction in batch:
                _expire(correction, now)
        expired += len(batch)
        if len(batch) < 100:
            return expired


# --- the steps ----------------------------------------------------------------------------


def _apply(correction: Correction, actor: AbstractBaseUser, now, note: str) -> None:
    """Apply a correction from its frozen payload, inside the caller's
    transaction (which holds the request's row lock): APPLIED with its log,
    or FAILED when the engine refuses (a savepoint undoes its part)."""
    payload = correction.payload
    try:
        with transaction.atomic():
            if correction.kind == CorrectionKind.REVERSAL:
                log = transaction_reverse(
                    log_id=uuid.UUID(payload["transaction"]["id"]), reason=payload["reason"], reversed_by=actor
                )
            elif correction.kind == CorrectionKind.ADJUSTMENT:
                log = adjustment_post(
                    correction_id=correction.pk,
                    wallet_id=uuid.UUID(payload["walletId"]),
                    direction=AdjustmentDirection(payload["direction"]),
                    amount=Decimal(payload["amount"]),
                    reason=payload["reason"],
                    ticket=payload["ticket"],
                    requested_by=correction.requested_by,
                    approved_by=None if correction.requested_by_id == actor.pk else actor,
                )
            else:
                wallet_set_active(
                    wallet=Wallet.objects.get(pk=payload["walletId"]), is_active=True, second_person_approved=True
                )
                log = None
    except (ReversalNotAllowed, BusinessRuleViolation) as refused:
        # The engine's code first ("insufficient_balance: ..."): what the
        # approver is shown and the audit keeps.
        message = f"{refused.default_code}: {getattr(refused, 'detail', refused)}"
        _decide(correction, CorrectionStatus.FAILED, actor, now, message)
        _audit(correction, AuditAction.FAILED, actor, now, message)
        return
    correction.result_log = log
    correction.applied_alone = correction.requested_by_id == actor.pk
    _decide(correction, CorrectionStatus.APPLIED, actor, now, "")
    done = f"Wrote {log.reference}." if log else "Unfroze the wallet."
    _audit(correction, AuditAction.APPLIED, actor, now, f"{note} {done}".strip())


def _check_decidable(correction: Correction, approver: AbstractBaseUser) -> None:
    if correction.requested_by_id == approver.pk:
        raise OwnRequest("You asked for this correction: a different person must approve it.")
    if correction.status != CorrectionStatus.PENDING:
        raise NotPending(f"This request is already {correction.get_status_display().lower()}.")


def _expire(correction: Correction, now) -> None:
    _decide(correction, CorrectionStatus.EXPIRED, None, now, "")
    _audit(correction, AuditAction.EXPIRED, None, now, f"Not approved by {correction.expires_at:%Y-%m-%d %H:%M:%S %Z}.")


def _decide(correction: Correction, status: CorrectionStatus, actor, now, note: str) -> None:
    correction.status, correction.decided_by, correction.decided_at = status, actor, now
    correction.decision_note = note
    correction.save(
        update_fields=["status", "decided_by", "decided_at", "decision_note", "applied_alone", "result_log"]
    )


def _audit(correction: Correction, action: AuditAction, actor, now, note: str) -> None:
    CorrectionAudit.objects.create(
        correction=correction, action=action, actor=actor, at=now, note=note, fingerprint=correction.fingerprint
    )


def _lock(correction_id: uuid.UUID) -> Correction:
    return Correction.objects.select_for_update().select_related("requested_by").get(pk=correction_id)


def _require(user: AbstractBaseUser, kind: CorrectionKind) -> None:
    if not user.has_perm(REQUEST_PERMISSION[kind]):
        raise NotPermitted(f"Requesting a {CorrectionKind(kind).label.lower()} needs {REQUEST_PERMISSION[kind]}.")


def _reason(reason: str) -> str:
    reason = reason.strip()
    if not reason:
        raise ValueError("A correction needs a reason.")
    return reason
