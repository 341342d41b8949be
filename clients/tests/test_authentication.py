"""API-key authentication: one query for key, client and permissions; the
per-process cache in front of it, and its invalidation by the credentials
version in Redis, so that a change bites on the very next request.

Changes are made as the admin and the commands make them, through the ORM,
and their after-commit broadcast is run (django_capture_on_commit_callbacks).
Two real web processes: test_api_keys_e2e.py.
"""

import copy

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import Group, Permission
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext, override_settings
from django_redis import get_redis_connection
from rest_framework.test import APIClient

from clients import authentication
from clients.api_keys import api_key_issue, api_key_revoke
from clients.authentication import client_cache
from clients.models import ApiKey
from conftest import make_api_client
from reconciliation.tests.faults import free_port
from transfers.locks import idempotency_lock_name
from transfers.models import TransactionLog
from transfers.tests.test_round_trips import commands, counting_redis_round_trips, transfer
from wallet_project.throttling import TRANSFERS, ClientRateThrottle

pytestmark = pytest.mark.django_db


@pytest.fixture
def auth_cache(settings):
    settings.API_AUTH_CACHE_SECONDS = 10
    client_cache.clear()
    # A running service has a version (the first request to find none sets one).
    authentication.credentials_changed()
    yield
    client_cache.clear()


@pytest.fixture
def wallet(funded_wallet):
    return funded_wallet("0")


def get_wallet(api, wallet):
    return api.get(f"/api/wallets/{wallet.pk}")


def with_key(key: str) -> APIClient:
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return api


# --- cost ------------------------------------------------------------------------------


def test_key_client_and_permissions_cost_one_query(transfer_api, wallet):
    assert get_wallet(transfer_api, wallet).status_code == 200  # notes last_used_at (once an hour)

    with CaptureQueriesContext(connection) as queries:
        response = get_wallet(transfer_api, wallet)

    assert response.status_code == 200
    # The key (with client and permissions) and the wallet itself: nothing for has_perm.
    assert len(queries) == 2, [q["sql"][:80] for q in queries]
    assert "FROM api_keys" in queries[0]["sql"]


def test_the_first_use_in_an_hour_notes_last_used_at_once(transfer_api, wallet):
    api_key = ApiKey.objects.get(client=transfer_api.user)
    assert api_key.last_used_at is None

    with CaptureQueriesContext(connection) as first:
        assert get_wallet(transfer_api, wallet).status_code == 200
    api_key.refresh_from_db()
    noted = api_key.last_used_at
    with CaptureQueriesContext(connection) as second:
        assert get_wallet(transfer_api, wallet).status_code == 200

    assert noted is not None
    assert [q["sql"].startswith("UPDATE") for q in first] == [False, True, False]
    assert not [q for q in second if q["sql"].startswith("UPDATE")]
    api_key.refresh_from_db()
    assert api_key.last_used_at == noted


def test_a_cached_key_costs_no_query_and_no_redis_round_trip_of_its_own(auth_cache, transfer_api, wallet):
    get_wallet(transfer_api, wallet)

    with CaptureQueriesContext(connection) as queries, counting_redis_round_trips() as redis_trips:
        response = get_wallet(transfer_api, wallet)

    assert response.status_code == 200
    assert len(queries) == 1 and "FROM api_keys" not in queries[0]["sql"]
    # The read rate limit's script reads the credentials version too.
    assert [commands(trip) for trip in redis_trips] == [[b"EVALSHA"]]


def test_an_invalid_key_is_refused_and_never_cached(auth_cache, wallet):
    api = with_key("wk_nothere1_" + "x" * 43)

    assert get_wallet(api, wallet).status_code == 401
    assert client_cache._entries == {}


# As a WSGI server hands a header over: its bytes decoded as Latin-1.
@pytest.mark.parametrize(
    "key",
    ["ключ".encode().decode("latin-1"), "\xe9", "a" * 4000, "wk_"],
    ids=["utf8", "not-utf8", "long", "mark-only"],
)
def test_a_malformed_key_is_a_401_in_the_envelope(wallet, key):
    api = with_key(key)

    response = get_wallet(api, wallet)

    assert response.status_code == 401
    assert response.json()["success"] is False


def key_client(api) -> object:
    """The user a key's request runs as (ApiKeyAuthentication, no cache)."""
    user, _identity = authentication.ApiKeyAuthentication().authenticate_credentials(api.api_key)
    return user


class AnswersHasPerm:
    """A backend after ModelBackend that grants everything asked of it."""

    def authenticate(self, request, **credentials):
        return None

    def has_perm(self, user_obj, perm, obj=None):
        return True


def test_a_key_clients_has_perm_loads_no_backend_and_answers_as_django(transfer_api, monkeypatch):
    user = key_client(transfer_api)
    held, not_held = "transfers.create_transfer", "transfers.pay_other_clients"
    expected = {
        (perm, obj): type(user).has_perm(user, perm, obj) for perm in (held, not_held) for obj in (None, object())
    }
    assert expected[(held, None)] and not expected[(not_held, None)]

    # Django's User.has_perm calls get_backends() on every call (import_string per entry).
    monkeypatch.setattr("django.contrib.auth.get_backends", lambda: pytest.fail("backends loaded for has_perm"))
    assert {(perm, obj): user.has_perm(perm, obj) for perm, obj in expected} == expected


def test_another_backend_with_has_perm_is_asked_as_django_asks_it(transfer_api, settings):
    settings.AUTHENTICATION_BACKENDS = [*settings.AUTHENTICATION_BACKENDS, f"{__name__}.AnswersHasPerm"]

    user = key_client(transfer_api)

    assert user.has_perm("transfers.pay_other_clients")


def test_has_perm_is_djangos_under_overridden_backends_and_short_again_after(transfer_api, monkeypatch):
    """override_settings(AUTHENTICATION_BACKENDS=...) resets the cached answer
    (Django's setting_changed signal): with a second backend that has
    has_perm, Django asks it; back to ModelBackend alone, the preloaded
    permissions answer again, without loading a backend."""
    held_elsewhere = "transfers.pay_other_clients"  # not held by the transfer client
    with override_settings(
        AUTHENTICATION_BACKENDS=[*django_settings.AUTHENTICATION_BACKENDS, f"{__name__}.AnswersHasPerm"]
    ):
        assert key_client(transfer_api).has_perm(held_elsewhere)

    user = key_client(transfer_api)
    monkeypatch.setattr("django.contrib.auth.get_backends", lambda: pytest.fail("backends loaded for has_perm"))
    assert not user.has_perm(held_elsewhere)
    assert user.has_perm("transfers.create_transfer")


# --- revocation on the next request ----------------------------------------------------


def test_a_revoked_key_is_refused_on_the_next_request_although_cached(
    auth_cache, transfer_api, wallet, django_capture_on_commit_callbacks
):
    assert get_wallet(transfer_api, wallet).status_code == 200  # cached now

    with django_capture_on_commit_callbacks(execute=True):
        api_key_revoke(api_key=ApiKey.objects.get(client=transfer_api.user))

    response = get_wallet(transfer_api, wallet)
    assert response.status_code == 401
    assert response.json()["code"] == "authentication_failed"


# A money request runs on a cached client unconfirmed until its rate limit's
# round trip reads the credentials version: before anything is stored.


def test_a_revoked_key_moves_no_money_although_cached(
    auth_cache, treasury_api, funded_wallet, django_capture_on_commit_callbacks
):
    source, destination = funded_wallet("10.00"), funded_wallet("0")
    assert transfer(treasury_api, source, destination, key="first").status_code == 201  # cached now

    with django_capture_on_commit_callbacks(execute=True):
        api_key_revoke(api_key=ApiKey.objects.get(client=treasury_api.user))

    response = transfer(treasury_api, source, destination, key="after-revocation")
    assert response.status_code == 401, response.json()
    assert not TransactionLog.objects.filter(idempotency_key="after-revocation").exists()
    # Nor is a finished transaction replayed to it.
    assert transfer(treasury_api, source, destination, key="first").status_code == 401


def transfers_charged(api) -> int:
    """What the client has been charged to the transfers scope in every window so far."""
    redis = get_redis_connection("default")
    pattern = cache.make_key(ClientRateThrottle.cache_format % {"scope": TRANSFERS, "ident": api.user.pk}) + ":*"
    return sum(int(redis.get(name)) for name in redis.scan_iter(pattern))


def test_a_revoked_key_is_neither_charged_nor_locked_although_cached(
    auth_cache, treasury_api, funded_wallet, django_capture_on_commit_callbacks
):
    # The rate limit's script, which takes a first-time request's lock, reads
    # the credentials version first and stops there when it changed.
    source, destination = funded_wallet("10.00"), funded_wallet("0")
    assert transfer(treasury_api, source, destination, key="first").status_code == 201  # cached now
    charged = transfers_charged(treasury_api)

    with django_capture_on_commit_callbacks(execute=True):
        api_key_revoke(api_key=ApiKey.objects.get(client=treasury_api.user))
    response = transfer(treasury_api, source, destination, key="after-revocation")

    assert response.status_code == 401, response.json()
    assert transfers_charged(treasury_api) == charged
    lock = cache.make_key(idempotency_lock_name(treasury_api.user.pk, "after-revocation"))
    assert not get_redis_connection("default").exists(lock)


def test_a_cached_client_under_a_changed_version_is_read_again_then_charged_and_locked(
    auth_cache, treasury_api, funded_wallet
):
    # Another client's change: this one's key is still live, read again from
    # the database, and the request charged (and its lock taken) in a second
    # round trip, the rare path.
    source, destination = funded_wallet("10.00"), funded_wallet("0")
    assert transfer(treasury_api, source, destination, key="first").status_code == 201  # cached now
    charged = transfers_charged(treasury_api)
    authentication.credentials_changed()

    with counting_redis_round_trips() as redis_trips:
        response = transfer(treasury_api, source, destination, key="second")

    assert response.status_code == 201, response.json()
    assert transfers_charged(treasury_api) == charged + 1
    assert [commands(trip) for trip in redis_trips] == [[b"EVALSHA"], [b"EVALSHA"]]


def test_a_first_time_transfer_on_a_cached_key_costs_one_redis_round_trip(auth_cache, treasury_api, funded_wallet):
    source, destination = funded_wallet("10.00"), funded_wallet("0")
    assert transfer(treasury_api, source, destination, key="first").status_code == 201  # cached now

    with counting_redis_round_trips() as redis_trips:
        response = transfer(treasury_api, source, destination, key="second")

    assert response.status_code == 201, response.json()
    # The rate limit's script reads the credentials version and takes the lock.
    assert [commands(trip) for trip in redis_trips] == [[b"EVALSHA"]]


def test_a_revoked_key_is_refused_although_cached_when_its_body_does_not_parse(
    auth_cache, treasury_api, funded_wallet, django_capture_on_commit_callbacks
):
    # A body that does not parse is refused before the view charges the rate
    # limit: the version is read when the response is finalized instead.
    source, destination = funded_wallet("10.00"), funded_wallet("0")
    assert transfer(treasury_api, source, destination, key="first").status_code == 201

    with django_capture_on_commit_callbacks(execute=True):
        api_key_revoke(api_key=ApiKey.objects.get(client=treasury_api.user))

    # No Idempotency-Key header: the key must come from the body, which fails to parse.
    response = treasury_api.post("/api/transfer", b"{not json", content_type="application/json")
    assert response.status_code == 401, response.json()


def test_a_transfer_permission_taken_is_refused_although_cached(
    auth_cache, transfer_api, funded_wallet, django_capture_on_commit_callbacks
):
    source, destination = funded_wallet("10.00"), funded_wallet("0")
    assert transfer(transfer_api, source, destination, key="first").status_code == 201

    with django_capture_on_commit_callbacks(execute=True):
        transfer_api.user.groups.clear()

    response = transfer(transfer_api, source, destination, key="after")
    assert response.status_code == 403, response.json()
    assert not TransactionLog.objects.filter(idempotency_key="after").exists()


def test_a_deactivated_client_is_refused_on_the_next_request_although_cached(
    auth_cache, transfer_api, wallet, django_capture_on_commit_callbacks
):
    assert get_wallet(transfer_api, wallet).status_code == 200

    with django_capture_on_commit_callbacks(execute=True):
        transfer_api.user.is_active = False
        transfer_api.user.save()

    assert get_wallet(transfer_api, wallet).status_code == 401


def test_a_client_taken_out_of_its_group_is_refused_on_the_next_request(
    auth_cache, transfer_api, wallet, django_capture_on_commit_callbacks
):
    assert get_wallet(transfer_api, wallet).status_code == 200

    with django_capture_on_commit_callbacks(execute=True):
        transfer_api.user.groups.clear()

    assert get_wallet(transfer_api, wallet).status_code == 403


def test_a_permission_taken_from_the_group_is_refused_on_the_next_request(
    auth_cache, funded_wallet, django_capture_on_commit_callbacks
):
    readers = Group.objects.create(name="Readers")
    view_wallet = Permission.objects.get(content_type__app_label="wallets", codename="view_wallet")
    readers.permissions.add(view_wallet)
    api = make_api_client("Readers")
    wallet = funded_wallet("0", owner=api.user)
    assert get_wallet(api, wallet).status_code == 200

    with django_capture_on_commit_callbacks(execute=True):
        # From the permission's side: the same through table, the same signal.
        view_wallet.group_set.remove(readers)

    assert get_wallet(api, wallet).status_code == 403


def test_a_permission_granted_is_usable_on_the_next_request(
    auth_cache, funded_wallet, django_capture_on_commit_callbacks
):
    api = make_api_client()
    wallet = funded_wallet("0", owner=api.user)
    assert get_wallet(api, wallet).status_code == 403

    with django_capture_on_commit_callbacks(execute=True):
        api.user.user_permissions.add(Permission.objects.get(codename="view_wallet"))

    assert get_wallet(api, wallet).status_code == 200


def test_a_login_does_not_empty_every_process_cache(
    auth_cache, transfer_api, wallet, django_capture_on_commit_callbacks
):
    get_wallet(transfer_api, wallet)
    version = authentication.credentials_version()

    with django_capture_on_commit_callbacks(execute=True):
        transfer_api.user.save(update_fields=["last_login"])

    assert authentication.credentials_version() == version


def test_a_change_django_never_saw_bites_when_the_cache_entry_expires(
    auth_cache, settings, transfer_api, wallet, monkeypatch
):
    assert get_wallet(transfer_api, wallet).status_code == 200
    # Raw SQL (here a QuerySet.update) sends no signal: the documented limit,
    # bounded by API_AUTH_CACHE_SECONDS.
    type(transfer_api.user).objects.filter(pk=transfer_api.user.pk).update(is_active=False)
    assert get_wallet(transfer_api, wallet).status_code == 200

    later = authentication.monotonic() + settings.API_AUTH_CACHE_SECONDS + 1
    monkeypatch.setattr(authentication, "monotonic", lambda: later)

    assert get_wallet(transfer_api, wallet).status_code == 401


def test_with_redis_unreachable_every_request_reads_the_database(
    auth_cache, settings, transfer_api, wallet, django_capture_on_commit_callbacks
):
    assert get_wallet(transfer_api, wallet).status_code == 200  # cached under the version
    caches = copy.deepcopy(settings.CACHES)
    caches["default"]["LOCATION"] = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens
    settings.CACHES = caches

    with CaptureQueriesContext(connection) as queries:
        assert get_wallet(transfer_api, wallet).status_code == 200
    assert "FROM api_keys" in queries[0]["sql"]

    # The broadcast fails (logged), and is not needed: no process trusts its cache now.
    with django_capture_on_commit_callbacks(execute=True):
        api_key_revoke(api_key=ApiKey.objects.get(client=transfer_api.user))
    assert get_wallet(transfer_api, wallet).status_code == 401


def test_a_lost_version_makes_no_old_entry_valid(auth_cache, transfer_api, wallet):
    # Redis restarted empty: the next request sets a fresh random version,
    # which no entry cached before can carry.
    assert get_wallet(transfer_api, wallet).status_code == 200
    old = authentication.credentials_version()
    authentication.get_redis_connection("default").delete(authentication._version_key())

    assert authentication.credentials_version() is None  # not trusted: read the database
    new = authentication.credentials_version()
    assert new is not None and new != old
    assert client_cache.get(authentication.key_digest(transfer_api.api_key), new) is None


# --- two keys at once --------------------------------------------------------------------


def test_a_client_uses_two_live_keys_at_once_and_keeps_the_new_after_revoking_the_old(
    auth_cache, transfer_api, wallet, django_capture_on_commit_callbacks
):
    old = ApiKey.objects.get(client=transfer_api.user)
    new_api = with_key(api_key_issue(client=transfer_api.user, name="rotation").key)

    assert get_wallet(transfer_api, wallet).status_code == 200
    assert get_wallet(new_api, wallet).status_code == 200

    with django_capture_on_commit_callbacks(execute=True):
        api_key_revoke(api_key=old)

    assert get_wallet(transfer_api, wallet).status_code == 401
    assert get_wallet(new_api, wallet).status_code == 200
