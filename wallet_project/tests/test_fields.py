"""timestamp_text writes a timestamp as DRF's DateTimeField does in the
service's UTC, without asking DRF: the two must never differ."""

import zoneinfo
from datetime import UTC, datetime, timedelta, timezone

import pytest
from rest_framework import serializers

from wallet_project.api import timestamp_text

INSTANTS = [
    datetime(2026, 11, 30, 5, 46, 47, 123456, tzinfo=UTC),
    datetime(2026, 11, 30, 5, 46, 47, tzinfo=UTC),  # no fraction: none written
    datetime(2026, 11, 30, 5, 46, 47, 1, tzinfo=UTC),
    datetime(2026, 12, 31, 23, 30, tzinfo=zoneinfo.ZoneInfo("Africa/Lagos")),  # another day in UTC
    datetime(2026, 3, 29, 1, 30, 0, 500000, tzinfo=zoneinfo.ZoneInfo("Europe/Berlin")),
    datetime(2026, 6, 1, 0, 0, tzinfo=timezone(timedelta(hours=-5, minutes=-30))),
    datetime(1, 1, 1, 12, 0, tzinfo=UTC),
]


@pytest.mark.parametrize("instant", INSTANTS, ids=str)
def test_a_timestamp_is_written_as_drf_writes_it_in_utc(instant, settings):
    assert settings.TIME_ZONE == "UTC" and settings.USE_TZ
    drf = serializers.DateTimeField().to_representation(instant)
    assert timestamp_text(instant) == drf
    assert drf.endswith("Z")


def test_none_stays_none():
    assert timestamp_text(None) is None
