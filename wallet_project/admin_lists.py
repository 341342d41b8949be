"""What every admin list shares, whatever app's rows it shows: the site,
which reads no NUL from a query string, a paginator that never counts a big
table row by row, filters that take only a value they offer (the currency
filter among them), read-only pages, and how an id is shown and searched.
The ground floor, so that each app's admin (wallets, events, transfers,
corrections) takes it from below."""

import uuid
from functools import wraps

from django.conf import settings
from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import BadRequest
from django.core.paginator import Paginator
from django.db import connection
from django.utils.functional import cached_property
from django.utils.html import format_html


class EstimatedCountPaginator(Paginator):
    """A paginator that never counts a big table row by row.

    The admin's paginator asks for COUNT(*) of the filtered list on every
    page; over a million transaction logs that is a full scan per click.
    Instead: count at most EXACT_COUNT_LIMIT + 1 matching rows (exact for any
    list that fits in a few pages, cheap however big the table); past that,
    an unfiltered list takes PostgreSQL's own estimate of the table's size
    (pg_class.reltuples, kept by autovacuum) and a filtered one says
    "EXACT_COUNT_LIMIT + 1", which still pages through the first hundred pages.
    It never undercounts a short list: the admin shows a list it believes
    fits on one page unpaginated.
    """

    EXACT_COUNT_LIMIT = 10_000

    @cached_property
    def count(self) -> int:
        # Ordering is irrelevant to a count, and would make PostgreSQL sort
        # the whole table before taking the first rows.
        capped = self.object_list.order_by()[: self.EXACT_COUNT_LIMIT + 1].count()
        if capped <= self.EXACT_COUNT_LIMIT or self.object_list.query.where:
            return capped
        return max(capped, table_size_estimate(self.object_list.model._meta.db_table))


def table_size_estimate(table: str) -> int:
    """PostgreSQL's row estimate for a table; -1 when it was never analysed."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass", [table])
        return cursor.fetchone()[0]


class WalletAdminSite(admin.AdminSite):
    """The admin's site (wallet_project.apps.WalletAdminConfig): Django's,
    with one rule for the query string of every admin page, the project's
    and those django.contrib.auth and django-axes register alike: no NUL.
    PostgreSQL holds no NUL in text, and the list filters (Django's own
    field filters among them) hand a value to it as it came: a NUL there was
    a 500 (DataError). It is a 400 (BadRequest), before the page runs."""

    def admin_view(self, view, cacheable=False):
        """Django's admin_view(view), refusing a query string with a NUL in
        a name or a value first."""
        page = super().admin_view(view, cacheable)

        @wraps(page)
        def readable(request, *args, **kwargs):
            if any("\x00" in name or any("\x00" in value for value in values) for name, values in request.GET.lists()):
                raise BadRequest("The query string holds a NUL character.")
            return page(request, *args, **kwargs)

        return readable


class OfferedValuesFilter(admin.SimpleListFilter):
    """A list filter that takes only a value it offers (one of its
    lookups). Its value comes from the query string as any text; one it
    does not offer (an owner or tier filter's "abc") is the admin's own
    answer to a bad filter value, as a field filter gives it:
    IncorrectLookupParameters, so the list again without filters, flagged
    ?e=1. Otherwise its queryset would read it as an id: a ValueError, a
    500."""

    def __init__(self, request, params, model, model_admin):
        super().__init__(request, params, model, model_admin)
        value = self.value()
        if value is not None and value not in {str(offered) for offered, _ in self.lookup_choices}:
            raise IncorrectLookupParameters(f"{self.parameter_name}: not a value this filter offers.")


class CurrencyListFilter(OfferedValuesFilter):
    """Currency from the configured list. The admin's default filter for a
    plain CharField runs SELECT DISTINCT over the whole table on every page."""

    title = "currency"
    parameter_name = "currency"

    def lookups(self, request, model_admin):
        return [(code, code) for code in settings.SUPPORTED_CURRENCIES]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(currency=self.value())
        return queryset


class ReadOnlyAdminMixin:
    """No add, change or delete, whatever the user's permissions: superusers
    too, since has_perm is always true for them. What may still happen is
    offered as actions, each with its own permission."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


def short_id(value: uuid.UUID) -> str:
    """A UUID as the lists show it: its first 8 characters and an ellipsis
    ("fb3403f0…"), so that a column fits 1440 px (docs/operations.md, "The
    admin's lists"); the whole id is on hover and on the object's page."""
    return f"{str(value)[:8]}…"


def short_id_html(value: uuid.UUID | None) -> str:
    """short_id with the whole id on hover; "-" for none."""
    return format_html('<span title="{}">{}</span>', value, short_id(value)) if value else "-"


def parse_uuid(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text.strip())
    except ValueError:
        return None
