"""django-axes on the admin login, behind the proxies it is deployed behind:
a lockout holds one username at one client address, and the client address
is the one the outermost trusted proxy saw (TRUSTED_PROXY_COUNT), never what
the client wrote into X-Forwarded-For itself."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
PROXY = "10.0.0.2"  # the nearest proxy: REMOTE_ADDR of every request behind it
PASSWORD = "right-horse-battery"


@pytest.fixture
def staff(django_user_model):
    for name in ("boss", "deputy"):
        django_user_model.objects.create_superuser(name, f"{name}@example.com", PASSWORD)


@pytest.fixture
def behind_one_proxy(settings):
    """One trusted proxy (client_address in wallet_project/middleware.py reads the setting on
    each request; settings.py as a whole is read under it in a process of
    its own, below)."""
    settings.TRUSTED_PROXY_COUNT = 1


def login(username: str, password: str, *, address: str = "203.0.113.7", forwarded_for: str | None = None):
    """One admin login from a fresh browser; the response."""
    meta = {"REMOTE_ADDR": address}
    if forwarded_for is not None:
        meta["HTTP_X_FORWARDED_FOR"] = forwarded_for
    return Client().post("/admin/login/", {"username": username, "password": password}, **meta)


def lock_out(settings, username: str, **where) -> None:
    for _ in range(settings.AXES_FAILURE_LIMIT):
        login(username, "wrong", **where)
    assert login(username, PASSWORD, **where).status_code == 429, "locked out where the failures came from"


def test_failures_lock_that_username_at_that_address_only(settings, staff):
    lock_out(settings, "boss", address="203.0.113.7")

    # Another staff member at the same address (an office behind one NAT).
    assert login("deputy", PASSWORD, address="203.0.113.7").status_code == 302
    # The same staff member from elsewhere: a guesser cannot lock them out everywhere.
    assert login("boss", PASSWORD, address="198.51.100.20").status_code == 302


def test_behind_a_proxy_each_client_address_is_its_own(settings, staff, behind_one_proxy):
    lock_out(settings, "boss", address=PROXY, forwarded_for="203.0.113.7")

    assert login("boss", PASSWORD, address=PROXY, forwarded_for="198.51.100.20").status_code == 302
    assert login("deputy", PASSWORD, address=PROXY, forwarded_for="203.0.113.7").status_code == 302


def test_behind_a_proxy_a_forged_forwarded_for_does_not_escape_the_lockout(settings, staff, behind_one_proxy):
    """The proxy appends the address it was called from; what the client
    wrote to the left of it is not read, so rotating it changes nothing."""
    lock_out(settings, "boss", address=PROXY, forwarded_for="203.0.113.7")

    for forged in ("198.51.100.1", "198.51.100.2, 198.51.100.3", "not-an-address"):
        response = login("boss", PASSWORD, address=PROXY, forwarded_for=f"{forged}, 203.0.113.7")
        assert response.status_code == 429, forged


def test_without_trusted_proxies_x_forwarded_for_is_ignored(settings, staff):
    lock_out(settings, "boss", address="203.0.113.7", forwarded_for="198.51.100.1")

    # A new X-Forwarded-For from the same address is the same client.
    assert login("boss", PASSWORD, address="203.0.113.7", forwarded_for="198.51.100.99").status_code == 429


# Failed logins hash too (for unknown usernames, so as not to tell them apart):
# fast first, and the default still there for the fixture's passwords.
FAST_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher", "django.contrib.auth.hashers.PBKDF2PasswordHasher"]


def test_a_password_spray_from_one_address_is_locked_out_at_the_address_limit(settings, django_user_model):
    """23 usernames x 4 passwords from one address: each username stays under
    its own limit, the address does not. Its owners still sign in elsewhere."""
    settings.AXES_ADDRESS_FAILURE_LIMIT = 20
    # A fast hasher: 92 logins with the real one take a minute here.
    settings.PASSWORD_HASHERS = FAST_HASHERS
    names = [f"staff{n}" for n in range(23)]
    for name in names:
        django_user_model.objects.create_superuser(name, f"{name}@example.com", PASSWORD)
    spray = [(name, guess) for guess in ("Winter2026!", "Password1", "letmein", "qwerty123") for name in names]

    answers = [login(name, guess, address="203.0.113.66").status_code for name, guess in spray]

    limit = settings.AXES_ADDRESS_FAILURE_LIMIT
    # The form again, with the error; the failure that reaches the limit is answered 429.
    assert answers[: limit - 1] == [200] * (limit - 1)
    assert set(answers[limit - 1 :]) == {429}
    # Even the right password, for a username never guessed at, from that address.
    django_user_model.objects.create_superuser("fresh", "fresh@example.com", PASSWORD)
    assert login("fresh", PASSWORD, address="203.0.113.66").status_code == 429
    assert login("staff0", PASSWORD, address="198.51.100.20").status_code == 302


def test_below_the_address_limit_others_at_that_address_sign_in(settings, staff):
    """An office behind one NAT: a few people mistyping does not lock the rest out."""
    settings.AXES_ADDRESS_FAILURE_LIMIT = 20
    settings.PASSWORD_HASHERS = FAST_HASHERS
    for n in range(settings.AXES_ADDRESS_FAILURE_LIMIT - 1):
        login(f"typo{n}", "wrong")

    assert login("boss", PASSWORD).status_code == 302


CLIENT_ADDRESS_SCRIPT = """
import sys
import django
django.setup()
from axes.helpers import get_client_ip_address
from django.test import RequestFactory
for remote, forwarded in [line.split("|") for line in sys.stdin.read().splitlines()]:
    meta = {"REMOTE_ADDR": remote}
    if forwarded:
        meta["HTTP_X_FORWARDED_FOR"] = forwarded
    print(get_client_ip_address(RequestFactory().get("/admin/login/", **meta)))
"""


def client_addresses(trusted_proxies: int, requests: list[tuple[str, str]]) -> list[str]:
    """What django-axes takes as the client address of each (REMOTE_ADDR,
    X-Forwarded-For), with settings.py read under TRUSTED_PROXY_COUNT."""
    result = subprocess.run(
        [sys.executable, "-c", CLIENT_ADDRESS_SCRIPT],
        input="\n".join(f"{remote}|{forwarded}" for remote, forwarded in requests),
        cwd=ROOT,
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "wallet_project.settings",
            "TRUSTED_PROXY_COUNT": str(trusted_proxies),
        },
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.split()


def test_trusted_proxy_count_picks_the_address_the_outermost_proxy_wrote():
    requests = [
        ("203.0.113.7", ""),  # straight from the client
        (PROXY, "203.0.113.7"),  # through one proxy
        (PROXY, "6.6.6.6, 203.0.113.7"),  # the client wrote an X-Forwarded-For of its own
        ("10.0.0.3", "6.6.6.6, 203.0.113.7, 10.0.0.2"),  # load balancer, then nginx
    ]

    assert client_addresses(0, requests) == ["203.0.113.7", PROXY, PROXY, "10.0.0.3"]
    assert client_addresses(1, requests[1:3]) == ["203.0.113.7", "203.0.113.7"]
    assert client_addresses(2, requests[3:]) == ["203.0.113.7"]
