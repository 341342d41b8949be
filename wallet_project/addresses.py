"""The client's address: the one django-axes locks admin logins out by, the
failed-authentication throttle counts (wallet_project/throttling.py) and every
request log line carries (wallet_project/middleware.py). One reading, so that
the address a lockout names is the one the logs show.

Behind TRUSTED_PROXY_COUNT proxies, each appending the address it was called
from to X-Forwarded-For, the client is the address the outermost one wrote:
the N-th from the right. What the client wrote itself, to the left of it, is
never read; with no trusted proxy, X-Forwarded-For is not read at all (anyone
can write it) and the client is REMOTE_ADDR (docs/operations.md, "Production
profile"). bin/web's own nginx is not counted: it hands Django the address it
was connected from as REMOTE_ADDR (wallet_project/wsgi.py).
"""

import functools
from types import SimpleNamespace

from django.conf import settings
from django.http import HttpRequest
from ipware import get_client_ip


def client_address(request: HttpRequest) -> str | None:
    """The client's IP address as text ("203.0.113.7", "2001:db8::1"), or None
    when the request carries none that parses. settings.TRUSTED_PROXY_COUNT is
    read on each call. django-ipware does the parsing: its proxy count is the
    proxies whose addresses are in the header, N - 1 (the nearest proxy is
    REMOTE_ADDR), and "strict" is off so that a client's own X-Forwarded-For
    does not make the chain fall back to REMOTE_ADDR (the proxy's address,
    shared by everyone)."""
    proxies = settings.TRUSTED_PROXY_COUNT
    header = "HTTP_X_FORWARDED_FOR" if proxies else "REMOTE_ADDR"
    return _address_in(header, request.META.get(header), proxies)


@functools.lru_cache(maxsize=4096)
def _address_in(header: str, value: str | None, proxies: int) -> str | None:
    """What django-ipware reads from `header` holding `value`: a function of
    those alone, so remembered (every request asks, mostly for the same few
    addresses, and ipware's reading was about a tenth of a replay's CPU,
    bench/instructions.py)."""
    address, _ = get_client_ip(
        SimpleNamespace(META={} if value is None else {header: value}),
        proxy_order="left-most",
        proxy_count=proxies - 1 if proxies else None,
        request_header_order=(header,),
        strict=False,
    )
    return address
