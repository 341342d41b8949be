"""Every admin list's filters, through the admin's own views, the project's
and those of django.contrib.auth and django-axes: a filter value holding a
NUL is a 400, never a 500 from PostgreSQL, which holds no NUL in text
(wallet_project/admin_lists.py, WalletAdminSite)."""

import pytest
from django.contrib import admin
from django.urls import reverse

from wallets.tests.test_admin import staff_client

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("migrated_groups")]

FILTERED = [model_admin for model_admin in admin.site._registry.values() if model_admin.list_filter]


@pytest.mark.parametrize("model_admin", FILTERED, ids=lambda m: type(m).__name__)
def test_a_nul_in_any_filter_value_of_any_list_is_a_400(model_admin):
    client = staff_client(is_superuser=True)
    opts = model_admin.model._meta
    changelist = reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
    parameters = [
        parameter
        for spec in client.get(changelist).context["cl"].filter_specs
        for parameter in spec.expected_parameters()
    ]
    assert parameters
    for parameter in parameters:
        response = client.get(changelist, {parameter: "a\x00b"})
        assert (parameter, response.status_code) == (parameter, 400)
