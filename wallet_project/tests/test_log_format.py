"""The JSON formatter's short path (wallet_project/log_format.py,
SingleLineJsonFormatter.format) writes the line python-json-logger's own path
writes, byte for byte: the same fields, renamed alike, in the same order."""

import logging
import logging.config

import pytest
from django.conf import settings
from pythonjsonlogger.orjson import OrjsonFormatter

from wallet_project.log_format import SingleLineJsonFormatter


def formatter(**changes) -> SingleLineJsonFormatter:
    """settings.LOGGING's JSON formatter, built as logging.config builds it, with `changes` to its entry."""
    configurator = logging.config.DictConfigurator(settings.LOGGING)
    return configurator.configure_formatter({**settings.LOGGING["formatters"]["json"], **changes})


def movement_record() -> logging.LogRecord:
    """A money movement's record as telemetry.movement_answered logs it, with the request id the filter adds."""
    record = logging.getLogger("wallet.transfers").makeRecord(
        "wallet.transfers", logging.INFO, __file__, 1, "%s %s %s%s %s",
        ("TRANSFER", "TXN-1", "completed", "", "in 1.0ms"), None,
        extra={
            "event": "money_movement", "type": "TRANSFER", "outcome": "completed", "error_code": None,
            "amount": "10.00", "client": "bench", "idempotency_key": "k\u2028ey", "duration_ms": 1.0,
            "_private": "left out",
        },
    )  # fmt: skip
    record.request_id = "0123456789abcdef0123456789abcdef"
    return record


@pytest.mark.parametrize(
    "rename",
    [
        pytest.param(None, id="production"),
        pytest.param({"levelname": "level", "event": "kind", "client": "who"}, id="extras_renamed"),
    ],
)
def test_the_short_path_writes_the_librarys_line(rename):
    changes = {} if rename is None else {"rename_fields": rename}
    json_formatter = formatter(**changes)
    record = movement_record()
    line = json_formatter.format(record)
    assert line == OrjsonFormatter.format(json_formatter, movement_record_like(record))
    if rename is not None:
        assert '"kind":"money_movement"' in line and '"who":"bench"' in line and '"event"' not in line
    assert "_private" not in line and "\\u2028" in line


def movement_record_like(record: logging.LogRecord) -> logging.LogRecord:
    """The same record, fresh (format sets `message` on the record it formats)."""
    copy = logging.makeLogRecord(dict(record.__dict__))
    del copy.message
    return copy
