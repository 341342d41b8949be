"""The transaction log admin and the wallet page's ledger side, through the
admin's own views (django.test.Client on the real PostgreSQL)."""

import json
import re
import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.admin.models import ADDITION, CHANGE, LogEntry
from django.contrib.auth.models import Group
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from transfers import services
from transfers.models import TransactionLog, TransactionStatus, TransactionType
from transfers.tests.factories import ApiUserFactory
from wallets.models import Wallet
from wallets.tests.factories import WalletFactory
from wallets.tests.test_admin import staff_client

# The Support and Finance groups of migration 0003, put back if a transactional test flushed them.
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("migrated_groups")]

CHANGELIST = reverse("admin:transfers_transactionlog_changelist")


@pytest.fixture
def support(db) -> Client:
    return staff_client("Support")


@pytest.fixture
def finance(db) -> Client:
    return staff_client("Finance")


def transfer(source, destination, amount="40.00", metadata=None, key=None) -> TransactionLog:
    return services.transfer_create(
        client=source.owner,
        source_wallet_id=source.pk,
        destination_wallet_id=destination.pk,
        amount=Decimal(amount),
        idempotency_key=key or f"key-{uuid.uuid4()}",
        metadata=metadata or {},
    ).log


def change_url(obj) -> str:
    return reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk])


def reverse_url(log) -> str:
    return reverse("admin:transfers_transactionlog_reverse", args=[log.pk])


@pytest.fixture
def approver(db) -> Client:
    return staff_client("Approver")


def approve_in_admin(approver: Client, log, follow=True):
    """Four eyes (corrections/admin.py): the second person approves the
    reversal request waiting on `log` from its approval page."""
    from corrections.models import Correction, CorrectionStatus

    correction = Correction.objects.get(transaction=log, status=CorrectionStatus.PENDING)
    return approver.post(
        reverse("admin:corrections_correction_approve", args=[correction.pk]),
        {"fingerprint": correction.fingerprint},
        follow=follow,
    )


def listed_references(response) -> set[str]:
    return {log.reference for log in response.context["cl"].result_list}


# --- the list, search and filters -----------------------------------------------------------


def test_log_list_shows_reference_type_status_amount_currency_linked_wallets_and_time(support, funded_wallet):
    source, destination = funded_wallet("100.00"), funded_wallet("0")
    log = transfer(source, destination, "40.25")

    response = support.get(CHANGELIST)

    assert response.status_code == 200
    page = response.content.decode()
    for column, value in [("type", "Transfer"), ("status", "Completed"), ("amount", "40.25"), ("currency", "NGN")]:
        assert f'<td class="field-{column}">{value}</td>' in page
    assert f">{log.reference}</a>" in page
    assert f'href="{change_url(source)}"' in page
    assert f'href="{change_url(destination)}"' in page
    assert "column-created_at" in page


def test_search_finds_a_log_by_reference_in_any_case(support, funded_wallet):
    log = transfer(funded_wallet("100.00"), funded_wallet("0"))

    assert listed_references(support.get(CHANGELIST, {"q": log.reference})) == {log.reference}
    assert listed_references(support.get(CHANGELIST, {"q": f" {log.reference.lower()} "})) == {log.reference}


def test_search_finds_a_log_by_idempotency_key_and_by_its_id(support, funded_wallet):
    log = transfer(funded_wallet("100.00"), funded_wallet("0"), key="order-7781")

    assert listed_references(support.get(CHANGELIST, {"q": "order-7781"})) == {log.reference}
    assert listed_references(support.get(CHANGELIST, {"q": str(log.pk)})) == {log.reference}


def test_search_by_wallet_id_finds_the_logs_on_either_side_of_it(support, funded_wallet):
    a, b, c = funded_wallet("100.00"), funded_wallet("100.00"), funded_wallet("0")
    a_to_c, b_to_a, b_to_c = transfer(a, c), transfer(b, a), transfer(b, c)

    found = listed_references(support.get(CHANGELIST, {"q": str(a.pk)}))

    funding = TransactionLog.objects.get(destination_wallet=a, type=TransactionType.DEPOSIT).reference
    assert found == {a_to_c.reference, b_to_a.reference, funding}
    assert b_to_c.reference not in found


def test_search_is_exact_so_a_fragment_finds_nothing(support, funded_wallet):
    log = transfer(funded_wallet("100.00"), funded_wallet("0"))

    assert listed_references(support.get(CHANGELIST, {"q": log.reference[:-2]})) == set()


def test_filters_by_status_type_currency_and_date(support, funded_wallet):
    ngn = transfer(funded_wallet("100.00"), funded_wallet("0"))
    usd = transfer(funded_wallet("100.00", currency="USD"), funded_wallet("0", currency="USD"))
    failed = transfer(funded_wallet("1.00"), funded_wallet("0"), amount="5.00")
    assert failed.status == TransactionStatus.FAILED

    assert listed_references(support.get(CHANGELIST, {"status__exact": "FAILED"})) == {failed.reference}
    assert listed_references(support.get(CHANGELIST, {"type__exact": "TRANSFER", "currency": "USD"})) == {usd.reference}
    # The date filter's own "Today" link: midnight to midnight, aware.
    midnight = ngn.created_at.replace(hour=0, minute=0, second=0, microsecond=0)
    today = {"created_at__gte": str(midnight), "created_at__lt": str(midnight + timedelta(days=1))}
    assert listed_references(support.get(CHANGELIST, {"type__exact": "TRANSFER", **today})) == {
        ngn.reference,
        usd.reference,
        failed.reference,
    }
    tomorrow = {"created_at__gte": today["created_at__lt"]}
    assert listed_references(support.get(CHANGELIST, tomorrow)) == set()


# --- the page of a log ----------------------------------------------------------------------


def test_log_page_shows_metadata_as_indented_json_and_the_error_message(support, funded_wallet):
    failed = transfer(funded_wallet("1.00"), funded_wallet("0"), amount="5.00", metadata={"note": "rent <May>"})

    response = support.get(change_url(failed))

    assert response.status_code == 200
    page = response.content.decode()
    pretty = json.dumps({"note": "rent <May>"}, indent=2).replace("<", "&lt;").replace(">", "&gt;")
    assert pretty.replace('"', "&quot;") in page
    assert failed.error_code in page
    assert failed.error_message in page


def test_log_page_links_the_original_and_its_reversal_to_each_other(finance, funded_wallet):
    original = transfer(funded_wallet("100.00"), funded_wallet("0"))
    compensation = services.transaction_reverse(log_id=original.pk, reason="wrong user", reversed_by=finance.user)

    assert f'href="{change_url(compensation)}"' in finance.get(change_url(original)).content.decode()
    assert f'href="{change_url(original)}"' in finance.get(change_url(compensation)).content.decode()


# --- read-only, for everyone ---------------------------------------------------------------------


def test_logs_cannot_be_added_changed_or_deleted_even_by_a_superuser(funded_wallet):
    admin_client = staff_client(is_superuser=True)
    log = transfer(funded_wallet("100.00"), funded_wallet("0"), "40.00")

    assert admin_client.get(reverse("admin:transfers_transactionlog_add")).status_code == 403
    assert admin_client.post(change_url(log), {"amount": "1.00", "status": "FAILED"}).status_code == 403
    assert (
        admin_client.post(reverse("admin:transfers_transactionlog_delete", args=[log.pk]), {"post": "yes"}).status_code
        == 403
    )
    bulk_delete = admin_client.post(
        CHANGELIST, {"action": "delete_selected", "_selected_action": [log.pk], "post": "yes"}, follow=True
    )
    assert "No action selected." in bulk_delete.content.decode()  # there is no delete action to choose

    log.refresh_from_db()
    assert (log.amount, log.status) == (Decimal("40.00"), TransactionStatus.COMPLETED)
    page = admin_client.get(change_url(log)).content.decode()
    assert 'name="_save"' not in page
    assert "delete_selected" not in admin_client.get(CHANGELIST).content.decode()


# --- reversal ---------------------------------------------------------------------------------


def test_finance_reverses_a_completed_transfer_after_a_confirmation_page(finance, approver, funded_wallet):
    source, destination = funded_wallet("100.00"), funded_wallet("0")
    original = transfer(source, destination, "40.00")

    chosen = finance.post(CHANGELIST, {"action": "reverse_selected", "_selected_action": [original.pk], "index": 0})
    assert chosen.status_code == 302
    assert chosen["Location"] == reverse_url(original)
    confirmation = finance.get(reverse_url(original))
    assert confirmation.status_code == 200
    assert f"Request the reversal of {original.reference}" in confirmation.content.decode()
    assert TransactionLog.objects.get(pk=original.pk).status == TransactionStatus.COMPLETED  # nothing yet

    finance.post(reverse_url(original), {"reason": "sent to the wrong user"}, follow=True)
    assert TransactionLog.objects.get(pk=original.pk).status == TransactionStatus.COMPLETED  # waits for approval
    done = approve_in_admin(approver, original)

    original.refresh_from_db()
    compensation = TransactionLog.objects.get(reversal_of=original)
    assert original.status == TransactionStatus.REVERSED
    assert compensation.metadata["reason"] == "sent to the wrong user"
    assert compensation.client == approver.user  # who applied it; the request names who asked
    assert Wallet.objects.get(pk=source.pk).balance == Decimal("100.00")
    assert Wallet.objects.get(pk=destination.pk).balance == Decimal("0.00")
    assert f"{original.reference} reversed: {compensation.reference}" in done.content.decode()
    history = LogEntry.objects.get(object_id=str(original.pk), action_flag=CHANGE)
    assert history.user == finance.user
    assert "sent to the wrong user" in history.get_change_message()
    assert LogEntry.objects.filter(object_id=str(compensation.pk), action_flag=ADDITION, user=approver.user).exists()


def test_a_reversal_without_a_reason_is_not_done(finance, funded_wallet):
    original = transfer(funded_wallet("100.00"), funded_wallet("0"))

    response = finance.post(reverse_url(original), {"reason": "   "})

    assert response.status_code == 200
    assert response.context["form"].errors["reason"]
    original.refresh_from_db()
    assert original.status == TransactionStatus.COMPLETED
    assert not TransactionLog.objects.filter(reversal_of=original).exists()


def test_a_second_reversal_is_refused_with_a_clear_message(finance, approver, funded_wallet):
    original = transfer(funded_wallet("100.00"), funded_wallet("0"))
    finance.post(reverse_url(original), {"reason": "first"})
    approve_in_admin(approver, original)

    again = finance.post(reverse_url(original), {"reason": "second"}, follow=True)

    assert f"{original.reference} was not reversed" in again.content.decode()
    assert "only COMPLETED can be reversed" in again.content.decode()
    assert TransactionLog.objects.filter(reversal_of=original).count() == 1


def test_the_confirmation_page_of_a_log_that_is_not_completed_sends_back_with_a_message(finance, funded_wallet):
    failed = transfer(funded_wallet("1.00"), funded_wallet("0"), amount="5.00")

    response = finance.get(reverse_url(failed), follow=True)

    assert response.redirect_chain[-1][0] == change_url(failed)
    assert f"{failed.reference} is FAILED: only a COMPLETED transaction can be reversed" in response.content.decode()


def test_a_reversal_the_receiver_cannot_cover_is_refused_and_changes_nothing(finance, approver, funded_wallet):
    source, destination, third = funded_wallet("100.00"), funded_wallet("0"), funded_wallet("0")
    original = transfer(source, destination, "40.00")
    transfer(destination, third, "30.00")

    finance.post(reverse_url(original), {"reason": "wrong user"}, follow=True)
    response = approve_in_admin(approver, original)

    assert f"{original.reference} was not reversed" in response.content.decode()
    assert TransactionLog.objects.get(pk=original.pk).status == TransactionStatus.COMPLETED
    assert Wallet.objects.get(pk=destination.pk).balance == Decimal("10.00")


def test_the_reverse_action_takes_exactly_one_transaction(finance, funded_wallet):
    source = funded_wallet("100.00")
    first, second = transfer(source, funded_wallet("0")), transfer(source, funded_wallet("0"))

    response = finance.post(
        CHANGELIST, {"action": "reverse_selected", "_selected_action": [first.pk, second.pk], "index": 0}, follow=True
    )

    assert "Select exactly one transaction to reverse." in response.content.decode()
    assert TransactionLog.objects.filter(status=TransactionStatus.REVERSED).count() == 0


def test_support_may_not_reverse(support, funded_wallet):
    original = transfer(funded_wallet("100.00"), funded_wallet("0"))

    assert "reverse_selected" not in support.get(CHANGELIST).content.decode()
    assert "Reverse…" not in support.get(change_url(original)).content.decode()
    assert support.get(reverse_url(original)).status_code == 403
    assert support.post(reverse_url(original), {"reason": "try"}).status_code == 403
    support.post(CHANGELIST, {"action": "reverse_selected", "_selected_action": [original.pk], "index": 0})

    assert TransactionLog.objects.get(pk=original.pk).status == TransactionStatus.COMPLETED


def test_finance_sees_the_reverse_button_only_on_a_completed_log(finance, funded_wallet):
    completed = transfer(funded_wallet("100.00"), funded_wallet("0"))
    failed = transfer(funded_wallet("1.00"), funded_wallet("0"), amount="5.00")

    assert f'href="{reverse_url(completed)}"' in finance.get(change_url(completed)).content.decode()
    assert f'href="{reverse_url(failed)}"' not in finance.get(change_url(failed)).content.decode()


# --- the wallet page's ledger side ---------------------------------------------------------


def test_wallet_page_shows_its_recent_transactions_newest_first_and_a_link_to_all(support, funded_wallet):
    wallet, other = funded_wallet("100.00"), funded_wallet("100.00")
    sent = [transfer(wallet, other, "1.00") for _ in range(12)]
    received = [transfer(other, wallet, "2.00") for _ in range(12)]

    page = support.get(change_url(wallet)).content.decode()

    newest_first = [log.reference for log in (*sent, *received)][::-1][:20]
    positions = [page.index(reference) for reference in newest_first]
    assert positions == sorted(positions)
    assert sent[0].reference not in page  # the 21st newest and older are behind the link
    assert f"{CHANGELIST}?q={wallet.pk}" in page


def recent_rows(page: str) -> dict[str, str]:
    """The wallet page's recent transactions: reference -> the row's HTML."""
    rows = re.findall(r'<tr class="(?:moved|not-moved)">(.*?)</tr>', page, re.S)
    assert rows, "no recent transactions on the page"
    return {re.search(r"TXN-[A-Z0-9]+", row).group(): row for row in rows}


def test_wallet_page_marks_failed_and_pending_rows_as_not_moved_and_leaves_them_out_of_the_net(support, funded_wallet):
    wallet, other = funded_wallet("100.00"), funded_wallet("0")
    moved = transfer(wallet, other, "30.00")
    failed = transfer(wallet, other, "99999.00")
    pending = TransactionLog.objects.create(
        client=wallet.owner,
        idempotency_key="stuck-1",
        movement_fingerprint="-",
        source_wallet=wallet,
        destination_wallet=other,
        amount=Decimal("5.00"),
        currency="NGN",
        type=TransactionType.TRANSFER,
        reference="TXN-20261130PENDNGPEND",
    )
    assert (failed.status, pending.status) == (TransactionStatus.FAILED, TransactionStatus.PENDING)

    page = support.get(change_url(wallet)).content.decode()

    rows = recent_rows(page)
    assert "-30.00 NGN" in rows[moved.reference]
    for log in (failed, pending):
        assert f"<s>{log.amount} NGN</s>" in rows[log.reference]
        assert f"not moved ({log.status})" in rows[log.reference]
        assert f"-{log.amount}" not in rows[log.reference]
    # The deposit's +100.00 and the transfer's -30.00; not the 99999.00 nor the 5.00.
    net = re.search(r'<tr class="net">.*?</tr>', page, re.S).group()
    assert "+70.00 NGN" in net
    assert "-99999.00" not in page


def test_wallet_page_shows_the_ledger_balance_beside_the_stored_one(support, funded_wallet):
    wallet, other = funded_wallet("100.00"), funded_wallet("0")
    transfer(wallet, other, "30.50")

    page = support.get(change_url(wallet)).content.decode()

    assert "69.50 (agrees with the stored balance 69.50)" in page


def test_wallet_page_flags_a_stored_balance_the_ledger_does_not_explain(support, funded_wallet):
    wallet = funded_wallet("100.00")
    Wallet.objects.filter(pk=wallet.pk).update(balance=Decimal("90.00"))  # what a bug outside the service would do

    page = support.get(change_url(wallet)).content.decode()

    assert "100.00 but the stored balance is 90.00 (off by -10.00)" in page


# --- groups --------------------------------------------------------------------------------


def test_the_migrations_create_support_finance_and_approver_with_exactly_their_permissions():
    def codenames(name):
        return set(Group.objects.get(name=name).permissions.values_list("content_type__app_label", "codename"))

    support_permissions = {
        ("wallets", "view_wallet"),
        ("wallets", "freeze_wallet"),
        ("transfers", "view_transactionlog"),
        ("transfers", "reconcile_transactionlog"),
        # Events and webhooks (transfers/migrations/0009_event_admin_permissions.py).
        ("events", "view_event"),
        ("events", "resend_event"),
        ("events", "view_webhookendpoint"),
        ("events", "view_webhookdelivery"),
        # Correction requests and their audit (corrections/migrations/0002_approver_group.py).
        ("corrections", "view_correction"),
        ("corrections", "view_correctionaudit"),
        # Tier limits (transfers/migrations/0014_daily_totals.py): restrictions, and the tiers to read.
        ("wallets", "restrict_wallet"),
        ("wallets", "view_tierprofile"),
        ("wallets", "view_tierprofilechange"),
        ("wallets", "view_walletlimitchange"),
    }
    assert codenames("Support") == support_permissions
    assert codenames("Finance") == support_permissions | {
        ("transfers", "reverse_transactionlog"),
        # Unclaimed wallets to their clients (transfers/migrations/0011_give_wallet_permission.py).
        ("wallets", "give_wallet"),
        # Manual adjustments, approved by a second person.
        ("corrections", "request_adjustment"),
        # Voiding an open hold (transfers/migrations/0018_holds.py).
        ("transfers", "void_hold"),
        # Wallets' tiers, the tiers' caps and clients' default tiers.
        ("wallets", "set_wallet_tier"),
        ("wallets", "change_tierprofile"),
        ("wallets", "view_clienttierdefault"),
        ("wallets", "add_clienttierdefault"),
        ("wallets", "change_clienttierdefault"),
        ("wallets", "delete_clienttierdefault"),
    }
    # Approvers see what they approve, and nothing of money besides.
    assert codenames("Approver") == {
        ("corrections", "view_correction"),
        ("corrections", "view_correctionaudit"),
        ("corrections", "approve_correction"),
    }


def test_a_staff_user_in_no_group_sees_nothing_of_money(funded_wallet):
    nobody = staff_client()
    wallet = funded_wallet("100.00")
    log = TransactionLog.objects.get(destination_wallet=wallet)

    index = nobody.get(reverse("admin:index"))

    assert index.status_code == 200
    assert index.context["app_list"] == []
    for url in (
        CHANGELIST,
        change_url(log),
        reverse("admin:wallets_wallet_changelist"),
        change_url(wallet),
        reverse("admin:wallets_wallet_history", args=[wallet.pk]),
    ):
        assert nobody.get(url).status_code == 403, url
    assert str(wallet.balance) not in nobody.get(reverse("admin:index")).content.decode()


def test_support_sees_wallets_transaction_logs_batches_holds_and_webhooks_in_the_admin_index(support):
    index = support.get(reverse("admin:index"))

    models = {(app["app_label"], model["object_name"]) for app in index.context["app_list"] for model in app["models"]}
    assert models == {
        ("wallets", "Wallet"), ("transfers", "TransactionLog"), ("transfers", "TransferBatch"), ("transfers", "Hold"),
        ("events", "Event"), ("events", "WebhookEndpoint"), ("events", "WebhookDelivery"),
        ("corrections", "Correction"), ("corrections", "CorrectionAudit"),
        ("wallets", "TierProfile"), ("wallets", "WalletLimitChange"),
    }  # fmt: skip


# --- fast with many rows ----------------------------------------------------------------------


def many_logs(count: int) -> None:
    """PENDING logs (no money moved, so the books still balance) between
    distinct wallets, so that a query per row or per wallet would show."""
    client = ApiUserFactory()
    wallets = WalletFactory.create_batch(2 * count)
    TransactionLog.objects.bulk_create(
        TransactionLog(
            client=client,
            idempotency_key=f"bulk-{i}",
            movement_fingerprint="-",
            source_wallet=wallets[2 * i],
            destination_wallet=wallets[2 * i + 1],
            amount=Decimal("1.00"),
            currency="NGN",
            type=TransactionType.TRANSFER,
        )
        for i in range(count)
    )


def changelist_queries(client: Client, url: str, params=None) -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url, params or {})
    assert response.status_code == 200
    return [query["sql"] for query in captured.captured_queries]


def unbounded_counts(queries: list[str], table: str) -> list[str]:
    """COUNT queries over the table that neither filter nor stop early."""
    return [
        sql
        for sql in queries
        if "COUNT(" in sql.upper() and f'"{table}"' in sql and "WHERE" not in sql.upper() and "LIMIT" not in sql.upper()
    ]


@pytest.mark.parametrize(
    "params", [{}, {"status__exact": "PENDING"}, {"q": "bulk-7"}, {"_facets": "True", "type__exact": "TRANSFER"}]
)
def test_the_log_list_costs_the_same_queries_for_5_or_200_rows_and_never_counts_the_whole_table(
    support, params, django_assert_max_num_queries
):
    many_logs(5)
    few = changelist_queries(support, CHANGELIST, params)
    many_logs(195)

    with django_assert_max_num_queries(len(few)):
        many = changelist_queries(support, CHANGELIST, params)

    assert len(many) == len(few) <= 8
    assert unbounded_counts(few + many, "transaction_logs") == []
