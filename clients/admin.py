"""API keys in the admin: issue one (shown once), list them, revoke them."""

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.template.response import TemplateResponse

from clients.api_keys import ApiKeyError, api_key_issue, api_key_revoke
from clients.models import ApiKey
from wallet_project.admin_lists import OfferedValuesFilter


class IssueApiKeyForm(forms.Form):
    client = forms.ModelChoiceField(
        # API clients: people log into the admin, and never hold keys
        # (api_key_issue refuses them whatever is posted: clients.authentication.staff_refusal).
        queryset=get_user_model()
        .objects.filter(is_active=True, is_staff=False, is_superuser=False)
        .order_by("username"),
        help_text="A client holds at most two live keys: issue the new one, move the client to it, revoke the old.",
    )
    name = forms.CharField(max_length=100, required=False, help_text="What the key is for.")


class ApiKeyStatusFilter(OfferedValuesFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [("live", "Live"), ("revoked", "Revoked")]

    def queryset(self, request, queryset):
        if self.value() in ("live", "revoked"):
            return queryset.filter(revoked_at__isnull=self.value() == "live")
        return queryset


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Keys by prefix. "Add" issues a key through clients.api_keys and shows it
    on the answer page, once, and nowhere else (not in a message, which the
    session or a cookie would keep). A key is never edited or deleted: it is
    revoked (the action), and its row stays as the record."""

    list_display = ("prefix", "client", "name", "created_at", "last_used_at", "revoked_at")
    list_filter = (ApiKeyStatusFilter,)
    list_select_related = ("client",)
    search_fields = ("=prefix", "client__username")
    search_help_text = "A key's prefix (exact) or a client's username."
    fields = ("prefix", "client", "name", "created_at", "last_used_at", "revoked_at")
    readonly_fields = fields
    actions = ["revoke_keys"]

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_revoke_permission(self, request) -> bool:
        return request.user.has_perm("clients.change_apikey")

    @admin.action(description="Revoke selected keys (cannot be undone)", permissions=["revoke"])
    def revoke_keys(self, request, queryset):
        revoked = []
        for api_key in queryset.filter(revoked_at__isnull=True):
            with transaction.atomic():
                api_key_revoke(api_key=api_key)
                self.log_change(request, api_key, "Revoked the key.")
            revoked.append(api_key.prefix)
        if revoked:
            self.message_user(request, f"Revoked {', '.join(revoked)}.", messages.SUCCESS)
        else:
            self.message_user(request, "The selected keys were already revoked.", messages.WARNING)

    def add_view(self, request, form_url="", extra_context=None):
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = IssueApiKeyForm(request.POST if request.method == "POST" else None)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Issue an API key",
            "form": form,
        }
        if form.is_valid():
            try:
                issued = api_key_issue(client=form.cleaned_data["client"], name=form.cleaned_data["name"])
            except ApiKeyError as exc:
                form.add_error(None, str(exc))
            else:
                self.log_addition(request, issued.api_key, "Issued the key.")
                # admin_view already marks every admin page never_cache
                # (Cache-Control: no-store): the key stays out of any cache.
                return TemplateResponse(
                    request,
                    "admin/clients/apikey/issued.html",
                    {**context, "title": "API key issued", "api_key": issued.api_key, "key": issued.key},
                )
        return TemplateResponse(request, "admin/clients/apikey/issue.html", context)
