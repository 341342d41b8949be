"""The support staff's wallet pages: find a wallet, see it, freeze or unfreeze it.

Nothing here writes a balance: wallets are opened by client apps through the
API and money moves only in transfers/services.py, so the admin has no add,
change or delete for wallets, even for superusers. Freezing goes through
wallets.services.wallet_set_active and is written to the admin history with
who did it.

transfers/admin.py registers a subclass that adds what needs the ledger (the
recent transactions and the ledger-derived balance): wallets knows nothing of
transfers.
"""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import quote, unquote
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Q
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from wallet_project.admin_lists import (
    CurrencyListFilter,
    EstimatedCountPaginator,
    OfferedValuesFilter,
    ReadOnlyAdminMixin,
    parse_uuid,
    short_id_html,
)
from wallet_project.db.routers import LagTolerantChangeListMixin
from wallets.models import (
    TIER_CAPS,
    UNRESTRICTED,
    ClientTierDefault,
    FreezeReason,
    TierProfile,
    TierProfileChange,
    Wallet,
    WalletKind,
    WalletLimitChange,
)
from wallets.services import (
    UNCLAIMED_OWNER,
    UnfreezeNeedsApproval,
    WalletGiveRefused,
    wallet_give_to_client,
    wallet_limits_set,
    wallet_set_active,
)

# --- wallets ----------------------------------------------------------------------------

SETTLEMENT_EXPLAINED = (
    "A settlement wallet is the service's own, one per currency: every deposit moves money out of it into a "
    "customer wallet and every withdrawal back into it, so its balance is minus the money customers hold. "
    "It is negative by design, the only wallet that may be, and it is never frozen here."
)


class WalletKindFilter(OfferedValuesFilter):
    """Customer wallets or the settlement wallets, set apart: the list of
    settlement wallets opens with why their balances are negative
    (SETTLEMENT_EXPLAINED, in wallets/templates/admin/wallets/wallet/change_list.html)."""

    title = "customer or system"
    parameter_name = "kind__exact"  # the field filter's name, so links made before still work

    def lookups(self, request, model_admin):
        return [
            (WalletKind.CUSTOMER, "Customer wallets"),
            (WalletKind.SETTLEMENT, "Settlement wallets"),
            (WalletKind.SUSPENSE, "Suspense wallets"),
        ]

    def queryset(self, request, queryset):
        return queryset.filter(kind=self.value()) if self.value() else queryset


class ApiClientFilter(OfferedValuesFilter):
    """The owning API client (tenancy): users who are neither staff nor
    superusers. The people who sign in to the admin own no wallet, and
    listing them among the owners would only mislead."""

    title = "owner"
    parameter_name = "owner__id__exact"  # the field filter's name, so links made before still work

    def lookups(self, request, model_admin):
        clients = get_user_model().objects.filter(is_staff=False, is_superuser=False).order_by("username")
        return [(str(client.pk), client.get_username()) for client in clients]

    def queryset(self, request, queryset):
        return queryset.filter(owner_id=self.value()) if self.value() else queryset


class TierFilter(OfferedValuesFilter):
    """By tier; "no tier" lists the wallets opened before tiers existed (and
    those whose client has no default), unrestricted until reviewed."""

    title = "tier"
    parameter_name = "tier"
    NONE = "none"

    def lookups(self, request, model_admin):
        return [(self.NONE, "No tier (unrestricted, to review)")] + [
            (str(tier.pk), str(tier)) for tier in TierProfile.objects.order_by("currency", "name")
        ]

    def queryset(self, request, queryset):
        if self.value() == self.NONE:
            return queryset.filter(kind=WalletKind.CUSTOMER, tier__isnull=True)
        if self.value():
            return queryset.filter(tier_id=self.value())
        return queryset


@admin.register(Wallet)
class WalletAdmin(LagTolerantChangeListMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    # Read-only: wallets are opened through the API, balances change only
    # through transfers, and the active flag only through the freeze actions
    # (so that each change is in the history).
    # Short ids, the whole one on hover: the list fits 1440 px (docs/operations.md, "The admin's lists").
    list_display = (
        "wallet_id", "owner", "user", "currency", "balance", "is_active", "tier_shown", "kind_shown", "updated_at",
    )  # fmt: skip
    list_display_links = ("wallet_id",)
    list_select_related = ("owner", "tier")
    # The owning API client (tenancy): a handful of clients, so a short list.
    list_filter = (CurrencyListFilter, "is_active", WalletKindFilter, ApiClientFilter, TierFilter)
    # Searched by exact id in get_search_results (index lookups); listed so the
    # admin shows its search box.
    search_fields = ("=id", "=user_id")
    search_help_text = "A wallet id or a user id (the whole UUID)."
    fieldsets = (
        (None, {"fields": ("id", "owner", "user_id", "kind", "currency", "balance", "is_active", "frozen_because")}),
        ("Limits", {"fields": ("tier_shown", "post_no_debit", "post_no_credit", "restriction_reason")}),
        ("Dates", {"fields": ("created_at", "updated_at")}),
    )
    readonly_fields = (
        "id", "owner", "user_id", "kind", "currency", "balance", "is_active", "frozen_because", "tier_shown",
        "post_no_debit", "post_no_credit", "restriction_reason", "created_at", "updated_at",
    )  # fmt: skip
    actions = [
        "freeze_wallets", "freeze_wallets_for_fraud", "unfreeze_wallets", "give_wallets", "set_tier",
        "set_restrictions",
    ]  # fmt: skip
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    # Filter counts ("Show counts") are a COUNT per choice over the whole table.
    show_facets = admin.ShowFacets.NEVER

    @admin.display(description="id", ordering="id")
    def wallet_id(self, wallet):
        return short_id_html(wallet.pk)

    @admin.display(description="user id", ordering="user_id")
    def user(self, wallet):
        return short_id_html(wallet.user_id)

    @admin.display(description="tier")
    def tier_shown(self, wallet):
        if wallet.is_system:
            return "-"
        return wallet.tier.name if wallet.tier_id is not None else f"{UNRESTRICTED} (no tier)"

    @admin.display(description="kind", ordering="kind")
    def kind_shown(self, wallet):
        if wallet.is_settlement:
            return format_html('<strong title="{}">Settlement</strong>', SETTLEMENT_EXPLAINED)
        return wallet.get_kind_display()

    @admin.display(description="frozen because")
    def frozen_because(self, wallet):
        if wallet.is_active:
            return "-"
        # A wallet frozen before reasons were kept reads as a support decision.
        label = FreezeReason(wallet.frozen_reason or FreezeReason.SUPPORT).label
        return f"{label}: {wallet.frozen_note}" if wallet.frozen_note else label

    def changelist_view(self, request, extra_context=None):
        showing_settlement = request.GET.get(WalletKindFilter.parameter_name) == WalletKind.SETTLEMENT
        extra_context = {**(extra_context or {}), "settlement_explained": showing_settlement and SETTLEMENT_EXPLAINED}
        return super().changelist_view(request, extra_context)

    def has_freeze_permission(self, request) -> bool:
        return request.user.has_perm("wallets.freeze_wallet")

    def has_give_permission(self, request) -> bool:
        return request.user.has_perm("wallets.give_wallet")

    def has_set_tier_permission(self, request) -> bool:
        return request.user.has_perm("wallets.set_wallet_tier")

    def has_restrict_permission(self, request) -> bool:
        return request.user.has_perm("wallets.restrict_wallet")

    def get_search_results(self, request, queryset, search_term):
        if not search_term.strip():
            return queryset, False
        # An exact match on the primary key or the indexed user_id: a partial
        # UUID would need a scan of a cast, and support always has the whole one.
        value = parse_uuid(search_term)
        if value is None:
            return queryset.none(), False
        return queryset.filter(Q(pk=value) | Q(user_id=value)), False

    # --- freeze and unfreeze --------------------------------------------------------

    # Each asks first, on a page naming the wallets, for the reason: the
    # history and the wallet page show it, and support answers from it when
    # the client asks why (docs/operations.md, "The admin, for support staff").

    @admin.action(description="Freeze selected wallets…", permissions=["freeze"])
    def freeze_wallets(self, request, queryset):
        return self.ask_reason_then_set_active(request, queryset, is_active=False)

    @admin.action(description="Freeze selected wallets for suspected fraud…", permissions=["freeze"])
    def freeze_wallets_for_fraud(self, request, queryset):
        return self.ask_reason_then_set_active(request, queryset, is_active=False, reason=FreezeReason.FRAUD)

    @admin.action(description="Unfreeze selected wallets…", permissions=["freeze"])
    def unfreeze_wallets(self, request, queryset):
        return self.ask_reason_then_set_active(request, queryset, is_active=True)

    def ask_reason_then_set_active(
        self, request, wallets, *, is_active: bool, reason: FreezeReason = FreezeReason.SUPPORT
    ) -> TemplateResponse | None:
        """The confirmation page (a FreezeNoteForm) until it comes back with
        "apply" and a reason; then set_active with that note, and None. A
        list action's page posts back as that action; a wallet page button's
        (no action) to the button's own address."""
        form = FreezeNoteForm(request.POST if "apply" in request.POST else None)
        if not form.is_valid():
            if is_active:
                title, button = "Unfreeze wallets", "Unfreeze"
            elif reason == FreezeReason.FRAUD:
                title, button = "Freeze wallets for suspected fraud", "Freeze for fraud"
            else:
                title, button = "Freeze wallets", "Freeze"
            context = {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "title": title,
                "button": button,
                "wallets": list(wallets),
                "form": form,
                "action": request.POST.get("action", ""),
            }
            return TemplateResponse(request, "admin/wallets/wallet/set_active.html", context)
        self.set_active(request, wallets, is_active=is_active, reason=reason, note=form.cleaned_data["reason"])
        return None

    def set_active(
        self, request, wallets, *, is_active: bool, reason: FreezeReason = FreezeReason.SUPPORT, note: str = ""
    ) -> None:
        verb = "Unfroze" if is_active else "Froze"
        changed, unchanged, settlement, fraud = 0, 0, 0, 0
        for wallet in wallets:
            # A frozen system wallet would stop every deposit, withdrawal or
            # adjustment of its currency: not a support decision.
            if wallet.is_system and not is_active:
                settlement += 1
                continue
            if wallet.is_active == is_active:
                unchanged += 1
                continue
            # The flag and its history entry commit together.
            try:
                with transaction.atomic():
                    wallet_set_active(wallet=wallet, is_active=is_active, reason=reason, note=note)
                    because = " for suspected fraud" if not is_active and reason == FreezeReason.FRAUD else ""
                    self.log_change(
                        request,
                        wallet,
                        f"{verb} the wallet{because}: {note}" if note else f"{verb} the wallet{because}.",
                    )
            except UnfreezeNeedsApproval:
                fraud += 1
                continue
            changed += 1
        if fraud:
            self.message_user(
                request,
                f"{fraud} wallet(s) frozen for suspected fraud left frozen: unfreezing one needs a second person. "
                "Use “Request unfreeze…” on the wallet's page.",
                messages.ERROR,
            )
        if changed:
            self.message_user(request, f"{verb} {changed} wallet{'s' if changed != 1 else ''}.", messages.SUCCESS)
        if unchanged:
            state = "active" if is_active else "frozen"
            self.message_user(request, f"{unchanged} already {state}, left as it was.", messages.WARNING)
        if settlement:
            self.message_user(
                request,
                f"{settlement} settlement or suspense wallet(s) left active: they are never frozen here.",
                messages.ERROR,
            )

    # --- give an unclaimed wallet to its client -------------------------------------

    @admin.action(description="Give selected unclaimed wallets to an API client", permissions=["give"])
    def give_wallets(self, request, queryset):
        """First a page naming the wallets and asking for the client; its
        "apply" post gives each wallet through wallet_give_to_client and writes
        the admin history, one wallet at a time."""
        form = GiveWalletForm(request.POST if "apply" in request.POST else None)
        if not form.is_valid():
            context = {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "title": "Give wallets to an API client",
                "wallets": queryset.select_related("owner"),
                "form": form,
            }
            return TemplateResponse(request, "admin/wallets/wallet/give.html", context)
        client = form.cleaned_data["client"]
        given = 0
        for wallet in queryset:
            try:
                with transaction.atomic():
                    wallet_give_to_client(wallet=wallet, client=client)
                    self.log_change(request, wallet, f"Gave the wallet to {client.get_username()}.")
            except WalletGiveRefused as refused:
                self.message_user(request, str(refused), messages.ERROR)
            else:
                given += 1
        if given:
            self.message_user(
                request, f"Gave {given} wallet{'s' if given != 1 else ''} to {client.get_username()}.", messages.SUCCESS
            )
        return None

    # --- tier and restrictions (docs/limits.md) ----------------------------------------

    @admin.action(description="Set the tier of selected wallets…", permissions=["set_tier"])
    def set_tier(self, request, queryset):
        return self.ask_then_set_limits(request, queryset, SetTierForm, "set_tier", "Set the tier of wallets")

    @admin.action(description="Set the restrictions of selected wallets…", permissions=["restrict"])
    def set_restrictions(self, request, queryset):
        return self.ask_then_set_limits(
            request, queryset, RestrictionsForm, "set_restrictions", "Set the restrictions of wallets"
        )

    def ask_then_set_limits(self, request, wallets, form_class, action: str, title: str) -> TemplateResponse | None:
        """A page naming the wallets and asking for the change and its
        reason; its "apply" post sets each customer wallet through
        wallet_limits_set (the wallet's limit history, wallet.tier_changed)
        and writes the admin history, one wallet at a time."""
        form = form_class(request.POST if "apply" in request.POST else None)
        if not form.is_valid():
            context = {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "title": title,
                "wallets": list(wallets),
                "form": form,
                "action": action,
            }
            return TemplateResponse(request, "admin/wallets/wallet/set_limits.html", context)
        changes = form.changes()
        done = 0
        for wallet in wallets:
            if wallet.is_system:
                continue
            try:
                with transaction.atomic():
                    wallet_limits_set(wallet=wallet, changed_by=request.user, **changes)
                    self.log_change(request, wallet, f"{title}: {form.summary()}. Reason: {changes['reason']}")
            except ValueError as error:
                self.message_user(request, str(error), messages.ERROR)
            else:
                done += 1
        if done:
            self.message_user(request, f"{form.summary()}: {done} wallet{'s' if done != 1 else ''}.", messages.SUCCESS)
        return None

    def get_urls(self):
        app, model = self.opts.app_label, self.opts.model_name
        freeze = self.admin_site.admin_view(self.freeze_view)
        return [
            path("<path:object_id>/freeze/", freeze, {"is_active": False}, name=f"{app}_{model}_freeze"),
            path(
                "<path:object_id>/freeze-for-fraud/",
                freeze,
                {"is_active": False, "reason": FreezeReason.FRAUD},
                name=f"{app}_{model}_freeze_for_fraud",
            ),
            path("<path:object_id>/unfreeze/", freeze, {"is_active": True}, name=f"{app}_{model}_unfreeze"),
            *super().get_urls(),
        ]

    def freeze_view(self, request, object_id, is_active: bool, reason: FreezeReason = FreezeReason.SUPPORT):
        """The wallet page's Freeze / Freeze for fraud / Unfreeze buttons: the
        action, for one wallet (its confirmation page first)."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_freeze_permission(request):
            raise PermissionDenied
        wallet = self.get_object(request, unquote(object_id))
        if wallet is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        asking = self.ask_reason_then_set_active(request, [wallet], is_active=is_active, reason=reason)
        if asking is not None:
            return asking
        return HttpResponseRedirect(
            reverse("admin:wallets_wallet_change", args=[quote(wallet.pk)], current_app=self.admin_site.name)
        )

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {**(extra_context or {}), "has_freeze_permission": self.has_freeze_permission(request)}
        return super().change_view(request, object_id, form_url, extra_context)


class FreezeNoteForm(forms.Form):
    reason = forms.CharField(
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="Why: the wallet's history and page show it, and support answers from it when the client asks. "
        "Internal: the client is not shown it.",
    )


REASON_BOX = forms.Textarea(attrs={"rows": 3, "cols": 60})
_REASON_HELP = "Why: the wallet's limit history keeps it, and the client sees a restriction's reason."


class SetTierForm(forms.Form):
    tier = forms.ModelChoiceField(
        queryset=TierProfile.objects.order_by("currency", "name"),
        required=False,
        empty_label=f"{UNRESTRICTED} (no tier)",
        help_text="A tier of the wallets' currency; a wallet of another currency is left as it is.",
    )
    reason = forms.CharField(
        max_length=500, widget=forms.Textarea(attrs={"rows": 3, "cols": 60}), help_text=_REASON_HELP
    )

    def changes(self) -> dict:
        return {"tier": self.cleaned_data["tier"], "reason": self.cleaned_data["reason"]}

    def summary(self) -> str:
        tier = self.cleaned_data["tier"]
        return f"tier {tier.name if tier else UNRESTRICTED}"


class RestrictionsForm(forms.Form):
    post_no_debit = forms.BooleanField(required=False, label="Post no debit", help_text="No money may leave.")
    post_no_credit = forms.BooleanField(required=False, label="Post no credit", help_text="No money may enter.")
    reason = forms.CharField(
        max_length=500, widget=forms.Textarea(attrs={"rows": 3, "cols": 60}), help_text=_REASON_HELP
    )

    def changes(self) -> dict:
        return {name: self.cleaned_data[name] for name in ("post_no_debit", "post_no_credit", "reason")}

    def summary(self) -> str:
        on = [label for name, label in (("post_no_debit", "post-no-debit"), ("post_no_credit", "post-no-credit"))
              if self.cleaned_data[name]]  # fmt: skip
        return f"restrictions {', '.join(on) if on else 'none'}"


class GiveWalletForm(forms.Form):
    client = forms.ModelChoiceField(
        # API clients: active, not staff, and not the unclaimed holder itself.
        queryset=get_user_model()
        .objects.filter(is_active=True, is_staff=False)
        .exclude(username=UNCLAIMED_OWNER)
        .order_by("username"),
        help_text="The API client the wallets belong to: it opened them, or its users own them.",
    )


# --- tier profiles (docs/limits.md) -----------------------------------------------------


class TierProfileChangeInline(admin.TabularInline):
    model = TierProfileChange
    extra = 0
    can_delete = False
    fields = readonly_fields = ("changed_at", "changed_by", "cap", "old_value", "new_value")

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(TierProfile)
class TierProfileAdmin(admin.ModelAdmin):
    """Finance edits a tier's caps (empty: no cap); each changed cap is one
    TierProfileChange row (who, when, from, to), in the same transaction."""

    list_display = ("name", "currency", *TIER_CAPS)
    list_filter = ("currency",)
    fields = ("name", "currency", "description", *TIER_CAPS)
    inlines = [TierProfileChangeInline]

    def get_readonly_fields(self, request, obj=None):
        # A tier's name and currency are what clients and wallets know it by.
        return ("name", "currency") if obj is not None else ()

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        with transaction.atomic():
            before = TierProfile.objects.select_for_update().get(pk=obj.pk) if change else None
            super().save_model(request, obj, form, change)
            TierProfileChange.objects.bulk_create(
                TierProfileChange(
                    profile=obj,
                    cap=cap,
                    old_value=getattr(before, cap) if before else None,
                    new_value=getattr(obj, cap),
                    changed_by=request.user,
                )
                for cap in TIER_CAPS
                if (getattr(before, cap) if before else None) != getattr(obj, cap)
            )


@admin.register(WalletLimitChange)
class WalletLimitChangeAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("changed_at", "wallet", "what", "old_value", "new_value", "changed_by", "reason")
    list_filter = ("what",)
    list_select_related = ("wallet", "changed_by")
    search_fields = ("=wallet__id",)
    readonly_fields = list_display


@admin.register(ClientTierDefault)
class ClientTierDefaultAdmin(admin.ModelAdmin):
    """The tier a client's new wallets of a currency take."""

    list_display = ("client", "currency", "tier")
    list_select_related = ("client", "tier")
    fields = ("client", "tier")
