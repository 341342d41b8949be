"""The edge's configuration: ops/nginx.conf filled in for one bin/web run.

    python -m wallet_project.edge RUNTIME_DIR HOST:PORT > RUNTIME_DIR/nginx.conf

bin/web runs this before it starts nginx. It reads the settings (so the body
limit follows DATA_UPLOAD_MAX_MEMORY_SIZE, .env included) and the error-code
registry (so what nginx answers itself is the API's envelope with a code
docs/api.md lists), and imports nothing that needs a database.

Three variables exist for the benchmark's variants (bench/HISTORY.md,
2026-11-30 09:30), not for production: WEB_EDGE_KEEPALIVE (upstream
keep-alive connections per nginx worker; 0, the default, opens one per
request), WEB_EDGE_WORKER_PROCESSES (1) and WEB_EDGE_LISTEN_OPTIONS
(e.g. reuseport).
"""

import json
import os
import sys
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parent.parent / "ops" / "nginx.conf"
# Above DATA_UPLOAD_MAX_MEMORY_SIZE by this much: the body Django refuses with
# its own 413 must reach Django, headers and a JSON framing included.
BODY_MARGIN_BYTES = 64 * 1024
# Where nginx's own answers live (internal locations; ops/nginx.conf).
EDGE_ERROR_PREFIX = "/_edge/error/"
NOT_FOUND = {"success": False, "message": "No such path.", "code": "not_found"}
# The headers the service reads whose value, blanked, reads as another request
# (no API key, no key at all, no media type), each with what to do instead.
# Granian hands a WSGI application "" for any header value holding a byte
# outside printable ASCII and tab (HeaderValue::to_str, not PEP 3333's
# latin-1), so Django cannot tell such a value from an empty one; and it
# answers a bare, empty 400 itself for a control byte there, or for a byte
# on the request line that is not UTF-8. The edge, which still sees the
# bytes, refuses the request in the envelope, naming where they were.
ASCII_HEADERS = {
    "Authorization": "Send `Authorization: Token <key>`.",
    "Idempotency-Key": "Header keys are ASCII: send a key with other characters in the idempotencyKey field.",
    "Content-Type": "Send `Content-Type: application/json`.",
    "Accept": "Send `Accept: application/json`, or no Accept header.",
}
# (nginx variable, where, what to do, bytes refused: PCRE on bytes.) Last
# checked first: the request line.
UNREADABLE = [
    *(
        (f"$http_{name.lower().replace('-', '_')}", f"the {name} header", hint, r"[^\x09\x20-\x7e]")
        for name, hint in ASCII_HEADERS.items()
    ),
    (
        "$request",
        "the request line",
        "Percent-encode every other byte of the path and the query (UTF-8: é is %C3%A9).",
        r"[^\x20-\x7e]",
    ),
]


def edge_errors(max_body_bytes: int) -> list[tuple[tuple[int, ...], int, dict]]:
    """(statuses nginx produces, status sent, body) for every error nginx
    answers without Django. 494 is nginx's own name for "header too large"
    (it would send a bare 400); 501 and 505 (an unknown transfer coding, an
    HTTP version it does not speak) are requests it could not read."""
    from wallet_project.error_codes import default_message

    return [
        ((400, 501, 505), 400, {"success": False, "message": default_message("bad_request"), "code": "bad_request"}),
        ((408,), 408, {"success": False, "message": default_message("request_timeout"), "code": "request_timeout"}),
        (
            (413,),
            413,
            {
                "success": False,
                "message": f"Payload too large: the service reads bodies of at most {max_body_bytes} bytes.",
                "code": "payload_too_large",
            },
        ),
        ((414,), 414, {"success": False, "message": default_message("uri_too_long"), "code": "uri_too_long"}),
        (
            (494,),
            431,
            {"success": False, "message": default_message("headers_too_large"), "code": "headers_too_large"},
        ),
        ((500,), 500, {"success": False, "message": default_message("internal_error"), "code": "internal_error"}),
        ((502,), 502, {"success": False, "message": default_message("bad_gateway"), "code": "bad_gateway"}),
        (
            (503,),
            503,
            {
                "success": False,
                "message": "Service unavailable: wait a second, then send the same request with the same key.",
                "code": "service_unavailable",
            },
        ),
        ((504,), 504, {"success": False, "message": default_message("gateway_timeout"), "code": "gateway_timeout"}),
    ]


def nginx_string(text: str) -> str:
    """`text` as an nginx single-quoted string. nginx has no escape for `$`
    (a variable), so a body must not hold one."""
    if "$" in text:
        raise ValueError(f"an nginx string cannot hold '$': {text!r}")
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def unreadable_checks() -> str:
    """A map per UNREADABLE entry, chained so that $edge_unreadable is the
    edge's answer (400 bad_request, naming where the byte was) for the first
    one holding a refused byte; empty when none does."""
    lines, previous = [], "''"
    for position, (variable, where, hint, refused) in enumerate(UNREADABLE):
        result = "$edge_unreadable" if position == len(UNREADABLE) - 1 else f"$edge_unreadable_{position}"
        message = f"Bad request: {where} holds a byte outside printable ASCII, which the service cannot read. {hint}"
        body = {"success": False, "message": message, "code": "bad_request"}
        lines.append(f"    map {variable} {result} {{")
        lines.append(f'        "~{refused}" {nginx_string(json.dumps(body, separators=(",", ":")))};')
        lines.append(f"        default {previous};")
        lines.append("    }")
        previous = result
    return "\n".join(lines)


def error_pages(max_body_bytes: int) -> str:
    """An error_page and an internal location per answer. A URI, not a named
    location: nginx cannot redirect to a named location before it has read
    the request line (a 414, a malformed line), and answers 500 instead. A
    client asking for such a URI itself gets the edge's JSON 404."""
    lines = []
    errors = [*edge_errors(max_body_bytes), ((404,), 404, NOT_FOUND)]
    for produced, sent, _ in errors:
        uri = f"{EDGE_ERROR_PREFIX}{sent}"
        lines.append(f"        error_page {' '.join(map(str, produced))} = {uri};")
    for _, sent, body in errors:
        lines.append(f"        location = {EDGE_ERROR_PREFIX}{sent} {{")
        lines.append("            internal;")
        lines.append("            default_type application/json;")
        lines.append(f"            return {sent} {nginx_string(json.dumps(body, separators=(',', ':')))};")
        lines.append("        }")
    return "\n".join(lines)


def render(runtime: Path, listen: str, *, as_root: bool) -> str:
    from django.conf import settings

    max_body = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    values = {
        # nginx's workers run as "nobody" when the master is root, and nobody
        # cannot enter the private runtime directory (the socket, the temp
        # files); as any other user the directive is ignored with a warning.
        "USER_DIRECTIVE": "user root;" if as_root else "",
        "WORKER_PROCESSES": os.environ.get("WEB_EDGE_WORKER_PROCESSES", "1"),
        "RUNTIME": str(runtime),
        "CLIENT_MAX_BODY_SIZE": str(max_body + BODY_MARGIN_BYTES),
        "CLIENT_BODY_BUFFER_SIZE": str(settings.API_MAX_BODY_BYTES + BODY_MARGIN_BYTES),
        "LISTEN": listen,
        "LISTEN_OPTIONS": os.environ.get("WEB_EDGE_LISTEN_OPTIONS", ""),
        "UPSTREAM_KEEPALIVE": upstream_keepalive(os.environ.get("WEB_EDGE_KEEPALIVE", "0")),
        "PROXY_BUFFERING": os.environ.get("WEB_EDGE_PROXY_BUFFERING", "on"),
        "ERROR_PAGES": error_pages(max_body),
        "UNREADABLE_CHECKS": unreadable_checks(),
    }
    text = TEMPLATE.read_text()
    for name, value in values.items():
        text = text.replace(f"@{name}@", value)
    return text


def upstream_keepalive(connections: str) -> str:
    if int(connections) <= 0:
        return "# no upstream keep-alive: a fresh connection per request"
    return f"keepalive {int(connections)};"


def main(argv: list[str]) -> None:
    runtime, listen = Path(argv[1]), argv[2]
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "wallet_project.settings")
    sys.stdout.write(render(runtime, listen, as_root=os.geteuid() == 0))


if __name__ == "__main__":
    main(sys.argv)
