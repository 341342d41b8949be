"""The WSGI application that bin/web serves (Granian)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "wallet_project.settings")

django_application = get_wsgi_application()


def application(environ, start_response):
    """Django's application, with a whole response handed over as one list.

    Django returns the HttpResponse itself, an iterable, and Granian streams
    any iterable that is not a list: per chunk it hands the bytes to its
    network thread through a channel, releasing and retaking the GIL, and
    hyper writes the headers and the body separately. A list goes out in one
    piece. Every API answer is a small, complete body, so it is sent that way;
    a streaming response (a static file through WhiteNoise) is left to stream.

    close() runs here, before the bytes are written rather than after, which is
    all Django asks of it: it fires request_finished (connection bookkeeping).
    """
    response = django_application(environ, start_response)
    if getattr(response, "streaming", True):
        return response
    try:
        return [response.content]
    finally:
        response.close()
