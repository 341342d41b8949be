"""Where webhooks may go (events/webhook_addresses.py): one rule, from what
an address is, on a table of every spelling, applied at registration (a 400
that changes nothing) and at each delivery (test_webhooks.py)."""

import socket
import threading
import time

import pytest

from conftest import make_api_client
from events.models import WebhookEndpoint
from events.webhook_addresses import LoopbackRefused, Unresolvable, UnsafeAddress, address_allowed, resolve_allowed

PUBLIC = [
    "8.8.8.8",
    "2606:4700:4700::1111",
    "2a00:1450:4001:81c::200e",
    "::ffff:8.8.8.8",  # IPv4-mapped: the IPv4 host itself
    "64:ff9b::8.8.8.8",  # NAT64 to a public address
    "64:ff9b::808:808",
    "2002:808:808::1",  # 6to4 through a public address
    "192.88.99.1",  # the 6to4 relay anycast, a public address
]
REFUSED = [
    # IPv4: private, shared, link-local (cloud metadata), this network, broadcast, multicast, reserved, special
    *("10.1.2.3", "172.16.0.1", "192.168.1.1", "100.64.0.1", "169.254.169.254", "0.0.0.0", "255.255.255.255"),  # noqa: S104
    *("224.0.0.1", "240.0.0.1", "198.18.0.1", "192.0.0.1", "192.0.2.1"),
    # IPv4-mapped, however written
    *("::ffff:10.0.0.1", "::ffff:a00:1", "0:0:0:0:0:ffff:0a00:0001", "::FFFF:169.254.169.254"),
    # IPv4-compatible ::a.b.c.d (deprecated): refused whole, a public one too
    *("::10.0.0.1", "::a00:1", "::8.8.8.8", "::"),
    # IPv4-translated ::ffff:0:a.b.c.d: refused whole
    *("::ffff:0:10.0.0.1", "::ffff:0:a00:1", "::ffff:0:8.8.8.8"),
    # NAT64 well-known prefix to a non-public address, however written
    *("64:ff9b::10.0.0.1", "64:ff9b::a00:1", "64:FF9B::A9FE:A9FE", "0064:ff9b:0000:0000:0000:0000:0a00:0001"),
    *("64:ff9b::127.0.0.1", "64:ff9b::c0a8:101"),
    # NAT64 local-use prefix: refused whole
    *("64:ff9b:1::a00:1", "64:ff9b:1::808:808", "64:ff9b:1:ffff::1"),
    # 6to4 through a non-public address
    *("2002:a00:1::1", "2002:7f00:1::", "2002:a9fe:a9fe::1", "2002:c0a8:0101:0:0:0:0:1", "2002:6440:1::1"),
    # Teredo: refused whole
    *("2001::1", "2001:0:4136:e378:8000:63bf:3fff:fdd2", "2001:0:a00:1::"),
    # site-local (deprecated), unique local, link-local (with a scope), multicast, documentation, discard
    *("fec0::1", "FEC0:0:0:1::1", "feff::1", "fd00::1", "fc00::1", "fe80::1", "fe80::1%eth0"),
    *("ff02::1", "ff0e::1", "2001:db8::1", "100::1"),
]
LOOPBACK = ["127.0.0.1", "127.255.255.254", "::1", "0:0:0:0:0:0:0:1", "::ffff:127.0.0.1", "::ffff:7f00:1"]


@pytest.mark.parametrize("address", PUBLIC)
def test_a_public_address_is_allowed(address, settings):
    settings.WEBHOOK_ALLOW_LOOPBACK = False
    assert address_allowed(address) is True


@pytest.mark.parametrize("address", REFUSED)
def test_an_address_that_is_or_carries_a_non_public_one_is_refused_with_or_without_loopback(address, settings):
    for allow_loopback in (False, True):
        settings.WEBHOOK_ALLOW_LOOPBACK = allow_loopback
        assert address_allowed(address) is False


@pytest.mark.parametrize("address", LOOPBACK)
def test_loopback_only_while_the_setting_allows_it(address, settings):
    settings.WEBHOOK_ALLOW_LOOPBACK = False
    assert address_allowed(address) is False
    settings.WEBHOOK_ALLOW_LOOPBACK = True
    assert address_allowed(address) is True


def test_a_name_is_checked_on_every_address_it_resolves_to(settings, monkeypatch):
    settings.WEBHOOK_ALLOW_LOOPBACK = False
    # "localhost" passes any check of the URL's text; its address does not.
    with pytest.raises(LoopbackRefused, match="WEBHOOK_ALLOW_LOOPBACK"):
        resolve_allowed("localhost", 80)
    settings.WEBHOOK_ALLOW_LOOPBACK = True
    assert resolve_allowed("localhost", 80) in ("127.0.0.1", "::1")

    # A name that mixes a public address with an internal one is refused, without saying which.
    def resolves_to(*addresses):
        return lambda host, port, **kwargs: [
            (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in addresses
        ]

    monkeypatch.setattr(socket, "getaddrinfo", resolves_to("8.8.8.8", "64:ff9b::a9fe:a9fe"))
    with pytest.raises(UnsafeAddress) as refused:
        resolve_allowed("hooks.example.com", 443)
    assert "hooks.example.com" in str(refused.value) and "a9fe" not in str(refused.value)
    monkeypatch.setattr(socket, "getaddrinfo", resolves_to("8.8.8.8"))
    assert resolve_allowed("hooks.example.com", 443) == "8.8.8.8"


def bracketed(address: str) -> str:
    return f"[{address.replace('%', '%25')}]" if ":" in address else address


@pytest.mark.parametrize("address", [a for a in REFUSED if not a.startswith("fe80::1%")] + LOOPBACK)
def test_registering_a_url_at_a_refused_address_is_a_400_that_stores_nothing(address, wallet_owner, settings):
    settings.WEBHOOK_ALLOW_LOOPBACK = False
    api = make_api_client("Treasury client", user=wallet_owner)
    url = f"https://{bracketed(address)}/hooks"
    response = api.post("/api/webhook-endpoints", {"url": url, "eventTypes": ["wallet.frozen"]}, format="json")

    assert response.status_code == 400, response.json()
    body = response.json()
    assert body["success"] is False and body["code"] == "validation_error"
    (message,) = body["errors"]["url"]
    assert "WEBHOOK_ALLOW_LOOPBACK" in message if address in LOOPBACK else "not a public address" in message
    assert not WebhookEndpoint.objects.exists()


@pytest.mark.parametrize(
    "host", ["localhost", "127.1", "0x7f.0.0.1", "2130706433", "017700000001", "[::1]", "[::ffff:127.0.0.1]"]
)
def test_every_spelling_of_loopback_is_a_400_naming_the_setting(host, wallet_owner, settings):
    settings.WEBHOOK_ALLOW_LOOPBACK = False
    api = make_api_client("Treasury client", user=wallet_owner)
    response = api.post(
        "/api/webhook-endpoints", {"url": f"http://{host}:8299/hooks", "eventTypes": ["wallet.frozen"]}, format="json"
    )

    assert response.status_code == 400, response.json()
    (message,) = response.json()["errors"]["url"]
    assert "is a loopback address" in message and "WEBHOOK_ALLOW_LOOPBACK=true" in message
    assert not WebhookEndpoint.objects.exists()


@pytest.fixture
def dns_that_never_answers(monkeypatch):
    """Looking up *.slow.example.com waits (as a DNS server that drops
    queries leaves the resolver waiting) until the test ends, then fails;
    anything else is resolved as usual. Lists the names looked up."""
    release, looked_up, real = threading.Event(), [], socket.getaddrinfo

    def getaddrinfo(host, port, *args, flags=0, **kwargs):
        if flags & socket.AI_NUMERICHOST:  # reading an address, not a lookup
            return real(host, port, *args, flags=flags, **kwargs)
        looked_up.append(host)
        if host.endswith("slow.example.com"):
            release.wait(10)
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield looked_up
    release.set()
    # The lookups end and free their places before the next test registers a name.
    for thread in threading.enumerate():
        if thread.name == "webhook-address-lookup":
            thread.join(5)


def register(api, url: str):
    return api.post("/api/webhook-endpoints", {"url": url, "eventTypes": ["wallet.frozen"]}, format="json")


def test_registration_waits_for_a_host_name_at_most_the_lookup_time(dns_that_never_answers, wallet_owner):
    # The lookup ran in the request for as long as the resolver waited: a
    # client registering such names from every web thread stalled the API
    # for every client. Not resolved in time is "does not resolve yet".
    api = make_api_client("Treasury client", user=wallet_owner)
    started = time.monotonic()

    response = register(api, "https://a.slow.example.com/h")

    assert time.monotonic() - started < 3.5  # LOOKUP_SECONDS, 2 s, and a margin
    assert response.status_code == 201, response.json()
    assert dns_that_never_answers.count("a.slow.example.com") == 1


def test_one_registration_lookup_at_a_time_per_process_and_addresses_need_none(
    dns_that_never_answers, wallet_owner, settings
):
    settings.WEBHOOK_ALLOW_LOOPBACK = False
    api = make_api_client("Treasury client", user=wallet_owner)
    register(api, "https://a.slow.example.com/h")  # its lookup still hangs
    started = time.monotonic()

    # Another name is not looked up now: accepted at once (deliveries check it).
    assert register(api, "https://hooks.example.com/h").status_code == 201
    # An address, however written, is read without a lookup: refused at once.
    for url in ("http://127.1:8299/h", "http://2130706433/h", "http://[::ffff:a00:1]/h"):
        assert register(api, url).status_code == 400, url

    assert time.monotonic() - started < 1.0
    assert "hooks.example.com" not in dns_that_never_answers


def test_delivery_lookups_that_never_answer_are_bounded_per_process(dns_that_never_answers):
    lookups = threading.BoundedSemaphore(2)
    for n in range(2):
        with pytest.raises(Unresolvable, match="no answer within"):
            resolve_allowed(f"{n}.slow.example.com", 443, timeout=0.1, lookups=lookups)

    started = time.monotonic()
    with pytest.raises(Unresolvable, match="too many lookups in progress"):
        resolve_allowed("hooks.example.com", 443, lookups=lookups)

    assert time.monotonic() - started < 0.1
    assert "hooks.example.com" not in dns_that_never_answers, "no third lookup"
