"""The business time zone: settings.BUSINESS_TIME_ZONE (Africa/Lagos by
default, checked at start-up; docs/operations.md), the one zone the service
counts days in: the tier limits' daily caps (transfers.limits), a
statement's days (transfers.statements) and the days the API and the admin
ask for.
"""

import datetime
import zoneinfo
from functools import cache

from django.conf import settings
from django.utils import timezone


@cache
def _zone(name: str) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(name)


def business_zone() -> zoneinfo.ZoneInfo:
    """The zone of settings.BUSINESS_TIME_ZONE; its key is the IANA name."""
    return _zone(settings.BUSINESS_TIME_ZONE)


def business_day(moment: datetime.datetime) -> datetime.date:
    """The business day that the aware `moment` falls in."""
    return moment.astimezone(business_zone()).date()


def business_today() -> datetime.date:
    """The business day it is now."""
    return timezone.localdate(timezone=business_zone())
