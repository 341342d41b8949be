"""End to end, in a real browser, two staff users: a Finance user requests
the reversal of a transfer, cannot approve it herself, and an Approver
approves it from the approval page, which shows the frozen request and its
fingerprint; the transfer is reversed once.

The browser helpers (Debian's Chromium through Playwright, screenshots in
test-artifacts/admin-e2e/) are transfers/tests/test_admin_e2e.py's. The
database is only touched before the browser starts and after it closes.
"""

import uuid
from decimal import Decimal

import pytest
from playwright.sync_api import expect

from corrections.models import AuditAction, Correction, CorrectionStatus
from corrections.tests.people import staff
from reconciliation.services import ledger_discrepancies
from transfers import services
from transfers.models import TransactionLog, TransactionStatus
from transfers.tests.test_admin_e2e import ARTIFACTS, LAYOUT_RULES, SCREEN, admin_page, sign_in
from wallets.models import Wallet

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_reversal_is_requested_by_one_person_and_applied_once_by_another(live_server, funded_wallet, migrated_groups):
    finance, approver = staff("Finance", name="finance"), staff("Approver", name="approver")
    source, destination = funded_wallet("100.00"), funded_wallet("0")
    log = services.transfer_create(
        client=source.owner, source_wallet_id=source.pk, destination_wallet_id=destination.pk,
        amount=Decimal("40.00"), idempotency_key=f"e2e-{uuid.uuid4()}", metadata={},
    ).log  # fmt: skip
    log_page = f"{live_server.url}/admin/transfers/transactionlog/{log.pk}/change/"

    with admin_page(SCREEN) as page:
        # The Finance user asks for the reversal: nothing moves.
        sign_in(page, f"{live_server.url}/admin/login/?next={log_page}", finance.username)
        page.click("#reverse-transaction")
        expect(page.locator("#content")).to_contain_text("Nothing moves now.")
        page.fill("#id_reason", "paid twice, ticket SUP-77")
        page.click("#confirm-reversal")
        expect(page.locator("ul.messagelist")).to_contain_text("waits for a second person's approval")
        expect(page.locator(".field-status .readonly")).to_have_text("Completed")
        expect(page.locator(".field-corrections")).to_contain_text("Waiting for approval")
        page.screenshot(path=ARTIFACTS / "20-reversal-requested.png", full_page=True)

        # She cannot approve her own request: the page offers no Approve.
        page.locator(".field-corrections a").first.click()
        expect(page.locator("#own-request")).to_be_visible()
        expect(page.locator("#approve-correction")).to_have_count(0)
        request_url = page.url
        fingerprint = page.locator(".field-fingerprint .readonly").inner_text().strip()
        page.screenshot(path=ARTIFACTS / "21-own-request.png", full_page=True)

        # The Approver finds it in the list, reads it, approves.
        page.context.clear_cookies()
        sign_in(page, f"{live_server.url}/admin/login/?next=/admin/corrections/correction/", approver.username)
        page.locator("#changelist-filter a", has_text="Waiting for approval").click()
        rows = page.locator("#result_list tbody tr")
        expect(rows).to_have_count(1)
        expect(rows.first).to_contain_text(log.reference)
        # The approvers' list fits 1440 px as the other lists do (docs/operations.md, "The admin's lists").
        assert (layout := page.evaluate(LAYOUT_RULES)) == [], layout
        page.screenshot(path=ARTIFACTS / "24-approvers-list-1440.png", full_page=True)
        rows.first.locator("th a").click()
        expect(page.locator("#correction-payload")).to_contain_text('"reference": "' + log.reference)
        assert page.url.split("?")[0] == request_url
        expect(page.locator("#shown-fingerprint")).to_have_text(fingerprint)
        page.screenshot(path=ARTIFACTS / "22-approval-page.png", full_page=True)
        page.click("#approve-correction")
        expect(page.locator("ul.messagelist")).to_contain_text(f"{log.reference} reversed")
        expect(page.locator(".field-status .readonly")).to_have_text("Applied")
        expect(page.locator("#approve-correction")).to_have_count(0)
        page.screenshot(path=ARTIFACTS / "23-applied.png", full_page=True)

    # After the browser: reversed once, by the approver, on the request of the Finance user.
    assert TransactionLog.objects.get(pk=log.pk).status == TransactionStatus.REVERSED
    (compensation,) = TransactionLog.objects.filter(reversal_of=log)
    correction = Correction.objects.get(transaction=log)
    assert (correction.status, correction.requested_by, correction.decided_by) == (
        CorrectionStatus.APPLIED, finance, approver,
    )  # fmt: skip
    assert correction.result_log == compensation and correction.fingerprint == fingerprint
    assert list(correction.audit.values_list("action", "actor")) == [
        (AuditAction.REQUESTED, finance.pk),
        (AuditAction.APPROVED, approver.pk),
        (AuditAction.APPLIED, approver.pk),
    ]
    assert (Wallet.objects.get(pk=source.pk).balance, Wallet.objects.get(pk=destination.pk).balance) == (
        Decimal("100.00"), Decimal("0.00"),
    )  # fmt: skip
    assert ledger_discrepancies() == []
