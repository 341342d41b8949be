"""Migration transfers/0019_hold_request_keys on holds ended and extended
before it: their keys are copied into hold_request_keys, bound to the holds
they ended (a set's to all of its holds, once), so that a key used before
the migration cannot end another hold after it."""

import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from wallet_project.tests.migrating import migrate

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("transfers", "0018_holds")]
AFTER = [("transfers", "0019_hold_request_keys")]


def test_keys_that_ended_or_extended_holds_before_stay_bound_to_them(back_to_latest):
    apps = migrate(BEFORE)
    User = apps.get_model("auth", "User")
    Wallet = apps.get_model("wallets", "Wallet")
    Hold = apps.get_model("transfers", "Hold")
    client = User.objects.create(username=f"old-{uuid.uuid4()}")
    source = Wallet.objects.create(owner=client, user_id=uuid.uuid4(), currency="NGN", balance=Decimal("50.00"))
    destination = Wallet.objects.create(owner=client, user_id=uuid.uuid4(), currency="NGN")
    now = timezone.now()

    def hold(*, status="VOIDED", **ends):
        return Hold.objects.create(
            client=client, idempotency_key=f"place-{uuid.uuid4()}", request_fingerprint="p",
            source_wallet=source, destination_wallet=destination, amount=Decimal("5.00"), currency="NGN",
            status=status, expires_at=now + timedelta(hours=1), ended_at=None if status == "OPEN" else now, **ends,
        ).pk  # fmt: skip

    voided = hold(end_key="old-void", end_fingerprint="f-void")
    in_set = sorted([hold(end_key="old-set", end_fingerprint="f-set") for _ in range(2)])
    extended = hold(status="OPEN", extend_key="old-extend", extend_fingerprint="f-extend")
    hold(status="EXPIRED")

    apps = migrate(AFTER)
    HoldRequestKey = apps.get_model("transfers", "HoldRequestKey")
    bound = {
        row.idempotency_key: (row.client_id, row.fingerprint, row.hold_ids) for row in HoldRequestKey.objects.all()
    }
    assert bound == {
        "old-void": (client.pk, "f-void", [voided]),
        "old-set": (client.pk, "f-set", in_set),
        "old-extend": (client.pk, "f-extend", [extended]),
    }
