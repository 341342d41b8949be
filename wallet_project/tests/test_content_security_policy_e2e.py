"""The admin and the API docs carry a Content-Security-Policy that refuses
inline scripts, and nothing on them breaks under it: in Debian's Chromium
(as test_admin_e2e.py drives it), every page a person opens loads, works,
and the browser reports no violation of the policy.

The database is touched only before the browser starts (see test_admin_e2e.py).
"""

import uuid

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from playwright.sync_api import expect

from corrections.services import reversal_request
from corrections.tests.people import staff
from transfers.tests.test_admin_e2e import ARTIFACTS, PASSWORD, admin_page
from transfers.tests.test_reversal import completed_transfer

pytestmark = pytest.mark.django_db(transaction=True)

# Recorded in each page before its own scripts run, so none is missed.
RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) =>
  window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`));
"""


def test_the_admin_and_the_docs_pages_carry_the_policy_and_the_token_api_does_not(settings, treasury_api):
    for path in ("/admin/login/", "/api/docs/", "/static/admin/css/base.css"):
        response = Client().get(path)
        assert response["Content-Security-Policy"] == settings.CONTENT_SECURITY_POLICY, path
    assert "script-src 'self';" in settings.CONTENT_SECURITY_POLICY
    assert "Content-Security-Policy" not in treasury_api.get("/api/events").headers


def test_nothing_on_the_admin_or_the_docs_breaks_under_the_policy(live_server, funded_wallet):
    person = get_user_model().objects.create_superuser(f"csp-{uuid.uuid4().hex[:6]}", "csp@example.com", PASSWORD)
    source, destination = funded_wallet("100.00"), funded_wallet("0")
    log = completed_transfer(source, destination)
    correction = reversal_request(log_id=log.pk, reason="paid twice", requested_by=staff("Finance"))
    pages = [
        "/admin/",
        f"/admin/transfers/wallet/{source.pk}/change/",
        "/admin/transfers/transactionlog/",
        f"/admin/transfers/transactionlog/{log.pk}/change/",
        "/admin/clients/apikey/add/",
        "/admin/auth/user/add/",
        # Four eyes: the approvers' list and page, the audit, the request pages.
        "/admin/corrections/correction/",
        f"/admin/corrections/correction/{correction.pk}/change/",
        "/admin/corrections/correctionaudit/",
        f"/admin/transfers/transactionlog/{log.pk}/reverse/",
        f"/admin/wallets/wallet/{source.pk}/adjust/",
        f"/admin/wallets/wallet/{source.pk}/change/",
    ]
    console_refusals = []

    with admin_page(artifacts=ARTIFACTS / "csp") as page:
        page.add_init_script(RECORD_VIOLATIONS)
        page.on("console", lambda m: console_refusals.append(m.text) if "Content Security Policy" in m.text else None)
        page.goto(f"{live_server.url}/admin/login/")
        page.fill("#id_username", person.username)
        page.fill("#id_password", PASSWORD)
        page.click("input[type=submit]")
        expect(page).to_have_url(f"{live_server.url}/admin/")
        violations = {}
        for path in pages:
            page.goto(f"{live_server.url}{path}")
            page.wait_for_load_state("networkidle")
            violations[path] = page.evaluate("window.__cspViolations")
        # The admin's own scripts ran: the changelist's select-all box works.
        page.goto(f"{live_server.url}/admin/transfers/transactionlog/")
        page.check("#action-toggle")
        expect(page.locator("input.action-select").first).to_be_checked()
        # Swagger UI fetched the schema with the session and lists the operations.
        page.goto(f"{live_server.url}/api/docs/")
        expect(page.locator(".swagger-ui .opblock-summary-path[data-path='/api/transfer']")).to_be_visible()
        page.wait_for_load_state("networkidle")
        violations["/api/docs/"] = page.evaluate("window.__cspViolations")
        page.screenshot(path=ARTIFACTS / "csp" / "docs.png", full_page=True)

    assert {path: found for path, found in violations.items() if found} == {}
    assert console_refusals == []
