"""The log formats, one record to one line whatever the record holds.

A log line is evidence: a client who could put a line break into one (a path
`/api/transfer/x%0aforged`, a header, a key, an exception message quoting
them) could split it and write a line of their choosing after it. Both
formats escape what a reader could take for a line break: every control
character in text, and in JSON the three line breaks JSON itself allows
unescaped in a string (U+0085, U+2028, U+2029), on which Python's
splitlines() and some log viewers break lines.

And a line never holds a secret a client sent where it did not belong: an
API key pasted into a path (`GET /api/transfer/wk_...`) or sent as a request
id is written with its secret part replaced (`redact`: a pattern whose first
group is what may stay, the key's public prefix).
"""

import logging
import re

from pythonjsonlogger.orjson import OrjsonFormatter

# C0 and C1 control characters (line feed, carriage return, escape, ...)
# and the Unicode line and paragraph separators some log viewers break on.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


REDACTED = "[redacted]"


def _redactor(pattern: str | None):
    """text -> text with every match of `pattern` cut back to its first group
    and REDACTED; the identity without a pattern."""
    if not pattern:
        return lambda text: text
    compiled = re.compile(pattern)
    return lambda text: compiled.sub(lambda match: f"{match.group(1)}_{REDACTED}", text)


def escape_controls(text: str) -> str:
    """`text` with every control character written as a Python escape
    (`\\n`, `\\x1b`, `\\u2028`), so it stays on one line and says what came."""
    return _CONTROL.sub(lambda match: match.group().encode("unicode_escape").decode("ascii"), text)


class SingleLineFormatter(logging.Formatter):
    """logging.Formatter whose line (time, level, request id, logger name,
    message and every value interpolated into it) never holds a control
    character. A traceback, added after the line by logging itself, keeps its
    own lines: it is Python's, and on-call needs it readable."""

    def __init__(self, *args, redact: str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self._redact = _redactor(redact)

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's name)
        return self._redact(escape_controls(super().formatMessage(record)))


_JSON_LINE_BREAKS = str.maketrans({"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})


class SingleLineJsonFormatter(OrjsonFormatter):
    """python-json-logger's orjson formatter, with the line breaks orjson
    leaves as they are (valid JSON) written as JSON escapes: the same string
    to any JSON reader, one line to every line reader."""

    def __init__(self, *args, redact: str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self._redact = _redactor(redact)

    def jsonify_log_record(self, log_data) -> str:
        line = self._redact(super().jsonify_log_record(log_data))
        # Nearly every line is ASCII; this check is what they pay.
        return line if line.isascii() else line.translate(_JSON_LINE_BREAKS)


class QuietTicks(logging.Filter):
    """Drops Celery's own INFO lines about the given tasks: beat sending one
    ("Scheduler: Sending due task deliver-webhooks (wallets.tasks...)"), the
    worker receiving it and its success. For a task beat starts every few
    seconds, those were most of what `make start` printed while nothing
    happened; the task writes its own line when it did something, and a
    failure (WARNING and above) still shows (docs/operations.md, "Logs").

    `tasks`: task names ("wallets.tasks.deliver_webhooks"). Celery passes the
    name as the record's arguments: a mapping with "name" (worker) or a tuple
    holding it (beat).
    """

    def __init__(self, tasks: list[str] | tuple[str, ...] = ()):
        super().__init__()
        self.tasks = frozenset(tasks)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.INFO:
            return True
        args = record.args
        named = [args.get("name")] if isinstance(args, dict) else list(args or ())
        return not any(isinstance(name, str) and name in self.tasks for name in named)
