"""The project's own AppConfig: the admin with its site (settings.INSTALLED_APPS)."""

from django.contrib.admin.apps import AdminConfig


class WalletAdminConfig(AdminConfig):
    """django.contrib.admin, whose default site (admin.site, where every
    ModelAdmin registers) is the project's (admin_lists.WalletAdminSite)."""

    default_site = "wallet_project.admin_lists.WalletAdminSite"
