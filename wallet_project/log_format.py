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
from datetime import UTC, datetime

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
        # format's short path: the fields the format names, each with its output name.
        self._named = tuple((field, self._get_rename(field)) for field in self._required_fields)
        self._short = not (
            self.defaults or self.static_fields or self.rename_fields_keep_missing or "asctime" in self._required_fields
        )
        self._time_key = self._get_rename(self.timestamp if isinstance(self.timestamp, str) else "timestamp")

    def format(self, record: logging.LogRecord) -> str:
        """BaseJsonFormatter.format's line (the same fields in the same order:
        the format's, the record's extras, the time), built in one pass for
        the usual record: a text message, no exception, no stack. Two lines
        are written per money request: a money movement's line costs 63.6K
        instructions here against 86.5K on the library's general path
        (callgrind, 200 lines); a first-time transfer 4,486,450 -> 4,438,268
        instructions (-1.1 %), a replay 2,361,154 -> 2,314,828 (-2.0 %;
        bench/instructions.py, layout 0, n=40). Any other record takes the
        library's path."""
        if not self._short or record.exc_info or record.exc_text or record.stack_info or isinstance(record.msg, dict):
            return super().format(record)
        record.message = record.getMessage()
        fields = record.__dict__
        log_data = {name: fields.get(field) for field, name in self._named}
        skip, rename = self._skip_fields, self.rename_fields
        for key, value in fields.items():
            if key not in skip and not key.startswith("_"):
                log_data[rename.get(key, key)] = value
        if self.timestamp:
            log_data[self._time_key] = datetime.fromtimestamp(record.created, tz=UTC)
        return self.prefix + self.jsonify_log_record(log_data)

    def jsonify_log_record(self, log_data) -> str:
        line = self._redact(super().jsonify_log_record(log_data))
        # Nearly every line is ASCII; this check is what they pay.
        return line if line.isascii() else line.translate(_JSON_LINE_BREAKS)


class QuietTicks(logging.Filter):
    """Drops Celery's own INFO lines (beat sending, the worker receiving, the
    task succeeding, or discarded as expired) about the frequent tasks named
    in `tasks`: the delivery tick runs every 2 s, and its three lines a tick
    were most of the start terminal with nothing happening (issue 26). Such a task logs a line of
    its own when it did something; its failures are WARNING and above, kept."""

    LOGGERS = frozenset({"celery.beat", "celery.worker.strategy", "celery.worker.request", "celery.app.trace"})

    def __init__(self, tasks: list[str]):
        super().__init__()
        self.tasks = tuple(tasks)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING or record.name not in self.LOGGERS:
            return True
        message = record.getMessage()
        return not any(task in message for task in self.tasks)
