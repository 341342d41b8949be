"""django-axes's handler for admin logins, with two limits instead of one
(settings.py, "Admin login throttled"): AXES_FAILURE_LIMIT failures of one
username from one client address, or AXES_ADDRESS_FAILURE_LIMIT failures of
any usernames from one address (a password spray: a few guesses at each of
many usernames), lock that address out for AXES_COOLOFF_TIME.

django-axes counts failures per each of AXES_LOCKOUT_PARAMETERS and locks
out when the largest count reaches its single limit; the per-address count
is scaled here so that it reaches that limit exactly at its own.
"""

from axes.handlers.database import AxesDatabaseHandler
from django.conf import settings
from django.db.models import Sum


class UserAndAddressLockoutHandler(AxesDatabaseHandler):
    """AXES_HANDLER. Needs AXES_LOCKOUT_PARAMETERS to be
    [["username", "ip_address"], "ip_address"], in that order."""

    def get_failures(self, request, credentials=None) -> int:
        """Failures within the cool-off, as django-axes compares them with
        AXES_FAILURE_LIMIT: those of this username at this address, or those
        of this address scaled so that AXES_ADDRESS_FAILURE_LIMIT of them
        read as AXES_FAILURE_LIMIT (floor(n * L / A) >= L exactly when n >= A)."""
        of_user_at_address, of_address = (
            attempts.aggregate(total=Sum("failures_since_start"))["total"] or 0
            for attempts in self.get_user_attempts(request, credentials)
        )
        scaled = of_address * settings.AXES_FAILURE_LIMIT // settings.AXES_ADDRESS_FAILURE_LIMIT
        return max(of_user_at_address, scaled)
