"""The WSGI application that bin/web serves (Granian, behind its nginx edge)."""

import gc
import os

from django.core.wsgi import get_wsgi_application
from django.urls import get_resolver

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "wallet_project.settings")

django_application = get_wsgi_application()

# The URLconf, and with it every view, serializer and the engine, imported
# and resolved now rather than by a worker's first request: then what
# start-up made is all there is to freeze below.
get_resolver().resolve("/api/transfer")

# Everything start-up made (modules, classes, settings: about 125,000
# objects) lives as long as the process: moved out of the cyclic garbage
# collector's generations, where each full collection scanned it all again.
# A batch of 1,000 payouts allocates enough to run one full collection
# every few batches: in-process, 70 ms of CPU per 5 batches of 1,000, 1 to
# 3 ms frozen, about 0.013 ms of the service's CPU per payout
# (bench/profile_batch.py; bench/HISTORY.md, 2026-12-07 12:14). Frozen
# objects are never collected, which start-up's are not anyway.
gc.freeze()

# Granian builds every request's environ on a copy of the process environment
# (CGI style), so request.META would hold DJANGO_SECRET_KEY, DATABASE_URL and
# every other variable: in any error report that dumps META, an HTTP_PROXY
# variable read as a Proxy header (httpoxy), and ~50 keys Django walks on every
# request (request.headers): 2 % of a replay's instructions. Taken after the
# settings have read .env, as Granian's copy is.
_PROCESS_ENVIRONMENT = tuple(os.environ.items())

# The client's address, in the one place it is read: bin/web serves Granian
# on a unix socket in a private directory that only its nginx edge can reach
# (ops/nginx.conf), so the TCP peer Django used to see as REMOTE_ADDR is
# nginx now. nginx sends its own peer as X-Wallet-Edge-Peer (replacing any
# header of that name a client sent), and it goes back into REMOTE_ADDR here,
# so django-axes, the throttles and the logs see the same address as without
# the edge, and TRUSTED_PROXY_COUNT keeps its meaning (X-Forwarded-For passes
# the edge unchanged). bin/web says it started Granian that way; a Granian
# started otherwise (reachable by anyone) never trusts the header.
_BEHIND_EDGE = os.environ.get("WEB_BEHIND_EDGE") == "1"
_EDGE_PEER = "HTTP_X_WALLET_EDGE_PEER"


def application(environ, start_response):
    """Django's application, without the process environment in the request's
    environ, and with a whole response handed over as one list.

    Django returns the HttpResponse itself, an iterable, and Granian streams
    any iterable that is not a list: per chunk it hands the bytes to its
    network thread through a channel, releasing and retaking the GIL, and
    hyper writes the headers and the body separately. A list goes out in one
    piece. Every API answer is a small, complete body, so it is sent that way;
    a streaming response (a static file through WhiteNoise) is left to stream.

    close() runs here, before the bytes are written rather than after, which is
    all Django asks of it: it fires request_finished (connection bookkeeping).
    """
    for name, value in _PROCESS_ENVIRONMENT:
        # A value of the request's own (a header of the same name) differs: kept.
        if environ.get(name) == value:
            del environ[name]
    peer = environ.pop(_EDGE_PEER, None)
    if _BEHIND_EDGE and peer:
        environ["REMOTE_ADDR"] = peer
    response = django_application(environ, start_response)
    if getattr(response, "streaming", True):
        return response
    try:
        return [response.content]
    finally:
        response.close()
