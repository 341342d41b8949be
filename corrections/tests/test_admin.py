"""Four eyes in the admin, through its own views (django.test.Client on the
real PostgreSQL): requests from the transaction and wallet pages, the
approvers' list and page, refusals whatever is posted, the audit and its CSV."""

import csv
import io
from decimal import Decimal

import pytest
from django.contrib.admin.models import LogEntry
from django.test import Client
from django.urls import reverse

from corrections import services
from corrections.models import AuditAction, Correction, CorrectionAudit, CorrectionKind, CorrectionStatus
from corrections.tests.people import completed_transfer, staff
from reconciliation.services import ledger_discrepancies
from transfers.models import TransactionLog, TransactionStatus, TransactionType
from wallets.models import FreezeReason, Wallet, WalletKind
from wallets.services import wallet_set_active

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("migrated_groups")]


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    client.user = user
    return client


@pytest.fixture
def finance() -> Client:
    return signed_in(staff("Finance", name="finance"))


@pytest.fixture
def approver() -> Client:
    return signed_in(staff("Approver", name="approver"))


transfer = completed_transfer


def page_of(correction) -> str:
    return reverse("admin:corrections_correction_change", args=[correction.pk])


def approve_url(correction) -> str:
    return reverse("admin:corrections_correction_approve", args=[correction.pk])


def reject_url(correction) -> str:
    return reverse("admin:corrections_correction_reject", args=[correction.pk])


def requested_reversal(finance: Client, log) -> Correction:
    finance.post(reverse("admin:transfers_transactionlog_reverse", args=[log.pk]), {"reason": "paid twice"})
    return Correction.objects.get(transaction=log)


def test_the_approval_page_shows_the_frozen_request_and_its_fingerprint_and_approves_it(
    finance, approver, funded_wallet
):
    log = transfer(funded_wallet("100.00"), funded_wallet("0"))
    correction = requested_reversal(finance, log)

    listed = approver.get(reverse("admin:corrections_correction_changelist"), {"status__exact": "PENDING"})
    assert log.reference in listed.content.decode()
    page = approver.get(page_of(correction)).content.decode()
    assert correction.fingerprint in page
    assert log.reference in page and "&quot;amount&quot;: &quot;40.00&quot;" in page
    assert 'id="approve-correction"' in page

    done = approver.post(approve_url(correction), {"fingerprint": correction.fingerprint}, follow=True)

    assert f"{log.reference} reversed: " in done.content.decode()
    assert TransactionLog.objects.get(pk=log.pk).status == TransactionStatus.REVERSED
    assert ledger_discrepancies() == []


def test_the_requester_is_refused_at_approval_on_the_page_and_through_a_crafted_post(funded_wallet):
    both = signed_in(staff("Finance", "Approver", name="both"))
    log = transfer(funded_wallet("100.00"), funded_wallet("0"))
    correction = requested_reversal(both, log)

    page = both.get(page_of(correction)).content.decode()
    assert 'id="own-request"' in page
    assert 'id="approve-correction"' not in page
    crafted = both.post(approve_url(correction), {"fingerprint": correction.fingerprint}, follow=True)

    assert "Not approved: You asked for this correction" in crafted.content.decode()
    assert Correction.objects.get(pk=correction.pk).status == CorrectionStatus.PENDING
    assert TransactionLog.objects.get(pk=log.pk).status == TransactionStatus.COMPLETED
    assert list(correction.audit.values_list("action", flat=True)) == [AuditAction.REQUESTED]


def test_a_finance_user_without_the_approver_role_cannot_approve_by_posting(finance, funded_wallet):
    log = transfer(funded_wallet("100.00"), funded_wallet("0"))
    correction = requested_reversal(finance, log)
    colleague = signed_in(staff("Finance"))

    colleague.post(approve_url(correction), {"fingerprint": correction.fingerprint})

    assert Correction.objects.get(pk=correction.pk).status == CorrectionStatus.PENDING


def test_an_approval_posted_with_another_fingerprint_is_refused(finance, approver, funded_wallet):
    correction = requested_reversal(finance, transfer(funded_wallet("100.00"), funded_wallet("0")))

    response = approver.post(approve_url(correction), {"fingerprint": "f" * 64}, follow=True)

    assert "What you approved is not what the request holds" in response.content.decode()
    assert Correction.objects.get(pk=correction.pk).status == CorrectionStatus.PENDING


def test_a_rejected_request_cannot_be_approved_and_keeps_its_audit(finance, approver, funded_wallet):
    correction = requested_reversal(finance, transfer(funded_wallet("100.00"), funded_wallet("0")))

    approver.post(reject_url(correction), {"reason": "customer confirmed the payment"})
    again = approver.post(approve_url(correction), {"fingerprint": correction.fingerprint}, follow=True)

    assert "already rejected" in again.content.decode()
    audit = list(correction.audit.values_list("action", "note"))
    assert audit == [(AuditAction.REQUESTED, "paid twice"), (AuditAction.REJECTED, "customer confirmed the payment")]
    assert 'id="approve-correction"' not in approver.get(page_of(correction)).content.decode()


def test_approving_and_rejecting_are_posts_only(finance, approver, funded_wallet):
    correction = requested_reversal(finance, transfer(funded_wallet("100.00"), funded_wallet("0")))

    assert approver.get(approve_url(correction)).status_code == 405
    assert approver.get(reject_url(correction)).status_code == 405


def test_the_transaction_and_wallet_pages_show_a_pending_request_and_its_audit(finance, funded_wallet):
    source, destination = funded_wallet("100.00"), funded_wallet("0")
    log = transfer(source, destination)
    correction = requested_reversal(finance, log)
    support = signed_in(staff("Support"))

    for url in (
        reverse("admin:transfers_transactionlog_change", args=[log.pk]),
        reverse("admin:wallets_wallet_change", args=[destination.pk]),
    ):
        page = support.get(url).content.decode()
        assert page_of(correction) in page, url
        assert "Waiting for approval" in page and "Requested" in page, url


def test_approvers_need_no_money_permission_and_see_none(approver, finance, funded_wallet):
    wallet = funded_wallet("100.00")
    log = transfer(wallet, funded_wallet("0"))
    correction = requested_reversal(finance, log)

    assert approver.get(page_of(correction)).status_code == 200
    assert approver.get(reverse("admin:transfers_transactionlog_change", args=[log.pk])).status_code == 403
    assert approver.get(reverse("admin:wallets_wallet_change", args=[wallet.pk])).status_code == 403


def test_the_audit_exports_as_csv_with_formulas_defused(finance, approver, funded_wallet):
    log = transfer(funded_wallet("100.00"), funded_wallet("0"))
    finance.post(reverse("admin:transfers_transactionlog_reverse", args=[log.pk]), {"reason": "=HYPERLINK(evil)"})
    correction = Correction.objects.get(transaction=log)
    approver.post(approve_url(correction), {"fingerprint": correction.fingerprint})

    response = approver.get(reverse("admin:corrections_correctionaudit_export"))

    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [row["action"] for row in rows] == ["REQUESTED", "APPROVED", "APPLIED"]
    assert rows[0]["note"] == "'=HYPERLINK(evil)"
    assert {row["transaction"] for row in rows} == {log.reference}
    assert rows[1]["actor"] == approver.user.get_username()
    assert rows[0]["fingerprint"] == correction.fingerprint


def test_the_audit_export_follows_the_lists_filters(finance, approver, funded_wallet):
    for _ in range(2):
        requested_reversal(finance, transfer(funded_wallet("100.00"), funded_wallet("0")))
    correction = Correction.objects.first()
    approver.post(reject_url(correction), {"reason": "no"})

    response = approver.get(reverse("admin:corrections_correctionaudit_export"), {"action__exact": "REJECTED"})

    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [(row["action"], row["correction"]) for row in rows] == [("REJECTED", str(correction.pk))]


def test_finance_requests_a_credit_adjustment_against_suspense_and_an_approver_applies_it(
    finance, approver, funded_wallet
):
    wallet = funded_wallet("10.00")
    adjust = reverse("admin:wallets_wallet_adjust", args=[wallet.pk])
    assert (
        'id="adjust-balance"' in finance.get(reverse("admin:wallets_wallet_change", args=[wallet.pk])).content.decode()
    )

    finance.post(adjust, {"direction": "CREDIT", "amount": "25.50", "ticket": "SUP-1234", "reason": "fee refund"})
    correction = Correction.objects.get(wallet=wallet, kind=CorrectionKind.ADJUSTMENT)
    assert Wallet.objects.get(pk=wallet.pk).balance == Decimal("10.00")  # nothing yet
    approver.post(approve_url(correction), {"fingerprint": correction.fingerprint})

    correction.refresh_from_db()
    log = correction.result_log
    suspense = Wallet.objects.get(kind=WalletKind.SUSPENSE, currency=wallet.currency)
    assert (log.type, log.source_wallet_id, log.destination_wallet_id) == (
        TransactionType.DEPOSIT,
        suspense.pk,
        wallet.pk,
    )
    assert log.metadata["ticket"] == "SUP-1234" and log.metadata["approvedBy"] == approver.user.get_username()
    assert Wallet.objects.get(pk=wallet.pk).balance == Decimal("35.50")
    assert suspense.balance == Decimal("-25.50")
    assert ledger_discrepancies() == []


def test_support_cannot_request_an_adjustment(funded_wallet):
    support = signed_in(staff("Support"))
    wallet = funded_wallet("10.00")

    response = support.post(
        reverse("admin:wallets_wallet_adjust", args=[wallet.pk]),
        {"direction": "CREDIT", "amount": "5", "ticket": "T", "reason": "x"},
    )

    assert response.status_code == 403
    assert not Correction.objects.exists()


def test_a_wallet_frozen_for_fraud_is_unfrozen_only_with_a_second_persons_approval(approver, funded_wallet):
    support = signed_in(staff("Support"))
    wallet = funded_wallet("10.00")
    change = reverse("admin:wallets_wallet_change", args=[wallet.pk])

    # The confirmation page's reason (wallets/admin.py, FreezeNoteForm).
    confirmed = {"apply": "Freeze for fraud", "reason": "matches a mule pattern"}
    support.post(reverse("admin:wallets_wallet_freeze_for_fraud", args=[wallet.pk]), confirmed)
    assert Wallet.objects.get(pk=wallet.pk).frozen_reason == FreezeReason.FRAUD
    page = support.get(change).content.decode()
    assert 'id="unfreeze-wallet"' not in page and 'id="request-unfreeze"' in page
    refused = support.post(reverse("admin:wallets_wallet_unfreeze", args=[wallet.pk]), confirmed, follow=True)
    assert "unfreezing one needs a second person" in refused.content.decode()
    assert not Wallet.objects.get(pk=wallet.pk).is_active

    support.post(reverse("admin:wallets_wallet_request_unfreeze", args=[wallet.pk]), {"reason": "customer verified"})
    correction = Correction.objects.get(wallet=wallet, kind=CorrectionKind.UNFREEZE)
    assert not Wallet.objects.get(pk=wallet.pk).is_active
    approver.post(approve_url(correction), {"fingerprint": correction.fingerprint})

    unfrozen = Wallet.objects.get(pk=wallet.pk)
    assert (unfrozen.is_active, unfrozen.frozen_reason) == (True, "")
    history = LogEntry.objects.filter(object_id=str(wallet.pk)).order_by("action_time")
    assert [(entry.user, entry.get_change_message().split(" (")[0]) for entry in history] == [
        (support.user, "Froze the wallet for suspected fraud: matches a mule pattern"),
        (support.user, "Requested to unfreeze"),
        (approver.user, "Unfroze the wallet"),
    ]
    assert Correction.objects.get(pk=correction.pk).status == CorrectionStatus.APPLIED


def test_a_wallet_frozen_by_support_is_still_unfrozen_by_one_person(funded_wallet):
    support = signed_in(staff("Support"))
    wallet = funded_wallet("10.00")
    wallet_set_active(wallet=wallet, is_active=False)

    unfreeze = reverse("admin:wallets_wallet_unfreeze", args=[wallet.pk])
    support.post(unfreeze, {"apply": "Unfreeze", "reason": "resolved"})

    assert Wallet.objects.get(pk=wallet.pk).is_active
    assert not CorrectionAudit.objects.exists()


def test_below_the_threshold_the_request_page_applies_at_once(finance, funded_wallet, settings):
    settings.CORRECTION_SINGLE_APPROVAL_BELOW = {"NGN": Decimal("100.00")}
    log = transfer(funded_wallet("100.00"), funded_wallet("0"))
    url = reverse("admin:transfers_transactionlog_reverse", args=[log.pk])

    assert "applies as soon as you confirm" in finance.get(url).content.decode()
    done = finance.post(url, {"reason": "small"}, follow=True)

    assert "reversed (alone, below the single-approval threshold)" in done.content.decode()
    assert TransactionLog.objects.get(pk=log.pk).status == TransactionStatus.REVERSED
    assert services.single_approval_applies(kind=CorrectionKind.REVERSAL, amount=log.amount, currency="NGN")


def test_a_staff_user_without_the_corrections_permissions_cannot_decide(finance, funded_wallet):
    correction = requested_reversal(finance, transfer(funded_wallet("100.00"), funded_wallet("0")))
    nobody = signed_in(staff())

    assert nobody.post(approve_url(correction), {"fingerprint": correction.fingerprint}).status_code == 403
    assert nobody.post(reject_url(correction), {"reason": "no"}).status_code == 403
    assert Correction.objects.get(pk=correction.pk).status == CorrectionStatus.PENDING
