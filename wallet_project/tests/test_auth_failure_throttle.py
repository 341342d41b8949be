"""Failed authentications are throttled per client address
(wallet_project/throttling.py, AddressFailureThrottle): past the
auth_failures limit a wrong key gets 429 where it got 401, while a live key
from the same address keeps working. The address is the one django-axes and
the request log use (client_address in wallet_project/middleware.py), TRUSTED_PROXY_COUNT
honoured. Requests with no credentials at all have a limit of their own per
address (no_key)."""

import copy
import secrets

import pytest
from rest_framework.test import APIClient

from wallet_project.tests.test_rate_limits import assert_throttled, clock  # noqa: F401 (a fixture)

pytestmark = pytest.mark.django_db

PATH = "/api/wallets?userId=7d0e1c5e-8f6a-4a43-9e4f-0e8d6c1f2a10"
PROXY = "10.0.0.2"


@pytest.fixture
def three_failures_a_minute(settings):
    rest_framework = copy.deepcopy(settings.REST_FRAMEWORK)
    rest_framework["DEFAULT_THROTTLE_RATES"]["auth_failures"] = "3/min"
    settings.REST_FRAMEWORK = rest_framework


@pytest.fixture
def address() -> str:
    """An address of this test alone: the counters outlive a test."""
    return f"2001:db8::{secrets.token_hex(2)}:{secrets.token_hex(2)}"


def get(key: str, **meta):
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return api.get(PATH, **meta)


def wrong_key() -> str:
    return f"wk_{secrets.token_hex(4)}_{secrets.token_urlsafe(32)}"


@pytest.mark.usefixtures("clock")
def test_past_the_limit_a_wrong_key_is_429_and_a_live_key_still_works(three_failures_a_minute, address, treasury_api):
    refused = [get(wrong_key(), REMOTE_ADDR=address) for _ in range(3)]
    assert [r.status_code for r in refused] == [401, 401, 401]

    throttled = get(wrong_key(), REMOTE_ADDR=address)

    assert_throttled(throttled)
    assert "failed authentications" in throttled.json()["message"]
    # Other credentials that fail count too (another scheme, a malformed header).
    assert get("two words", REMOTE_ADDR=address).status_code == 429
    # A client behind the same address (a NAT) is not refused for it.
    assert get(treasury_api.api_key, REMOTE_ADDR=address).status_code == 200
    # Another address has its own count.
    assert get(wrong_key(), REMOTE_ADDR="2001:db8::1").status_code == 401


def test_after_the_window_wrong_keys_are_401_again(clock, three_failures_a_minute, address):  # noqa: F811 (the imported fixture)
    for _ in range(3):
        get(wrong_key(), REMOTE_ADDR=address)
    retry_after = assert_throttled(get(wrong_key(), REMOTE_ADDR=address))

    clock.advance(retry_after)

    assert get(wrong_key(), REMOTE_ADDR=address).status_code == 401


@pytest.mark.usefixtures("clock")
def test_behind_a_proxy_the_count_is_the_address_the_proxy_wrote(settings, three_failures_a_minute, address):
    settings.TRUSTED_PROXY_COUNT = 1
    for _ in range(3):
        assert get(wrong_key(), REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR=address).status_code == 401

    # Rotating what the client writes to the left of it changes nothing...
    for forged in ("198.51.100.1", "198.51.100.2, 198.51.100.3"):
        forwarded = f"{forged}, {address}"
        assert get(wrong_key(), REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR=forwarded).status_code == 429
    # ...and everyone else behind the same proxy is counted apart.
    assert get(wrong_key(), REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR="2001:db8::2").status_code == 401


@pytest.fixture
def three_keyless_requests_a_minute(settings):
    rest_framework = copy.deepcopy(settings.REST_FRAMEWORK)
    rest_framework["DEFAULT_THROTTLE_RATES"]["no_key"] = "3/min"
    settings.REST_FRAMEWORK = rest_framework


@pytest.mark.usefixtures("clock")
@pytest.mark.parametrize("path", [PATH, "/api/events", "/api/schema/"])
def test_requests_without_a_key_have_their_own_limit_per_address(
    path, three_keyless_requests_a_minute, three_failures_a_minute, address, treasury_api
):
    """A request with no credentials at all was never limited: nothing
    authenticated it, so neither a client's scopes nor auth_failures counted
    it. It is counted per address in no_key, apart from wrong keys."""
    refused = [APIClient().get(path, REMOTE_ADDR=address) for _ in range(3)]
    assert [r.status_code for r in refused] == [401, 401, 401]
    assert refused[0].json()["code"] == "not_authenticated"

    throttled = APIClient().get(path, REMOTE_ADDR=address)

    assert_throttled(throttled)
    assert "without an API key" in throttled.json()["message"]
    # Not a failed authentication: a wrong key from that address is still 401...
    assert get(wrong_key(), REMOTE_ADDR=address).status_code == 401
    # ...a live key is never refused for it, and another address has its own count.
    assert get(treasury_api.api_key, REMOTE_ADDR=address).status_code == 200
    assert APIClient().get(path, REMOTE_ADDR=f"{address}:1").status_code == 401


@pytest.mark.usefixtures("clock")
def test_wrong_keys_do_not_use_up_the_limit_of_requests_without_one(
    three_keyless_requests_a_minute, three_failures_a_minute, address
):
    for _ in range(4):
        get(wrong_key(), REMOTE_ADDR=address)

    assert APIClient().get(PATH, REMOTE_ADDR=address).status_code == 401
