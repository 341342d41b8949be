"""Reconciliation for support staff: re-drive stuck PENDING transactions and
check that the books balance, from the transaction log pages.

Both go through reconciliation/services.py, the same code as the beat task and
`manage.py reconcile` / `verify_ledger`, so they are as safe to run beside live
traffic as those are.
"""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.urls import path

from reconciliation import chain
from reconciliation.services import ledger_verify, logs_reconcile, outcome_counts
from transfers.admin import TransactionLogAdmin
from transfers.models import TransactionLog, TransactionStatus

MAX_DISCREPANCIES_SHOWN = 500


class ReconcilingTransactionLogAdmin(TransactionLogAdmin):
    actions = [*TransactionLogAdmin.actions, "redrive_pending"]
    change_list_template = "admin/reconciliation/transactionlog/change_list.html"

    def has_reconcile_permission(self, request) -> bool:
        return request.user.has_perm("transfers.reconcile_transactionlog")

    @admin.action(description="Re-drive selected PENDING transactions", permissions=["reconcile"])
    def redrive_pending(self, request, queryset):
        # The service takes ids and re-reads each log under its row lock; the
        # changelist's joins are of no use to it.
        pending = queryset.select_related(None).filter(status=TransactionStatus.PENDING)
        outcomes = logs_reconcile(logs=pending)
        if not outcomes:
            self.message_user(
                request, "None of the selected transactions is PENDING: nothing re-driven.", messages.WARNING
            )
            return

        settled = {
            o.log_id: o for o in outcomes if o.outcome in (TransactionStatus.COMPLETED, TransactionStatus.FAILED)
        }
        for log in TransactionLog.objects.filter(pk__in=settled):
            outcome = settled[log.pk]
            detail = f": {outcome.detail}" if outcome.detail else ""
            self.log_change(request, log, f"Re-drove a PENDING transaction: {outcome.outcome}{detail}")

        counts = outcome_counts(outcomes)
        summary = ", ".join(f"{counts[name]} {name.lower()}" for name in ("COMPLETED", "FAILED", "SKIPPED"))
        self.message_user(request, f"Re-drove {len(outcomes)} PENDING transaction(s): {summary}.", messages.SUCCESS)
        for o in outcomes:
            if o.outcome == TransactionStatus.FAILED:
                self.message_user(request, f"{o.reference} failed: {o.detail}", messages.WARNING)
            elif o.outcome == "SKIPPED":
                self.message_user(request, f"{o.reference} skipped ({o.detail}): nothing was moved.", messages.INFO)

    def get_urls(self):
        view = self.admin_site.admin_view(self.verify_ledger_view)
        chain_view = self.admin_site.admin_view(self.verify_chain_view)
        return [
            path("verify-ledger/", view, name="transfers_transactionlog_verify_ledger"),
            path("verify-chain/", chain_view, name="transfers_transactionlog_verify_chain"),
            *super().get_urls(),
        ]

    def verify_chain_view(self, request):
        """`manage.py verify_ledger --chain [--checkpoint POS:HASH]` as a page:
        every link recomputed, read-only, for those who may reconcile. A
        malformed checkpoint is told on the page, and nothing is checked."""
        if not self.has_reconcile_permission(request):
            raise PermissionDenied
        text = request.GET.get("checkpoint", "").strip()
        report, error = None, ""
        try:
            checkpoint = chain.parse_checkpoint(text) if text else None
        except ValueError as exc:
            error = str(exc)
        else:
            report = chain.chain_verify(checkpoint=checkpoint)
        context = {
            **self.admin_site.each_context(request),
            "title": "Ledger chain verification",
            "subtitle": None,
            "opts": self.opts,
            "report": report,
            "broken_reason": chain.REASONS[report.broken.reason] if report and report.broken else "",
            "checkpoint_text": text,
            "checkpoint_error": error,
        }
        return TemplateResponse(request, "admin/reconciliation/verify_chain.html", context)

    def verify_ledger_view(self, request):
        """`manage.py verify_ledger` as a page: invariants 1-3 over the whole
        database, read-only (three aggregate queries over every log, so it is
        offered only to those who may reconcile, not on every page load)."""
        if not self.has_reconcile_permission(request):
            raise PermissionDenied
        discrepancies = ledger_verify()
        context = {
            **self.admin_site.each_context(request),
            "title": "Ledger verification",
            "subtitle": None,
            "opts": self.opts,
            "discrepancies": discrepancies,
            # A broken ledger can mean a row per wallet: the page stays readable.
            "shown": discrepancies[:MAX_DISCREPANCIES_SHOWN],
        }
        return TemplateResponse(request, "admin/reconciliation/verify_ledger.html", context)

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "has_reconcile_permission": self.has_reconcile_permission(request)}
        return super().changelist_view(request, extra_context)


admin.site.unregister(TransactionLog)
admin.site.register(TransactionLog, ReconcilingTransactionLogAdmin)
