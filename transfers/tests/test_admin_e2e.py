"""End to end, in a real browser: a support agent finds a transfer by its
reference, follows it to the source wallet, freezes that wallet (saying why,
on the page that asks before anything is frozen), and sees the freeze and its
reason on the wallet and in its history; and the wallet and transaction lists she
opens fit a 1440 px screen (docs/operations.md, "The admin's lists"), checked
by comparing the columns' bounding boxes with the viewport.

Playwright drives Debian's Chromium (/usr/bin/chromium, installed by
bin/ensure-test-tools, which `make test` runs first) against pytest-django's
live server. Screenshots of each step go to test-artifacts/admin-e2e/.

The database is only touched before the browser starts and after it closes:
Playwright's sync API runs an event loop in this thread, and Django refuses
ORM calls from a thread with a running loop.
"""

import shutil
import uuid
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from playwright.sync_api import expect, sync_playwright

from transfers import services
from wallets.models import Wallet

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "admin-e2e"
PASSWORD = "a-long-support-passphrase-42"
# Why the agent freezes the wallet, as she types it on the confirmation page.
REASON = "customer reports the card stolen, ticket 4711"

pytestmark = pytest.mark.django_db(transaction=True)


def browser_page(playwright):
    """Debian's Chromium, headless, and a page in it with generous timeouts
    (the suite shares two cores)."""
    if not shutil.which(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: run bin/ensure-test-tools (make test does)")
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.set_default_timeout(30_000)
    expect.set_options(timeout=30_000)
    return browser, page


@contextmanager
def admin_page(viewport: dict | None = None, artifacts: Path = ARTIFACTS):
    """A browser_page for one test; should the test fail in it, the page's
    address, the error and a screenshot are left in `artifacts`/failure.*."""
    artifacts.mkdir(parents=True, exist_ok=True)
    for stale in artifacts.glob("failure.*"):
        stale.unlink()
    with sync_playwright() as playwright:
        browser, page = browser_page(playwright)
        if viewport:
            page.set_viewport_size(viewport)
        try:
            yield page
        except Exception as failure:
            (artifacts / "failure.txt").write_text(f"{page.url}\n{failure}\n")
            page.screenshot(path=artifacts / "failure.png", full_page=True)
            raise
        finally:
            browser.close()


def support_agent():
    """A staff user in the Support group, who signs in with PASSWORD."""
    agent = get_user_model().objects.create_user(
        username=f"support-{uuid.uuid4().hex[:6]}", password=PASSWORD, is_staff=True
    )
    agent.groups.add(Group.objects.get(name="Support"))
    return agent


def sign_in(page, url: str, username: str) -> None:
    """The admin's login page at `url`, filled in and sent."""
    page.goto(url)
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")


def test_support_finds_a_transfer_freezes_its_source_wallet_and_sees_it_in_the_history(
    live_server, funded_wallet, migrated_groups
):
    # Before the browser: the agent, and a transfer to look for.
    agent = get_user_model().objects.create_user(
        username=f"support-{uuid.uuid4().hex[:6]}", password=PASSWORD, is_staff=True
    )
    agent.groups.add(Group.objects.get(name="Support"))
    source, destination = funded_wallet("100.00"), funded_wallet("0")
    log = services.transfer_create(
        client=source.owner,
        source_wallet_id=source.pk,
        destination_wallet_id=destination.pk,
        amount=Decimal("40.00"),
        idempotency_key="e2e-order-1",
        metadata={"note": "rent"},
    ).log
    with admin_page() as page:
        stylesheets = []
        page.on("response", lambda r: stylesheets.append((r.url, r.status)) if r.url.endswith(".css") else None)
        page.goto(f"{live_server.url}/admin/login/?next=/admin/")
        page.fill("#id_username", agent.username)
        page.fill("#id_password", PASSWORD)
        page.click("input[type=submit]")
        expect(page.locator("#content h1")).to_have_text("Site administration")
        page.screenshot(path=ARTIFACTS / "01-index.png", full_page=True)

        page.click("text=Transaction logs")
        page.fill("#searchbar", log.reference.lower())  # as typed from a customer's email
        page.press("#searchbar", "Enter")
        rows = page.locator("#result_list tbody tr")
        expect(rows).to_have_count(1)
        expect(rows.first.locator(".field-status")).to_have_text("Completed")
        page.screenshot(path=ARTIFACTS / "02-search-by-reference.png", full_page=True)

        rows.first.locator("th a").click()  # the reference, the row's link to the log
        expect(page.locator(".field-pretty_metadata pre")).to_contain_text('"note": "rent"')
        page.screenshot(path=ARTIFACTS / "03-transaction.png", full_page=True)

        page.locator(".field-source a").click()
        expect(page).to_have_url(f"{live_server.url}/admin/wallets/wallet/{source.pk}/change/")
        expect(page.locator(".field-ledger_balance")).to_contain_text("60.00 (agrees with the stored balance")
        expect(page.locator(".field-recent_transactions")).to_contain_text(log.reference)
        page.click("#freeze-wallet")
        # Nothing is frozen on one click: a page naming the wallet asks why.
        expect(page.locator("#set-active-wallets")).to_contain_text(str(source.pk))
        page.screenshot(path=ARTIFACTS / "04-freeze-asks-why.png", full_page=True)
        page.fill("#id_reason", REASON)
        page.click("#set-active-apply")
        expect(page.locator("ul.messagelist")).to_contain_text("Froze 1 wallet.")
        expect(page.locator("#unfreeze-wallet")).to_be_visible()
        expect(page.locator(".field-frozen_because")).to_contain_text(f"Support decision: {REASON}")
        page.screenshot(path=ARTIFACTS / "05-wallet-frozen.png", full_page=True)

        page.click("a.historylink")
        history = page.locator("#change-history")
        expect(history).to_contain_text(f"Froze the wallet: {REASON}")
        expect(history).to_contain_text(agent.username)
        page.screenshot(path=ARTIFACTS / "06-wallet-history.png", full_page=True)

    # The admin's stylesheets were served (by the live server's static
    # handler), so the screenshots show the admin as staff see it.
    assert any(url.endswith("/admin/css/base.css") and status == 200 for url, status in stylesheets), stylesheets
    # After the browser: what the clicks did.
    assert not Wallet.objects.get(pk=source.pk).is_active
    entry = LogEntry.objects.get(object_id=str(source.pk))
    assert (entry.user_id, entry.get_change_message()) == (agent.pk, f"Froze the wallet: {REASON}")


# --- the lists at 1440 px -----------------------------------------------------------------

SCREEN = {"width": 1440, "height": 900}
# The layout rules the lists are held to (docs/operations.md, "The admin's lists").
LAYOUT_RULES = """
(() => {
  const results = document.querySelector("#changelist .results");
  const table = document.querySelector("#result_list");
  const problems = [];
  if (results.scrollWidth > results.clientWidth + 1) {
    problems.push(`the list scrolls sideways: ${results.scrollWidth} px in ${results.clientWidth} px`);
  }
  for (const th of table.querySelectorAll("thead th")) {
    const box = th.getBoundingClientRect();
    if (box.right > window.innerWidth || box.right > results.getBoundingClientRect().right + 1) {
      problems.push(`column "${th.innerText.trim()}" is cut off at ${Math.round(box.right)} px`);
    }
  }
  // A cell wrapping over more than two lines (a UUID broken over four or five) is a layout fault too.
  for (const cell of table.querySelectorAll("tbody td, tbody th")) {
    const lineHeight = parseFloat(getComputedStyle(cell).lineHeight) || 16;
    const padding = parseFloat(getComputedStyle(cell).paddingTop) + parseFloat(getComputedStyle(cell).paddingBottom);
    const lines = Math.round((cell.getBoundingClientRect().height - padding) / lineHeight);
    if (lines > 2) problems.push(`a "${cell.className}" cell wraps over ${lines} lines: ${cell.innerText.trim()}`);
  }
  return problems;
})()
"""


def test_the_lists_a_support_agent_opens_fit_1440_px(live_server, funded_wallet, wallet_owner, migrated_groups):
    """The wallet and transaction lists at 1440 px: no column cut off, short
    ids with the whole id on hover, FAILED rows with their reason in a column,
    settlement wallets set apart and explained, and an owner filter listing
    API clients, not staff."""
    agent = support_agent()
    root = get_user_model().objects.create_superuser(username=f"root-{uuid.uuid4().hex[:6]}", password=PASSWORD)
    source, destination = funded_wallet("100.00"), funded_wallet("0")
    services.transfer_create(
        client=wallet_owner, source_wallet_id=source.pk, destination_wallet_id=destination.pk,
        amount=Decimal("40.00"), idempotency_key="fits-1", metadata={},
    )  # fmt: skip
    refused = services.transfer_create(
        client=wallet_owner, source_wallet_id=destination.pk, destination_wallet_id=source.pk,
        amount=Decimal("900.00"), idempotency_key="fits-2", metadata={},
    ).log  # fmt: skip
    assert refused.status == "FAILED"
    settlement = Wallet.objects.get(kind="SETTLEMENT", currency=source.currency)

    with admin_page(SCREEN) as page:
        sign_in(page, f"{live_server.url}/admin/login/?next=/admin/wallets/wallet/", agent.username)
        expect(page.locator("#result_list")).to_be_visible()
        page.screenshot(path=ARTIFACTS / "10-wallet-list-1440.png", full_page=True)
        assert (wallet_layout := page.evaluate(LAYOUT_RULES)) == [], wallet_layout
        short_id = page.locator(f'#result_list a [title="{source.pk}"]')
        expect(short_id).to_have_text(f"{str(source.pk)[:8]}…")
        owners = page.locator("#changelist-filter details[data-filter-title='owner'] li").all_inner_texts()
        settlement_row = page.locator(f'#result_list tr:has([title="{settlement.pk}"])')
        expect(settlement_row.locator(".field-kind_shown")).to_contain_text("Settlement")

        page.locator("#changelist-filter a", has_text="Settlement wallets").click()
        expect(page.locator("#settlement-explained")).to_contain_text("negative")
        expect(page.locator("#result_list tbody tr")).to_have_count(1)
        page.screenshot(path=ARTIFACTS / "11-settlement-wallets-1440.png", full_page=True)

        page.goto(f"{live_server.url}/admin/transfers/transactionlog/")
        expect(page.locator("#result_list")).to_be_visible()
        page.screenshot(path=ARTIFACTS / "12-transaction-list-1440.png", full_page=True)
        assert (log_layout := page.evaluate(LAYOUT_RULES)) == [], log_layout
        failed_row = page.locator("#result_list tr", has_text=refused.reference)
        expect(failed_row.locator(".field-failure_reason")).to_contain_text(refused.error_code)
        expect(failed_row.locator(".field-failure_reason [title]")).to_have_attribute("title", refused.error_message)

    assert wallet_owner.get_username() in owners
    assert agent.get_username() not in owners and root.get_username() not in owners
