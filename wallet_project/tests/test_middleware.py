"""The browser middleware (static files, session, user, messages) runs for the
admin and the API docs, never on the token API."""

import pytest

pytestmark = pytest.mark.django_db


def browser_state(request) -> dict:
    return {name: hasattr(request, name) for name in ("session", "user", "_messages")}


def test_the_token_api_gets_no_session_user_or_messages(treasury_api, funded_wallet):
    wallet = funded_wallet("1.00")

    response = treasury_api.get(f"/api/wallets/{wallet.pk}")

    assert response.status_code == 200
    request = response.wsgi_request
    assert (hasattr(request, "session"), hasattr(request, "_messages")) == (False, False)
    # The user on the request is the one DRF authenticated by the token.
    assert request.user == treasury_api.user


def test_an_admin_session_does_not_open_the_token_api(client, admin_user, funded_wallet):
    wallet = funded_wallet("1.00")
    client.force_login(admin_user)

    response = client.get(f"/api/wallets/{wallet.pk}")

    assert response.status_code == 401
    request = response.wsgi_request
    assert (hasattr(request, "session"), hasattr(request, "_messages")) == (False, False)
    # DRF found no token: nobody, not the admin of the cookie.
    assert request.user is None


@pytest.mark.parametrize("path", ["/admin/", "/api/docs/", "/api/schema/"])
def test_the_admin_and_the_docs_keep_them(client, admin_user, path):
    client.force_login(admin_user)

    response = client.get(path)

    assert response.status_code == 200
    assert browser_state(response.wsgi_request) == {"session": True, "user": True, "_messages": True}
    assert response.wsgi_request.user == admin_user


def test_the_browser_middleware_is_passed_by_on_the_token_api_only(monkeypatch, client):
    from whitenoise.middleware import WhiteNoiseMiddleware

    looked_up = []
    upstream = WhiteNoiseMiddleware.__call__

    def recording(self, request):
        looked_up.append(request.path)
        return upstream(self, request)

    monkeypatch.setattr(WhiteNoiseMiddleware, "__call__", recording)

    for path in ("/api/transfers", "/static/admin/css/base.css", "/api/docs/", "/admin/login/"):
        client.get(path)

    assert looked_up == ["/static/admin/css/base.css", "/api/docs/", "/admin/login/"]


def test_a_chain_without_its_end_stops_at_start_up():
    from django.core.exceptions import ImproperlyConfigured
    from django.core.handlers.base import BaseHandler
    from django.test import override_settings

    with (
        override_settings(MIDDLEWARE=["wallet_project.middleware.BrowserChain"]),
        pytest.raises(ImproperlyConfigured, match="BrowserChainEnd"),
    ):
        BaseHandler().load_middleware()


@pytest.mark.parametrize("path", ["/api/docs/", "/api/schema/"])
def test_a_cors_preflight_to_the_docs_carries_the_policy_the_token_api_none(settings, client, path):
    """A preflight is answered by CorsMiddleware itself, before any view:
    the Content-Security-Policy must sit outside it to reach that answer."""
    settings.CORS_ALLOWED_ORIGINS = ["https://app.example"]
    preflight = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}

    docs = client.options(path, headers=preflight)
    token_api = client.options("/api/transfer", headers=preflight)

    assert docs["Access-Control-Allow-Origin"] == "https://app.example"
    assert docs["Content-Security-Policy"] == settings.CONTENT_SECURITY_POLICY
    assert token_api["Access-Control-Allow-Origin"] == "https://app.example"
    assert "Content-Security-Policy" not in token_api.headers
