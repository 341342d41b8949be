"""Four eyes in the admin (docs/design.md, "Corrections: four eyes";
docs/operations.md, "Corrections").

- The transaction page's "Request a reversal…" and the wallet page's
  "Adjust balance…" and "Request unfreeze…" make a request (or, below the
  single-approval threshold, apply it at once); each page lists the
  requests about it and their audit.
- Correction requests: the approvers' list and the approval page, which
  shows what was asked, frozen, with its fingerprint; Approve and Reject are
  POSTs that corrections.services decides, whatever was posted.
- Correction audit: every step, read-only, exported as CSV.

The transaction and wallet pages are the admins registered before this app
(transfers', reconciliation's), extended and registered again: this app
sits beside reconciliation and imports neither it nor anything above.
"""

import csv
import json
from decimal import Decimal

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseNotAllowed, HttpResponseRedirect, StreamingHttpResponse
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from corrections import selectors, services
from corrections.exceptions import CorrectionRefused
from corrections.models import Correction, CorrectionAudit, CorrectionKind, CorrectionStatus
from transfers.models import TransactionLog, TransactionStatus
from transfers.services import AdjustmentDirection
from wallet_project.admin_lists import ReadOnlyAdminMixin, parse_uuid, short_id_html
from wallets.models import MAX_AMOUNT, FreezeReason, Wallet, WalletKind

# --- forms ------------------------------------------------------------------------------


class ReasonForm(forms.Form):
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        max_length=500,
        help_text="Why. Kept with the request, in its audit and on what it changes.",
    )


class AdjustmentForm(ReasonForm):
    direction = forms.ChoiceField(
        choices=[
            (AdjustmentDirection.CREDIT.value, "Credit the wallet (from the suspense wallet)"),
            (AdjustmentDirection.DEBIT.value, "Debit the wallet (to the suspense wallet)"),
        ],
        widget=forms.RadioSelect,
    )
    amount = forms.DecimalField(max_digits=20, decimal_places=2, min_value=Decimal("0.01"), max_value=MAX_AMOUNT)
    ticket = forms.CharField(max_length=100, help_text="The ticket that asks for this adjustment (e.g. SUP-1234).")
    field_order = ["direction", "amount", "ticket", "reason"]


class ApprovalForm(forms.Form):
    fingerprint = forms.CharField(max_length=64, widget=forms.HiddenInput)


# --- what a page shows of its corrections ---------------------------------------------------


def corrections_html(corrections) -> str:
    """The requests about one object and their audit, newest request first."""
    requests = list(corrections.order_by("-requested_at")[:50])
    audit = list(selectors.audit_of(corrections))
    return render_to_string(
        "admin/corrections/corrections_of.html", {"corrections": requests, "audit": audit, "now": timezone.now()}
    )


def correction_url(correction: Correction) -> str:
    return reverse("admin:corrections_correction_change", args=[quote(correction.pk)])


def say_outcome(model_admin, request, correction: Correction, subject: str) -> None:
    """The message after a request was made or decided, from its status."""
    correction.refresh_from_db()
    if correction.status == CorrectionStatus.PENDING:
        model_admin.message_user(
            request,
            format_html(
                '{} requested: it waits for a second person\'s approval until {} (<a href="{}">the request</a>).',
                subject,
                timezone.localtime(correction.expires_at).strftime("%Y-%m-%d %H:%M %Z"),
                correction_url(correction),
            ),
            messages.SUCCESS,
        )
    elif correction.status == CorrectionStatus.APPLIED:
        log = correction.result_log
        alone = " (alone, below the single-approval threshold)" if correction.applied_alone else ""
        if correction.kind == CorrectionKind.REVERSAL:
            original = correction.payload["transaction"]["reference"]
            said = f"{original} reversed{alone}: {log.reference} moved {log.amount} {log.currency} back."
        else:
            said = f"{subject} applied{alone}" + (
                f": {log.reference} moved {log.amount} {log.currency}." if log else "."
            )
        model_admin.message_user(request, said, messages.SUCCESS)
    elif correction.status == CorrectionStatus.FAILED:
        if correction.kind == CorrectionKind.REVERSAL:
            subject = f"{correction.payload['transaction']['reference']} was not reversed"
        else:
            subject = f"{subject} was not applied"
        model_admin.message_user(request, f"{subject}: {correction.decision_note}", messages.ERROR)
    else:
        model_admin.message_user(request, f"{subject}: {correction.get_status_display()}.", messages.WARNING)


def request_page(model_admin, request, *, title: str, form, intro: str, back_url: str, submit: str):
    context = {
        **model_admin.admin_site.each_context(request),
        "title": title,
        "subtitle": None,
        "opts": model_admin.opts,
        "form": form,
        "intro": intro,
        "back_url": back_url,
        "submit": submit,
    }
    return TemplateResponse(request, "admin/corrections/request_form.html", context)


# --- the transaction page: request a reversal ------------------------------------------------


class ReversalRequestMixin:
    """Adds the reversal request (action, button, page) and the requests
    about the transaction to the registered transaction-log admin."""

    change_form_template = "admin/corrections/transactionlog_change_form.html"

    def has_reverse_permission(self, request) -> bool:
        return request.user.has_perm(services.REQUEST_PERMISSION[CorrectionKind.REVERSAL])

    @admin.display(description="requests and their audit")
    def corrections(self, log):
        return corrections_html(selectors.corrections_of_transaction(log_id=log.pk))

    @admin.action(description="Request a reversal of the selected COMPLETED transaction…", permissions=["reverse"])
    def reverse_selected(self, request, queryset):
        # One at a time: each reversal needs its own reason and confirmation.
        selected = list(queryset.select_related(None).only("id")[:2])
        if len(selected) != 1:
            self.message_user(request, "Select exactly one transaction to reverse.", messages.ERROR)
            return None
        return HttpResponseRedirect(self.reverse_url(selected[0]))

    def reverse_url(self, log) -> str:
        return reverse("admin:transfers_transactionlog_reverse", args=[quote(log.pk)], current_app=self.admin_site.name)

    def get_urls(self):
        view = self.admin_site.admin_view(self.reverse_view)
        return [path("<path:object_id>/reverse/", view, name="transfers_transactionlog_reverse"), *super().get_urls()]

    def reverse_view(self, request, object_id):
        """The request page: what would move back, and a required reason. Its
        POST makes the request (corrections.services.reversal_request, which
        alone decides whether the transaction may still be reversed); a
        second person applies it from the approval page."""
        if not self.has_reverse_permission(request):
            raise PermissionDenied
        log = self.get_object(request, unquote(object_id))
        if log is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        log_url = reverse(
            "admin:transfers_transactionlog_change", args=[quote(log.pk)], current_app=self.admin_site.name
        )

        form = ReasonForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            reason = form.cleaned_data["reason"]
            try:
                correction = services.reversal_request(log_id=log.pk, reason=reason, requested_by=request.user)
            except CorrectionRefused as refused:
                self.message_user(request, f"{log.reference} was not reversed: {refused}", messages.ERROR)
                return HttpResponseRedirect(log_url)
            self.log_change(request, log, f"Requested a reversal (correction {correction.pk}). Reason: {reason}")
            say_outcome(self, request, correction, f"Reversal of {log.reference}")
            return HttpResponseRedirect(log_url)

        if request.method == "GET" and log.status != TransactionStatus.COMPLETED:
            self.message_user(
                request,
                f"{log.reference} is {log.status}: only a COMPLETED transaction can be reversed, and only once.",
                messages.ERROR,
            )
            return HttpResponseRedirect(log_url)

        alone = services.single_approval_applies(kind=CorrectionKind.REVERSAL, amount=log.amount, currency=log.currency)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Request a reversal of {log.reference}?",
            "subtitle": None,
            "opts": self.opts,
            "original": log,
            "log": log,
            "log_url": log_url,
            "source": self.source(log),
            "destination": self.destination(log),
            "form": form,
            "alone": alone,
        }
        return TemplateResponse(request, "admin/corrections/reversal_request.html", context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {**(extra_context or {}), "has_reverse_permission": self.has_reverse_permission(request)}
        return super().change_view(request, object_id, form_url, extra_context)


_TransactionLogAdmin = type(admin.site.get_model_admin(TransactionLog))


class CorrectingTransactionLogAdmin(ReversalRequestMixin, _TransactionLogAdmin):
    actions = [*_TransactionLogAdmin.actions, "reverse_selected"]
    fieldsets = (*_TransactionLogAdmin.fieldsets, ("Corrections", {"fields": ("corrections",)}))
    readonly_fields = (*_TransactionLogAdmin.readonly_fields, "corrections")


admin.site.unregister(TransactionLog)
admin.site.register(TransactionLog, CorrectingTransactionLogAdmin)


# --- the wallet page: adjust, request an unfreeze ---------------------------------------------


_WalletAdmin = type(admin.site.get_model_admin(Wallet))


class CorrectingWalletAdmin(_WalletAdmin):
    change_form_template = "admin/corrections/wallet_change_form.html"
    fieldsets = (*_WalletAdmin.fieldsets, ("Corrections", {"fields": ("corrections",)}))
    readonly_fields = (*_WalletAdmin.readonly_fields, "corrections")

    def has_adjust_permission(self, request) -> bool:
        return request.user.has_perm(services.REQUEST_PERMISSION[CorrectionKind.ADJUSTMENT])

    @admin.display(description="requests and their audit")
    def corrections(self, wallet):
        return corrections_html(selectors.corrections_of_wallet(wallet_id=wallet.pk))

    def get_urls(self):
        adjust = self.admin_site.admin_view(self.adjust_view)
        unfreeze = self.admin_site.admin_view(self.request_unfreeze_view)
        return [
            path("<path:object_id>/adjust/", adjust, name="wallets_wallet_adjust"),
            path("<path:object_id>/request-unfreeze/", unfreeze, name="wallets_wallet_request_unfreeze"),
            *super().get_urls(),
        ]

    def wallet_url(self, wallet) -> str:
        return reverse("admin:wallets_wallet_change", args=[quote(wallet.pk)], current_app=self.admin_site.name)

    def adjust_view(self, request, object_id):
        """A manual adjustment's request page: credit or debit against the
        currency's suspense wallet, an amount, the ticket and a reason."""
        if not self.has_adjust_permission(request):
            raise PermissionDenied
        wallet = self.get_object(request, unquote(object_id))
        if wallet is None or wallet.kind != WalletKind.CUSTOMER:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        form = AdjustmentForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                correction = services.adjustment_request(
                    wallet_id=wallet.pk,
                    direction=AdjustmentDirection(data["direction"]),
                    amount=data["amount"],
                    reason=data["reason"],
                    ticket=data["ticket"],
                    requested_by=request.user,
                )
            except (CorrectionRefused, ValueError) as refused:
                self.message_user(request, f"No adjustment requested: {refused}", messages.ERROR)
                return HttpResponseRedirect(self.wallet_url(wallet))
            direction = data["direction"].lower()
            self.log_change(
                request,
                wallet,
                f"Requested a {direction} of {data['amount']} {wallet.currency} (correction {correction.pk}, "
                f"ticket {data['ticket']}). Reason: {data['reason']}",
            )
            say_outcome(self, request, correction, f"Adjustment ({direction} {data['amount']} {wallet.currency})")
            return HttpResponseRedirect(self.wallet_url(wallet))
        return request_page(
            self,
            request,
            title=f"Adjust the balance of {wallet}",
            form=form,
            intro=(
                f"The wallet holds {wallet.balance} {wallet.currency}. A credit moves money from the "
                f"{wallet.currency} suspense wallet into it, a debit from it to the suspense wallet. Nothing moves "
                "until a second person approves the request."
            ),
            back_url=self.wallet_url(wallet),
            submit="Request the adjustment",
        )

    def request_unfreeze_view(self, request, object_id):
        """Unfreezing a wallet frozen for fraud: a request with a reason, for
        a second person to approve."""
        if not self.has_freeze_permission(request):
            raise PermissionDenied
        wallet = self.get_object(request, unquote(object_id))
        if wallet is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        form = ReasonForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            try:
                correction = services.unfreeze_request(
                    wallet_id=wallet.pk, reason=form.cleaned_data["reason"], requested_by=request.user
                )
            except CorrectionRefused as refused:
                self.message_user(request, f"No unfreeze requested: {refused}", messages.ERROR)
                return HttpResponseRedirect(self.wallet_url(wallet))
            self.log_change(
                request,
                wallet,
                f"Requested to unfreeze (correction {correction.pk}). Reason: {form.cleaned_data['reason']}",
            )
            say_outcome(self, request, correction, "Unfreezing the wallet")
            return HttpResponseRedirect(self.wallet_url(wallet))
        return request_page(
            self,
            request,
            title=f"Request to unfreeze {wallet}",
            form=form,
            intro="This wallet was frozen for suspected fraud: a second person must approve unfreezing it.",
            back_url=self.wallet_url(wallet),
            submit="Request the unfreeze",
        )

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "has_adjust_permission": self.has_adjust_permission(request),
            "fraud": FreezeReason.FRAUD.value,
        }
        return super().change_view(request, object_id, form_url, extra_context)


admin.site.unregister(Wallet)
admin.site.register(Wallet, CorrectingWalletAdmin)


def searched(queryset, search_term: str, correction_field: str):
    """The admin's search of requests and of their audit: a whole UUID, the
    request's own or that of the transaction or wallet it concerns."""
    if not search_term.strip():
        return queryset, False
    value = parse_uuid(search_term)
    if value is None:
        return queryset.none(), False
    about = selectors.corrections_about(object_id=value).values("pk")
    return queryset.filter(**{f"{correction_field}__in": about}), False


# --- the approvers' list and page -------------------------------------------------------------


@admin.register(Correction)
class CorrectionAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Requests, newest first, PENDING ones for approvers to decide. The page
    of one is its approval page: what was asked, frozen, and its fingerprint;
    an approver needs no permission on wallets or transactions to read it."""

    list_display = (
        "short",
        "kind",
        "status",
        "concerns",
        "amount",
        "currency",
        "requested_by",
        "requested_at",
        "expires_at",
    )
    list_filter = ("status", "kind")
    list_select_related = ("requested_by",)
    search_fields = ("=id",)
    search_help_text = "A request id, a transaction id or a wallet id (the whole UUID)."
    change_form_template = "admin/corrections/correction/change_form.html"
    fields = (
        "id", "kind", "status", "asked", "fingerprint", "requester", "requested_at", "expires_at",
        "decider", "decided_at", "decision_note", "applied_alone", "result", "audit_rows",
    )  # fmt: skip
    readonly_fields = fields

    # Names, not links to the user admin, which an approver may not open.
    @admin.display(description="requested by")
    def requester(self, correction):
        return correction.requested_by.get_username()

    @admin.display(description="decided by")
    def decider(self, correction):
        return correction.decided_by.get_username() if correction.decided_by_id else "-"

    def get_search_results(self, request, queryset, search_term):
        return searched(queryset, search_term, "pk")

    @admin.display(description="request")
    def short(self, correction):
        return short_id_html(correction.pk)

    @admin.display(description="concerns")
    def concerns(self, correction):
        payload = correction.payload
        if correction.kind == CorrectionKind.REVERSAL:
            return payload["transaction"]["reference"]
        if correction.kind == CorrectionKind.ADJUSTMENT:
            return format_html("{} of wallet {}", payload["direction"].lower(), short_id_html(payload["walletId"]))
        return format_html("wallet {}", short_id_html(payload["walletId"]))

    @admin.display(description="what was asked (frozen)")
    def asked(self, correction):
        text = json.dumps(correction.payload, indent=2, sort_keys=True, ensure_ascii=False)
        return format_html('<pre id="correction-payload" style="margin: 0; white-space: pre-wrap">{}</pre>', text)

    @admin.display(description="what it wrote")
    def result(self, correction):
        log = correction.result_log
        return f"{log.reference} ({log.type} {log.amount} {log.currency})" if log else "-"

    @admin.display(description="audit")
    def audit_rows(self, correction):
        return render_to_string(
            "admin/corrections/corrections_of.html",
            {"audit": list(correction.audit.select_related("actor", "correction")), "corrections": []},
        )

    def has_approve_permission(self, request) -> bool:
        return request.user.has_perm(services.APPROVE_PERMISSION)

    def get_urls(self):
        decide = self.admin_site.admin_view(self.decide_view)
        return [
            path("<path:object_id>/approve/", decide, {"approve": True}, name="corrections_correction_approve"),
            path("<path:object_id>/reject/", decide, {"approve": False}, name="corrections_correction_reject"),
            *super().get_urls(),
        ]

    def decide_view(self, request, object_id, approve: bool):
        """Approve (with the fingerprint the page showed) or reject (with a
        reason). Whoever posts, the service decides: the requester, someone
        without the role, a decided or expired request are refused there."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        correction = self.get_object(request, unquote(object_id))
        if correction is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not self.has_view_permission(request, correction):
            raise PermissionDenied
        page = correction_url(correction)
        form = ApprovalForm(request.POST) if approve else ReasonForm(request.POST)
        if not form.is_valid():
            self.message_user(
                request,
                "Give a reason to reject the request." if not approve else "Nothing approved: the form was incomplete.",
                messages.ERROR,
            )
            return HttpResponseRedirect(page)
        try:
            if approve:
                services.correction_approve(
                    correction_id=correction.pk, approver=request.user, fingerprint=form.cleaned_data["fingerprint"]
                )
            else:
                services.correction_reject(
                    correction_id=correction.pk, rejector=request.user, reason=form.cleaned_data["reason"]
                )
        except CorrectionRefused as refused:
            self.message_user(request, f"Not {'approved' if approve else 'rejected'}: {refused}", messages.ERROR)
            return HttpResponseRedirect(page)
        correction.refresh_from_db()
        if correction.result_log is not None:
            self.log_addition(request, correction.result_log, f"Applied correction {correction.pk}.")
        elif correction.kind == CorrectionKind.UNFREEZE and correction.status == CorrectionStatus.APPLIED:
            self.log_change(request, correction.wallet, f"Unfroze the wallet (correction {correction.pk}).")
        if approve:
            say_outcome(self, request, correction, f"{correction.get_kind_display()} {str(correction.pk)[:8]}")
        else:
            self.message_user(request, "Rejected: nothing was applied.", messages.SUCCESS)
        return HttpResponseRedirect(page)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        correction = self.get_object(request, unquote(object_id))
        pending = correction is not None and correction.status == CorrectionStatus.PENDING
        own = correction is not None and correction.requested_by_id == request.user.pk
        extra_context = {
            **(extra_context or {}),
            "pending": pending,
            "own_request": own,
            "can_approve": pending and not own and self.has_approve_permission(request),
            "can_reject": pending and (own or self.has_approve_permission(request)),
        }
        return super().change_view(request, object_id, form_url, extra_context)


# --- the audit, and its CSV -------------------------------------------------------------------

CSV_COLUMNS = (
    "at", "correction", "kind", "action", "actor", "note", "fingerprint", "transaction", "wallet", "amount",
    "currency", "requested_by",
)  # fmt: skip


def csv_cell(value) -> str:
    """A cell a spreadsheet shows as text: one that starts like a formula
    gets a leading apostrophe (OWASP's advice on CSV injection)."""
    text = "" if value is None else str(value)
    return f"'{text}" if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


class _Echo:
    def write(self, value):
        return value


@admin.register(CorrectionAudit)
class CorrectionAuditAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("at", "request", "kind", "action", "actor", "note")
    list_filter = ("action", "correction__kind", ("at", admin.DateFieldListFilter))
    list_select_related = ("correction", "actor")
    search_fields = ("=correction__id",)
    search_help_text = "A request id, a transaction id or a wallet id (the whole UUID)."
    change_list_template = "admin/corrections/correctionaudit/change_list.html"

    def get_search_results(self, request, queryset, search_term):
        return searched(queryset, search_term, "correction_id")

    @admin.display(description="request", ordering="correction")
    def request(self, row):
        return format_html('<a href="{}">{}</a>', correction_url(row.correction), short_id_html(row.correction_id))

    @admin.display(description="kind")
    def kind(self, row):
        return row.correction.get_kind_display()

    def get_urls(self):
        export = self.admin_site.admin_view(self.export_view)
        return [path("export.csv", export, name="corrections_correctionaudit_export"), *super().get_urls()]

    def export_view(self, request):
        """The list as filtered on the page, every row of it, as CSV."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        rows = (
            self.get_changelist_instance(request)
            .get_queryset(request)
            .select_related("correction", "correction__transaction", "correction__requested_by", "actor")
            .order_by("at", "id")
        )
        writer = csv.writer(_Echo())

        def lines():
            yield writer.writerow(CSV_COLUMNS)
            for row in rows.iterator(chunk_size=1000):
                c = row.correction
                values = (
                    row.at.isoformat(), c.pk, c.kind, row.action, row.actor.get_username() if row.actor else "",
                    row.note, row.fingerprint, c.transaction.reference if c.transaction else "", c.wallet_id or "",
                    c.amount if c.amount is not None else "", c.currency, c.requested_by.get_username(),
                )  # fmt: skip
                yield writer.writerow([csv_cell(value) for value in values])

        response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="correction-audit-{timezone.now():%Y%m%d-%H%M%S}.csv"'
        return response
