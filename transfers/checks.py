"""Start-up checks of the money routes' settings (registered in transfers.apps)."""

from django.conf import settings
from django.core import checks

from wallet_project.throttling import TRANSFERS, ClientRateThrottle


def check_a_full_batch_fits_the_transfers_rate(app_configs=None, **kwargs) -> list[checks.Error]:
    """A batch is charged one `transfers` unit per payout, at once
    (docs/api.md, "Rate limits"): with a rate below BATCH_MAX_PAYOUTS a
    full batch could never be let in, however long its client waited."""
    limit = ClientRateThrottle(TRANSFERS).num_requests
    if limit is None or limit >= settings.BATCH_MAX_PAYOUTS:
        return []
    return [
        checks.Error(
            f"THROTTLE_RATE_TRANSFERS lets {limit} units in per window, fewer than BATCH_MAX_PAYOUTS "
            f"({settings.BATCH_MAX_PAYOUTS}): a full batch would be refused forever.",
            hint="Raise THROTTLE_RATE_TRANSFERS or lower BATCH_MAX_PAYOUTS.",
            id="transfers.E001",
        )
    ]
