"""Where webhooks may go: one rule, applied when an endpoint is registered
and again at each delivery, on the addresses its host resolves to then
(docs/api.md, "Events and webhooks").

A webhook is a request the service makes on a client's behalf, so a URL
must never reach into the service's own network (SSRF): only public
addresses, decided from what the address is, however it is written. An IPv6
address can carry an IPv4 one inside it, and reaching it reaches that IPv4
host (a NAT64 gateway, a 6to4 relay, or the kernel for a mapped address):
such an address is as public as the IPv4 address it carries.
"""

import ipaddress
import socket
import threading

from django.conf import settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# IPv6 networks whose last 32 bits are an IPv4 address that the traffic goes to.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052, the well-known NAT64 prefix
# IPv6 networks refused whatever they carry: none is a host on the internet.
_NEVER = (
    ipaddress.IPv6Network("::/96"),  # IPv4-compatible ::a.b.c.d (RFC 4291, deprecated); :: and ::1 too
    ipaddress.IPv6Network("::ffff:0:0:0/96"),  # IPv4-translated ::ffff:0:a.b.c.d (RFC 2765)
    ipaddress.IPv6Network("64:ff9b:1::/48"),  # local-use NAT64 (RFC 8215): a network's own translator
    ipaddress.IPv6Network("2001::/32"),  # Teredo: a tunnel to an IPv4 address and port it hides (RFC 4380)
    ipaddress.IPv6Network("fec0::/10"),  # site-local (RFC 3879, deprecated), private in practice
)


# How long registration waits for a host name to resolve, in seconds. The
# lookup runs while the client waits: a name whose DNS server never answers
# held a web thread for the resolver's whole timeout (10 s and more), and a
# client doing so from every thread stalled every client's API (docs/api.md,
# "Events and webhooks").
LOOKUP_SECONDS = 2.0
# How many name lookups run at once in a process; a lookup past its wait goes
# on in its thread until the resolver gives up, so each kind is bounded. Past
# the bound a name is not resolved now: registration accepts it (each
# delivery checks it again), a delivery attempt fails and is retried.
# Registration: one per web process, fewer than its threads, so that no
# client can hold them all. Delivery: one attempt at a time per worker, and a
# slow name's lookup must not fail the other clients' attempts after it.
REGISTRATION_LOOKUPS = threading.BoundedSemaphore(1)
DELIVERY_LOOKUPS = threading.BoundedSemaphore(16)


class UnsafeAddress(Exception):
    """The URL's host resolves to an address deliveries may not reach. The
    message names the host, never the address (it may be internal)."""


class Unresolvable(UnsafeAddress):
    """The host name does not resolve (now)."""


class LoopbackRefused(UnsafeAddress):
    """The host is a loopback address and WEBHOOK_ALLOW_LOOPBACK is off."""


def address_allowed(address: str) -> bool:
    """May a delivery connect to `address` (an IPv4 or IPv6 address as
    getaddrinfo gives it, with or without a %scope)? Public addresses only:
    global, not multicast, and not carrying a non-public IPv4 address
    (NAT64 64:ff9b::/96 and 6to4 2002::/16 are as public as the address they
    carry; ::ffff:a.b.c.d is that IPv4 address); the forms in _NEVER are
    refused whole. Loopback only while WEBHOOK_ALLOW_LOOPBACK is on
    (development, tests). Raises ValueError for text that is no address."""
    ip = _unmapped(ipaddress.ip_address(address.split("%", 1)[0]))
    if ip.is_loopback:
        return settings.WEBHOOK_ALLOW_LOOPBACK
    return _public(ip)


def _unmapped(ip: IPAddress) -> IPAddress:
    """::ffff:a.b.c.d is the IPv4 host a.b.c.d, to the kernel as to us."""
    return ip.ipv4_mapped if ip.version == 6 and ip.ipv4_mapped is not None else ip


def _public(ip: IPAddress) -> bool:
    if ip.is_multicast:
        return False
    if ip.version == 4:
        return ip.is_global
    if any(ip in network for network in _NEVER):
        return False
    if ip in _NAT64:
        return _public(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    if ip.sixtofour is not None:
        return _public(ip.sixtofour)
    return ip.is_global


def resolve_allowed(
    host: str, port: int, *, timeout: float = LOOKUP_SECONDS, lookups: threading.BoundedSemaphore = DELIVERY_LOOKUPS
) -> str:
    """The address to connect to: `host` resolved now. An address, however
    written (`127.1`, `2130706433`, `[::1]`), is read at once; a name is looked
    up within `timeout` seconds while fewer than `lookups` (REGISTRATION_LOOKUPS
    or DELIVERY_LOOKUPS) are running. Raises Unresolvable when it cannot be
    resolved so, UnsafeAddress when any of its addresses is not allowed (so
    that a name cannot mix a public address with an internal one), and
    LoopbackRefused when those are loopback addresses and the setting is off."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)
    except (OSError, UnicodeError):  # a name, not an address
        infos = _getaddrinfo_within(host, port, timeout, lookups)
    addresses = [info[4][0] for info in infos]
    refused = [address for address in addresses if not address_allowed(address)]
    if refused and all(_unmapped(ipaddress.ip_address(a.split("%", 1)[0])).is_loopback for a in refused):
        raise LoopbackRefused(
            f"{host} is a loopback address, which deliveries reach only while the service runs with "
            "WEBHOOK_ALLOW_LOOPBACK=true (development)"
        )
    if refused or not addresses:
        raise UnsafeAddress(f"{host} resolves to an address deliveries may not reach (not a public address)")
    return addresses[0]


def _getaddrinfo_within(host: str, port: int, seconds: float, lookups: threading.BoundedSemaphore) -> list:
    """socket.getaddrinfo(host, port) (TCP), or Unresolvable when it fails, has
    not answered within `seconds`, or `lookups` are all running."""
    if not lookups.acquire(blocking=False):
        raise Unresolvable(f"cannot resolve {host} now: too many lookups in progress")
    done, outcome = threading.Event(), {}

    def lookup() -> None:
        try:
            outcome["infos"] = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except BaseException as exc:  # handed to the waiting thread
            outcome["error"] = exc
        finally:
            lookups.release()
            done.set()

    threading.Thread(target=lookup, name="webhook-address-lookup", daemon=True).start()
    if not done.wait(max(0.0, seconds)):
        raise Unresolvable(f"cannot resolve {host}: no answer within {seconds:g} s")
    error = outcome.get("error")
    if isinstance(error, OSError | UnicodeError):  # socket.gaierror among them
        raise Unresolvable(f"cannot resolve {host}: {error}") from None
    if error is not None:
        raise error
    return outcome["infos"]
