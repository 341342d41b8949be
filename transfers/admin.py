"""The support staff's ledger pages: every transaction log, read-only. A
reversal is a correction that a second person approves: corrections/admin.py
re-registers this admin with the request page.

Also the wallet page's ledger side: wallets/admin.py cannot know about
transfers, so the Wallet admin is re-registered here with the wallet's recent
transactions and its ledger-derived balance beside the stored one.
"""

import json
from decimal import Decimal

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.utils import quote
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from transfers import statements
from transfers.exceptions import HoldNotOpen
from transfers.holds import hold_void_by_operator
from transfers.models import MONEY_MOVED_STATUSES, Hold, HoldStatus, TransactionLog, TransferBatch, business_today
from transfers.selectors import RECENT_TRANSACTIONS, wallet_balance_and_ledger, wallet_recent_transactions
from transfers.serializers import StatementQuerySerializer
from transfers.services import batch_outcomes
from transfers.statement_documents import statement_csv, statement_data, statement_pdf
from wallet_project.admin_lists import (
    CurrencyListFilter,
    EstimatedCountPaginator,
    ReadOnlyAdminMixin,
    parse_uuid,
    short_id,
)
from wallet_project.db.routers import LagTolerantChangeListMixin
from wallets.admin import WalletAdmin
from wallets.models import Wallet

# --- links ---------------------------------------------------------------------------------


def admin_link(obj, text: str) -> str:
    url = reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[quote(obj.pk)])
    return format_html('<a href="{}">{}</a>', url, text)


def wallet_link(wallet: Wallet) -> str:
    """A short label (the list has two wallet columns), the whole id on hover."""
    label = f"{wallet.currency} {wallet.kind.lower()}" if wallet.is_system else short_id(wallet.pk)
    url = reverse("admin:wallets_wallet_change", args=[quote(wallet.pk)])
    return format_html('<a href="{}" title="{}">{}</a>', url, wallet, label)


# --- transaction logs ------------------------------------------------------------------


@admin.register(TransactionLog)
class TransactionLogAdmin(LagTolerantChangeListMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    # Read-only: the ledger is history. A correction is a new log (a reversal).
    # Fits 1440 px (docs/operations.md, "The admin's lists"): short wallet
    # labels, and a FAILED row's reason as its error code, the message on hover.
    list_display = (
        *("reference", "type", "status", "amount", "currency", "source", "destination", "failure_reason"),
        "created_at",
    )
    list_filter = ("status", "type", CurrencyListFilter, ("created_at", admin.DateFieldListFilter))
    # Searched by exact value in get_search_results; listed so the admin shows its box.
    search_fields = ("=reference", "=idempotency_key")
    search_help_text = "A reference (TXN-...), an idempotency key, a transaction id or a wallet id."
    # Both wallets in the page's one query: no query per row.
    list_select_related = ("source_wallet", "destination_wallet")
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    # Filter counts ("Show counts") are a COUNT per choice over the whole table.
    show_facets = admin.ShowFacets.NEVER
    fieldsets = (
        (None, {"fields": ("reference", "type", "status", "amount", "currency")}),
        ("Wallets", {"fields": ("source", "destination")}),
        ("Request", {"fields": ("client_name", "idempotency_key", "pretty_metadata")}),
        ("Failure", {"fields": ("error_code", "readable_error_message")}),
        ("Reversal", {"fields": ("reversal_of_link", "reversed_by_link")}),
        ("Dates", {"fields": ("created_at", "completed_at", "updated_at")}),
    )
    readonly_fields = (
        *("reference", "type", "status", "amount", "currency", "source", "destination"),
        *("client_name", "idempotency_key", "pretty_metadata", "error_code", "readable_error_message"),
        *("reversal_of_link", "reversed_by_link", "created_at", "completed_at", "updated_at"),
    )
    # Reversing is a correction: corrections/admin.py adds the action and the
    # request page to this admin.
    actions = []

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        # Exact matches only, each on an indexed column, so that PostgreSQL
        # can OR index scans instead of reading a million rows. A key is
        # unique per client and has no index of its own (docs/design.md,
        # "The indexes of transaction_logs"): it is looked up under each
        # client, one probe per client in the (client, key) index.
        clients = list(queryset.model.client.field.related_model.objects.values_list("pk", flat=True))
        match = Q(reference=term.upper()) | Q(client_id__in=clients, idempotency_key=term)
        value = parse_uuid(term)
        if value is not None:
            match |= Q(pk=value) | Q(source_wallet_id=value) | Q(destination_wallet_id=value)
        return queryset.filter(match), False

    # --- display --------------------------------------------------------------------

    @admin.display(description="source", ordering="source_wallet_id")
    def source(self, log):
        return wallet_link(log.source_wallet)

    @admin.display(description="destination", ordering="destination_wallet_id")
    def destination(self, log):
        return wallet_link(log.destination_wallet)

    @admin.display(description="failure reason", ordering="error_code")
    def failure_reason(self, log):
        if not log.error_code:
            return "-"
        return format_html('<span title="{}">{}</span>', log.error_message, log.error_code)

    @admin.display(description="API client")
    def client_name(self, log):
        return log.client.get_username()

    @admin.display(description="metadata")
    def pretty_metadata(self, log):
        text = json.dumps(log.metadata, indent=2, sort_keys=True, ensure_ascii=False)
        return format_html('<pre style="margin: 0; white-space: pre-wrap">{}</pre>', text)

    @admin.display(description="error message")
    def readable_error_message(self, log):
        if not log.error_message:
            return "-"
        return format_html('<pre style="margin: 0; white-space: pre-wrap">{}</pre>', log.error_message)

    @admin.display(description="reverses")
    def reversal_of_link(self, log):
        return admin_link(log.reversal_of, log.reversal_of.reference) if log.reversal_of_id else "-"

    @admin.display(description="reversed by")
    def reversed_by_link(self, log):
        compensation = TransactionLog.objects.filter(reversal_of=log).only("id", "reference").first()
        return admin_link(compensation, compensation.reference) if compensation else "-"


# --- the wallet page, with its ledger ------------------------------------------------------


class WalletLedgerAdmin(WalletAdmin):
    readonly_fields = (
        *WalletAdmin.readonly_fields, "ledger_balance", "recent_transactions", "statement_form", "open_holds",
    )  # fmt: skip
    fieldsets = (
        *WalletAdmin.fieldsets,
        ("Ledger", {"fields": ("ledger_balance", "recent_transactions", "statement_form")}),
        ("Holds", {"fields": ("open_holds",)}),
    )
    change_form_template = "admin/transfers/wallet/change_form.html"

    def get_urls(self):
        app, model = self.opts.app_label, self.opts.model_name
        statement = self.admin_site.admin_view(self.statement_view)
        return [
            path("<path:object_id>/statement/", statement, name=f"{app}_{model}_statement"),
            *super().get_urls(),
        ]

    def statement_view(self, request, object_id):
        """GET ?from=&to=&format=csv|pdf: the wallet's statement, as a client
        gets it from GET /api/wallets/{id}/statement (docs/api.md, "a
        statement"), for whoever may view the wallet here; a bad range is
        told on the wallet's page."""
        wallet = self.get_object(request, object_id)
        if wallet is None or not self.has_view_permission(request, wallet):
            raise PermissionDenied
        page = reverse("admin:wallets_wallet_change", args=[quote(wallet.pk)])
        query = StatementQuerySerializer(data=request.GET)
        if not query.is_valid():
            problems = "; ".join(f"{name}: {' '.join(map(str, errors))}" for name, errors in query.errors.items())
            messages.error(request, f"No statement: {problems}")
            return HttpResponseRedirect(page)
        wanted = query.validated_data
        try:
            found = statements.statement(wallet=wallet, first_day=wanted["from"], last_day=wanted["to"])
        except statements.StatementTooLong as too_long:
            messages.error(request, f"No statement: {too_long}")
            return HttpResponseRedirect(page)
        data = statement_data(found)
        document = wanted["format"] if wanted["format"] in ("csv", "pdf") else "pdf"
        if document == "csv":
            response = HttpResponse(statement_csv(data), content_type="text/csv; charset=utf-8")
        else:
            response = HttpResponse(statement_pdf(data), content_type="application/pdf")
        name = f"statement-{wallet.pk}-{wanted['from']:%Y%m%d}-{wanted['to']:%Y%m%d}.{document}"
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        return response

    @admin.display(description="statement")
    def statement_form(self, wallet):
        """A period and a format, sent by the form "statement-request" that the
        page's template puts outside the change form (statement_view)."""
        today = business_today()
        return format_html(
            'From <input type="date" name="from" form="statement-request" value="{}" id="statement-from"> '
            'to <input type="date" name="to" form="statement-request" value="{}" id="statement-to"> '
            '<select name="format" form="statement-request" id="statement-format">'
            '<option value="pdf">PDF</option><option value="csv">CSV</option></select> '
            '<button type="submit" form="statement-request" id="statement-get">Get the statement</button>'
            "<p>Whole days in {}, both included, at most {} of them: what the client gets from "
            "GET /api/wallets/{{id}}/statement.</p>",
            today.replace(day=1),
            today,
            settings.BUSINESS_TIME_ZONE,
            settings.STATEMENT_MAX_DAYS,
        )

    @admin.display(description="ledger-derived balance")
    def ledger_balance(self, wallet):
        balance, ledger = wallet_balance_and_ledger(wallet_id=wallet.pk)
        if balance == ledger:
            return format_html("{} (agrees with the stored balance {})", ledger, balance)
        return format_html(
            '<strong style="color: var(--error-fg)">{} but the stored balance is {} (off by {}).</strong> '
            "Run the ledger verification and tell engineering.",
            ledger,
            balance,
            balance - ledger,
        )

    @admin.display(description="open holds")
    def open_holds(self, wallet):
        """What the wallet's OPEN holds reserve (held), soonest expiry first,
        with available = balance - held (docs/api.md, "Holds")."""
        holds = list(
            Hold.objects.filter(source_wallet=wallet, status=HoldStatus.OPEN).order_by("expires_at")[
                :RECENT_TRANSACTIONS
            ]
        )
        all_url = reverse("admin:transfers_hold_changelist") + f"?q={wallet.pk}"
        summary = format_html(
            "held {} {}, available {} {}. ", wallet.held, wallet.currency, wallet.available, wallet.currency
        )
        if not holds:
            return format_html('{}<a href="{}">All holds of this wallet</a>', summary, all_url)
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{} {}</td><td>{}</td></tr>",
            ((admin_link(hold, short_id(hold.pk)), hold.amount, hold.currency, hold.expires_at) for hold in holds),
        )
        return format_html(
            "{}<table><thead><tr><th>hold</th><th>amount</th><th>expires</th></tr></thead><tbody>{}</tbody></table>"
            '<p><a href="{}">All holds of this wallet</a></p>',
            summary,
            rows,
            all_url,
        )

    @admin.display(description=f"last {RECENT_TRANSACTIONS} transactions")
    def recent_transactions(self, wallet):
        """The newest logs with signed amounts. Only a log that moved money
        (MONEY_MOVED_STATUSES) gets a sign and counts in the net below: a
        FAILED or PENDING one moved nothing, and a support person must not
        read its amount as a debit or credit."""
        logs = wallet_recent_transactions(wallet_id=wallet.pk)
        all_url = reverse("admin:transfers_transactionlog_changelist") + f"?q={wallet.pk}"
        if not logs:
            return "None yet."
        net = Decimal("0")
        rows = []
        for log in logs:
            outgoing = log.source_wallet_id == wallet.pk
            if log.status in MONEY_MOVED_STATUSES:
                net += -log.amount if outgoing else log.amount
                amount = format_html("{}{} {}", "-" if outgoing else "+", log.amount, log.currency)
                row_class = "moved"
            else:
                amount = format_html(
                    '<s>{} {}</s> <strong style="color: var(--error-fg)">not moved ({})</strong>',
                    log.amount,
                    log.currency,
                    log.status,
                )
                row_class = "not-moved"
            rows.append(
                (
                    row_class,
                    admin_link(log, log.reference),
                    log.type,
                    log.status,
                    amount,
                    log.created_at.strftime("%Y-%m-%d %H:%M:%S %Z"),
                )
            )
        body = format_html_join("", '<tr class="{}"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>', rows)
        return format_html(
            "<table><thead><tr><th>reference</th><th>type</th><th>status</th><th>amount</th><th>created</th></tr>"
            "</thead><tbody>{}</tbody>"
            '<tfoot><tr class="net"><td colspan="3">net of the rows that moved money</td><td>{}{} {}</td><td></td>'
            "</tr></tfoot></table>"
            "<p>FAILED and PENDING rows moved nothing and count in no total.</p>"
            '<p><a href="{}">All transactions of this wallet</a></p>',
            body,
            "+" if net >= 0 else "",
            net,
            wallet.currency,
            all_url,
        )


admin.site.unregister(Wallet)
admin.site.register(Wallet, WalletLedgerAdmin)


# --- batches of payouts ------------------------------------------------------------


@admin.register(TransferBatch)
class TransferBatchAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """A batch with its totals and every payout's outcome, read-only: a batch
    is settled by the service (or reconciliation), never by hand."""

    list_display = ("id", "client", "source", "atomic", "status", "payout_count", "completed_count", "total_amount")
    list_filter = ("status", "atomic", ("created_at", admin.DateFieldListFilter))
    list_select_related = ("client", "source_wallet")
    search_fields = ("=idempotency_key",)
    search_help_text = "A batch id or the batch's idempotency key."
    show_facets = admin.ShowFacets.NEVER
    fieldsets = (
        (None, {"fields": ("id", "status", "atomic", "source", "client", "idempotency_key")}),
        ("Totals", {"fields": ("payout_count", "total_amount", "completed_count", "completed_amount", "failed_count")}),
        ("Failure", {"fields": ("error_code", "error_message", "failed_index")}),
        ("Payouts", {"fields": ("payout_table",)}),
        ("Dates", {"fields": ("created_at", "finished_at")}),
    )
    readonly_fields = (
        *("id", "status", "atomic", "source", "client", "idempotency_key", "payout_count", "total_amount"),
        *("completed_count", "completed_amount", "failed_count", "error_code", "error_message", "failed_index"),
        *("payout_table", "created_at", "finished_at"),
    )

    # Whoever may read the transaction logs may read the batches they belong
    # to (Support, Finance): no group needs a permission of its own.
    def has_view_permission(self, request, obj=None):
        return request.user.has_perm("transfers.view_transactionlog") or super().has_view_permission(request, obj)

    def has_module_permission(self, request):
        return self.has_view_permission(request) or super().has_module_permission(request)

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        match = Q(idempotency_key=term)
        value = parse_uuid(term)
        if value is not None:
            match |= Q(pk=value)
        return queryset.filter(match), False

    @admin.display(description="source", ordering="source_wallet_id")
    def source(self, batch):
        return wallet_link(batch.source_wallet)

    @admin.display(description="payouts, in the order given")
    def payout_table(self, batch):
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    p.index,
                    admin_link(TransactionLog(pk=p.transaction_id), p.reference) if p.transaction_id else "-",
                    p.idempotency_key,
                    str(p.destination_wallet_id),
                    f"{p.amount:.2f}",
                    p.status,
                    p.error_code or "",
                )
                for p in batch_outcomes(batch)
            ),
        )
        header = format_html_join(
            "",
            "<th>{}</th>",
            ((name,) for name in ("#", "reference", "key", "destination", "amount", "status", "error")),
        )
        return format_html("<table><thead><tr>{}</tr></thead><tbody>{}</tbody></table>", header, rows)


# --- holds ---------------------------------------------------------------------------


class VoidHoldForm(forms.Form):
    reason = forms.CharField(
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="Why: kept on the hold with your name. The client sees the hold VOIDED (and a hold.voided event).",
    )


@admin.register(Hold)
class HoldAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Every hold, read-only; Finance (transfers.void_hold) voids an OPEN
    one with a reason (transfers.holds.hold_void_by_operator: the engine
    releases it, as a client's void would)."""

    list_display = ("id", "status", "amount", "currency", "source", "destination", "expires_at", "created_at")
    list_filter = ("status", CurrencyListFilter, ("created_at", admin.DateFieldListFilter))
    list_select_related = ("source_wallet", "destination_wallet")
    search_fields = ("=idempotency_key",)
    search_help_text = "A hold id, a wallet id, or the hold's idempotency key."
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    actions = ["void_holds"]
    fields = (
        *("id", "status", "amount", "currency", "source", "destination", "expires_at", "captured_amount"),
        *("transaction", "client", "idempotency_key", "metadata", "error_code", "error_message", "end_note"),
        *("created_at", "ended_at"),
    )
    readonly_fields = fields

    # Whoever may read the transaction logs may read the holds (Support, Finance).
    def has_view_permission(self, request, obj=None):
        return request.user.has_perm("transfers.view_transactionlog") or super().has_view_permission(request, obj)

    def has_module_permission(self, request):
        return self.has_view_permission(request) or super().has_module_permission(request)

    def has_void_permission(self, request) -> bool:
        return request.user.has_perm("transfers.void_hold")

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        match = Q(idempotency_key=term)
        value = parse_uuid(term)
        if value is not None:
            match |= Q(pk=value) | Q(source_wallet_id=value) | Q(destination_wallet_id=value)
        return queryset.filter(match), False

    @admin.display(description="source", ordering="source_wallet_id")
    def source(self, hold):
        return wallet_link(hold.source_wallet)

    @admin.display(description="destination", ordering="destination_wallet_id")
    def destination(self, hold):
        return wallet_link(hold.destination_wallet)

    @admin.action(description="Void selected holds…", permissions=["void"])
    def void_holds(self, request, queryset):
        """The page asking for the reason, until it comes back with "apply";
        then each OPEN hold is voided, and the others are named."""
        form = VoidHoldForm(request.POST if "apply" in request.POST else None)
        holds = list(queryset)
        if not form.is_valid():
            context = {**self.admin_site.each_context(request), "opts": self.opts, "holds": holds, "form": form}
            return TemplateResponse(request, "admin/transfers/hold/void.html", context)
        voided, refused = 0, []
        for hold in holds:
            try:
                hold_void_by_operator(hold_id=hold.pk, reason=form.cleaned_data["reason"], voided_by=request.user)
                voided += 1
            except HoldNotOpen:
                refused.append(str(hold.pk))
        if voided:
            self.message_user(request, f"Voided {voided} hold(s).", messages.SUCCESS)
        if refused:
            self.message_user(request, f"Not open, left as they are: {', '.join(refused)}", messages.WARNING)
        return None
