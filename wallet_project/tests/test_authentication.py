"""The token authentication: one query for token, user and permissions, and the
short per-process cache in front of it."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.authtoken.models import Token

from conftest import make_api_client
from wallet_project import authentication
from wallet_project.authentication import token_cache

pytestmark = pytest.mark.django_db


@pytest.fixture
def auth_cache(settings):
    settings.API_AUTH_CACHE_SECONDS = 10
    token_cache.clear()
    yield
    token_cache.clear()


def test_token_user_and_permissions_cost_one_query(transfer_api, funded_wallet):
    wallet = funded_wallet("0")
    with CaptureQueriesContext(connection) as queries:
        response = transfer_api.get(f"/api/wallets/{wallet.pk}")

    assert response.status_code == 200
    # The token query (with the permissions) and the wallet itself: nothing for has_perm.
    assert len(queries) == 2
    assert "authtoken_token" in queries[0]["sql"]


def test_a_cached_token_skips_the_query(auth_cache, transfer_api, funded_wallet):
    wallet = funded_wallet("0")
    transfer_api.get(f"/api/wallets/{wallet.pk}")

    with CaptureQueriesContext(connection) as queries:
        response = transfer_api.get(f"/api/wallets/{wallet.pk}")

    assert response.status_code == 200
    assert len(queries) == 1
    assert "authtoken_token" not in queries[0]["sql"]


def test_without_the_cache_a_deleted_token_is_refused_at_once(transfer_api, funded_wallet):
    wallet = funded_wallet("0")
    assert transfer_api.get(f"/api/wallets/{wallet.pk}").status_code == 200

    Token.objects.filter(user=transfer_api.user).delete()

    assert transfer_api.get(f"/api/wallets/{wallet.pk}").status_code == 401


def test_the_cache_forgets_a_token_after_its_ttl(auth_cache, settings, transfer_api, funded_wallet, monkeypatch):
    wallet = funded_wallet("0")
    assert transfer_api.get(f"/api/wallets/{wallet.pk}").status_code == 200
    Token.objects.filter(user=transfer_api.user).delete()
    # Within the TTL the revoked token still works: the documented price of the cache.
    assert transfer_api.get(f"/api/wallets/{wallet.pk}").status_code == 200

    later = authentication.monotonic() + settings.API_AUTH_CACHE_SECONDS + 1
    monkeypatch.setattr(authentication, "monotonic", lambda: later)

    assert transfer_api.get(f"/api/wallets/{wallet.pk}").status_code == 401


def test_an_invalid_token_is_never_cached(auth_cache, funded_wallet):
    api = make_api_client("Transfer client")
    api.credentials(HTTP_AUTHORIZATION="Token " + "0" * 40)

    assert api.get("/api/wallets?userId=00000000-0000-0000-0000-000000000000").status_code == 401
    assert token_cache.get("0" * 40) is None
