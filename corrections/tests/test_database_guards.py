"""PostgreSQL itself keeps the record: correction_audit refuses UPDATE and
DELETE, and a request's content never changes once made, nor anything of
it once decided, whatever the application's own database user sends."""

import pytest
from django.db import IntegrityError, connection, transaction

from corrections import services
from corrections.models import Correction, CorrectionAudit, CorrectionStatus
from corrections.tests.people import completed_transfer, staff

pytestmark = pytest.mark.django_db


@pytest.fixture
def correction(funded_wallet) -> Correction:
    log = completed_transfer(funded_wallet("100.00"), funded_wallet("0"))
    return services.reversal_request(log_id=log.pk, reason="paid twice", requested_by=staff("Finance"))


def refused(sql: str, params) -> str:
    """Run `sql` as the application connects, in a savepoint; the error's text."""
    with pytest.raises(IntegrityError) as error, transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)
    return str(error.value)


def test_the_audit_refuses_update_and_delete_from_the_applications_database_user(correction):
    row = CorrectionAudit.objects.get(correction=correction)

    edit = "UPDATE correction_audit SET note = 'edited' WHERE id = %s"
    assert "append-only: UPDATE refused" in refused(edit, [row.pk])
    assert "append-only: DELETE refused" in refused("DELETE FROM correction_audit WHERE id = %s", [row.pk])
    assert "append-only" in refused("DELETE FROM correction_audit", [])
    with pytest.raises(IntegrityError), transaction.atomic():
        CorrectionAudit.objects.filter(pk=row.pk).update(note="through the ORM")

    row.refresh_from_db()
    assert row.note == "paid twice"


def test_what_a_request_asks_for_cannot_be_changed(correction):
    sql = """UPDATE corrections SET payload = jsonb_set(payload, '{reason}', '"other"') WHERE id = %s"""
    assert "frozen when it is made" in refused(sql, [correction.pk])
    assert "frozen when it is made" in refused("UPDATE corrections SET amount = 1 WHERE id = %s", [correction.pk])
    assert "never deleted" in refused("DELETE FROM corrections WHERE id = %s", [correction.pk])


def test_a_decided_request_no_longer_changes(correction):
    services.correction_reject(correction_id=correction.pk, rejector=staff("Approver"), reason="no")

    sql = "UPDATE corrections SET status = 'PENDING' WHERE id = %s"
    assert "is REJECTED: it no longer changes" in refused(sql, [correction.pk])
    assert Correction.objects.get(pk=correction.pk).status == CorrectionStatus.REJECTED


def test_no_request_is_applied_by_its_requester_unless_alone_below_the_threshold(correction):
    # The four-eyes CHECK: past every trigger, the row itself cannot say so.
    sql = (
        "UPDATE corrections SET status = 'APPLIED', decided_by_id = requested_by_id, applied_alone = false, "
        "result_log_id = transaction_id WHERE id = %s"
    )
    assert "corrections_correction_four_eyes" in refused(sql, [correction.pk])
