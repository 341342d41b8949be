"""In a real browser: a person who opens the API docs without a session is
sent to the admin's login page and, once logged in, back to the docs; and a
wallet's page in the admin shows a FAILED transfer as a movement that did
not happen (marked, struck through, out of the net).

The same Playwright set-up as test_admin_e2e.py (Debian's Chromium against
pytest-django's live server; screenshots in test-artifacts/). The database is
touched only before the browser starts and after it closes.
"""

import uuid
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from playwright.sync_api import expect

from transfers import services
from transfers.models import TransactionStatus
from transfers.tests.test_admin_e2e import ARTIFACTS, PASSWORD, admin_page

pytestmark = pytest.mark.django_db(transaction=True)


def staff_user(group: str):
    user = get_user_model().objects.create_user(
        username=f"{group.lower()}-{uuid.uuid4().hex[:6]}", password=PASSWORD, is_staff=True
    )
    user.groups.add(Group.objects.get(name=group))
    return user


def log_in(page, username: str) -> None:
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")


def test_api_docs_without_a_session_land_on_the_login_page_and_show_the_docs_after_it(live_server, migrated_groups):
    person = staff_user("Support")

    with admin_page(artifacts=ARTIFACTS / "docs") as page:
        page.goto(f"{live_server.url}/api/docs/")
        expect(page).to_have_url(f"{live_server.url}/admin/login/?next=/api/docs/")
        expect(page.locator("#id_username")).to_be_visible()
        page.screenshot(path=ARTIFACTS / "docs" / "01-login.png", full_page=True)

        log_in(page, person.username)

        expect(page).to_have_url(f"{live_server.url}/api/docs/")
        # Swagger UI has fetched the schema with the session and lists the operations.
        expect(page.locator(".swagger-ui .opblock-summary-path[data-path='/api/transfer']")).to_be_visible()
        expect(page.locator(".swagger-ui")).to_contain_text("/api/wallets/{id}/deposit")
        page.screenshot(path=ARTIFACTS / "docs" / "02-docs.png", full_page=True)


def test_wallet_page_shows_a_failed_transfer_as_not_moved_and_out_of_the_net(
    live_server, funded_wallet, migrated_groups
):
    agent = staff_user("Support")
    source, destination = funded_wallet("100.00"), funded_wallet("0")

    def transfer(amount: str, key: str):
        return services.transfer_create(
            client=source.owner,
            source_wallet_id=source.pk,
            destination_wallet_id=destination.pk,
            amount=Decimal(amount),
            idempotency_key=key,
            metadata={},
        ).log

    completed = transfer("40.00", "e2e-rent")
    failed = transfer("99999.00", "e2e-too-much")
    assert failed.status == TransactionStatus.FAILED

    with admin_page(artifacts=ARTIFACTS / "failed") as page:
        page.goto(f"{live_server.url}/admin/login/?next=/admin/wallets/wallet/{source.pk}/change/")
        log_in(page, agent.username)
        recent = page.locator(".field-recent_transactions")
        expect(recent).to_contain_text(failed.reference)

        failed_row = recent.locator("tr", has_text=failed.reference)
        expect(failed_row).to_have_class("not-moved")
        expect(failed_row).to_contain_text("not moved (FAILED)")
        expect(failed_row.locator("s")).to_have_text("99999.00 NGN")
        expect(failed_row).not_to_contain_text("-99999.00")
        expect(recent.locator("tr", has_text=completed.reference)).to_contain_text("-40.00 NGN")
        # The deposit's +100.00 and the completed -40.00; the failed 99999.00 is not counted.
        expect(recent.locator("tr.net")).to_contain_text("+60.00 NGN")
        expect(page.locator(".field-ledger_balance")).to_contain_text("60.00 (agrees with the stored balance")
        page.screenshot(path=ARTIFACTS / "failed" / "01-wallet-with-a-failed-transfer.png", full_page=True)
