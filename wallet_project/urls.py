from django.contrib import admin
from django.urls import include, path, re_path
from django.views.decorators.csrf import csrf_exempt
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import IsAuthenticated
from rest_framework.settings import api_settings

from wallet_project import exceptions
from wallet_project.health import health
from wallet_project.metrics import metrics_view
from wallet_project.schema import DocsView, SchemaView

# The schema and docs need an API key like every /api/ endpoint (the API's
# own authentication, from settings), or a staff session from the admin (so
# a person can browse them).
DOCS_ACCESS = {
    "authentication_classes": [*api_settings.DEFAULT_AUTHENTICATION_CLASSES, SessionAuthentication],
    "permission_classes": [IsAuthenticated],
}

api_urlpatterns = [
    # (The money routes are not here: urlpatterns, below.)
    path("", include("wallets.urls")),
    path("", include("events.urls")),
    path("schema/", SchemaView.as_view(**DOCS_ACCESS), name="schema"),
    path("docs/", DocsView.as_view(url_name="schema", **DOCS_ACCESS), name="docs"),
    # Last: any other /api/ path is a JSON 404, in DEBUG too (where Django
    # would otherwise answer with its HTML debug page).
    # csrf_exempt: a POST to a path no view claims is a 404, not a CSRF 403.
    re_path(r"^.*$", csrf_exempt(exceptions.handler404), name="api-not-found"),
]

# The admin's lists fit 1440 px beside their filters (docs/operations.md, "The
# admin's lists"); the navigation sidebar would take a fifth of that, and the
# home page and the breadcrumbs lead everywhere it does.
admin.site.enable_nav_sidebar = False

urlpatterns = [
    # The money routes first, one level down rather than two: the busiest
    # route is then among the first Django tries (after the batch's two,
    # transfers/urls.py), and each level of include makes its own
    # ResolverMatch. Resolving POST /api/transfer: 119K -> 81K
    # instructions (callgrind, 1000 resolves).
    path("api/", include("transfers.urls")),
    path("health", health, name="health"),
    path("metrics", metrics_view, name="metrics"),
    path("api/", include(api_urlpatterns)),
    path("admin/", admin.site.urls),
]

handler400 = exceptions.handler400
handler403 = exceptions.handler403
handler404 = exceptions.handler404
handler500 = exceptions.handler500
