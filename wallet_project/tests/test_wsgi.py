"""wallet_project.wsgi: the process environment stays out of request.META, and
a whole response goes to the server as one list (Granian sends a list in one
piece and streams any other iterable)."""

import io
import os
import subprocess
import sys

import pytest
from django.conf import settings
from django.core.signals import request_finished
from django.http import StreamingHttpResponse

from wallet_project import wsgi

pytestmark = pytest.mark.django_db


def environ(path: str) -> dict:
    return {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "testserver",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }


def test_a_whole_response_is_one_list_and_django_has_closed_it():
    finished = []
    request_finished.connect(receiver := lambda **kwargs: finished.append(1))
    started = {}
    try:
        body = wsgi.application(environ("/health"), lambda status, headers, exc_info=None: started.update(s=status))
    finally:
        request_finished.disconnect(receiver)

    assert isinstance(body, list) and len(body) == 1
    assert started["s"].startswith(("200", "503"))
    assert b'"database"' in body[0]
    # close() ran (Django's request_finished), exactly once.
    assert finished == [1]


def test_a_streaming_response_is_left_to_stream(monkeypatch):
    chunks = StreamingHttpResponse(iter([b"a", b"b"]))
    monkeypatch.setattr(wsgi, "django_application", lambda environ, start_response: chunks)

    assert wsgi.application(environ("/anything"), lambda *args: None) is chunks


def test_the_process_environment_granian_copies_into_the_environ_is_taken_out(monkeypatch):
    process = {"DATABASE_URL": "postgres://user:secret@db/wallet", "HTTP_PROXY": "http://evil:3128", "LANG": "C"}
    monkeypatch.setattr(wsgi, "_PROCESS_ENVIRONMENT", tuple(process.items()))
    seen = {}
    monkeypatch.setattr(wsgi, "django_application", lambda environ, start_response: seen.update(environ) or [b""])
    # As Granian merges them: the process environment, then the request's own keys.
    request = {**environ("/health"), "LANG": "a header's own value"}

    wsgi.application({**process, **request}, lambda *args: None)

    assert "DATABASE_URL" not in seen
    assert "HTTP_PROXY" not in seen  # no Proxy header to read (httpoxy)
    assert seen["LANG"] == "a header's own value"
    assert seen["PATH_INFO"] == "/health"


@pytest.mark.parametrize(
    ("behind_edge", "remote_addr"),
    [
        # bin/web's Granian, on a socket only nginx reaches: the peer nginx saw.
        (True, "203.0.113.7"),
        # Any other start (reachable by anyone): the header is never believed.
        (False, "127.0.0.1"),
    ],
)
def test_the_client_address_comes_from_the_edge_only_behind_it(monkeypatch, behind_edge, remote_addr):
    monkeypatch.setattr(wsgi, "_BEHIND_EDGE", behind_edge)
    seen = {}
    monkeypatch.setattr(wsgi, "django_application", lambda environ, start_response: seen.update(environ) or [b""])
    request = {**environ("/health"), "REMOTE_ADDR": "127.0.0.1", "HTTP_X_WALLET_EDGE_PEER": "203.0.113.7"}

    wsgi.application(request, lambda *args: None)

    assert seen["REMOTE_ADDR"] == remote_addr
    assert "HTTP_X_WALLET_EDGE_PEER" not in seen


def test_start_up_loads_the_urlconf_and_freezes_what_it_made():
    """In a process of its own, as a web worker starts: once the application
    is imported, the views are loaded and start-up's objects are out of the
    cyclic collector's generations (wallet_project/wsgi.py says why)."""
    probe = (
        "import gc, sys; import wallet_project.wsgi; "
        "print('transfers.views' in sys.modules, gc.get_freeze_count() > 50_000, len(gc.get_objects()) < 5_000)"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "wallet_project.settings"}
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=settings.BASE_DIR, env=env, capture_output=True, text=True, timeout=120
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "True", "True"]
