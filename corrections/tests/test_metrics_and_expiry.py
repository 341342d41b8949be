"""What on-call sees of the requests waiting for a second person (on
/metrics, for WalletCorrectionsWaiting), and the beat task that expires the
ones nobody approved in time."""

from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from corrections import services
from corrections.models import CorrectionStatus
from corrections.tasks import expire_corrections
from corrections.tests.people import completed_transfer, staff
from wallet_project.tests.test_metrics_endpoint import scrape, value  # noqa: F401 (the fixture)

pytestmark = pytest.mark.django_db


def requested_earlier(monkeypatch, funded_wallet, ago: timedelta):
    """A request made `ago` before now (the clock moved back while it is made)."""
    real_now = timezone.now
    with monkeypatch.context() as patch:
        patch.setattr(timezone, "now", lambda: real_now() - ago)
        return requested(funded_wallet)


def requested(funded_wallet):
    log = completed_transfer(funded_wallet("100.00"), funded_wallet("0"))
    return services.reversal_request(log_id=log.pk, reason="paid twice", requested_by=staff("Finance"))


def test_waiting_requests_are_counted_with_the_age_of_the_oldest(scrape, funded_wallet, monkeypatch):  # noqa: F811
    before = scrape()
    assert value(before, "wallet_corrections_pending") == 0
    assert value(before, "wallet_corrections_pending_oldest_age_seconds") == 0
    assert value(before, "wallet_corrections_waiting_alert_seconds") == 4 * 3600

    oldest = requested_earlier(monkeypatch, funded_wallet, timedelta(hours=5))
    requested(funded_wallet)

    after = scrape()
    assert value(after, "wallet_corrections_pending") == 2
    assert 5 * 3600 <= value(after, "wallet_corrections_pending_oldest_age_seconds") < 5 * 3600 + 60
    services.correction_reject(correction_id=oldest.pk, rejector=staff("Approver"), reason="no")
    assert value(scrape(), "wallet_corrections_pending_oldest_age_seconds") < 60


def test_the_beat_task_runs_every_minute_and_expires_what_nobody_approved(funded_wallet, monkeypatch):
    schedule = django_settings.CELERY_BEAT_SCHEDULE["expire-corrections"]
    assert (schedule["task"], schedule["schedule"]) == ("corrections.tasks.expire_corrections", 60.0)
    stale = requested_earlier(monkeypatch, funded_wallet, timedelta(hours=25))
    fresh = requested(funded_wallet)

    assert expire_corrections() == 1

    stale.refresh_from_db()
    fresh.refresh_from_db()
    assert (stale.status, fresh.status) == (CorrectionStatus.EXPIRED, CorrectionStatus.PENDING)
