"""The tenancy migration gives every existing customer wallet an owner, read
from the ledger (transfers/migrations/0008_wallet_owners.py), so that clients
keep their wallets and no wallet is left without one."""

import uuid
from decimal import Decimal

import pytest

from wallet_project.tests.migrating import migrate

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("wallets", "0003_wallet_owner"), ("transfers", "0007_pay_other_clients")]
AFTER = [("wallets", "0004_owner_required"), ("transfers", "0008_wallet_owners")]


def test_every_customer_wallet_gets_the_owner_its_ledger_names(back_to_latest):
    apps = migrate(BEFORE)
    User = apps.get_model("auth", "User")
    Wallet = apps.get_model("wallets", "Wallet")
    Log = apps.get_model("transfers", "TransactionLog")
    mobile, lender, staff = (User.objects.create(username=name) for name in ("mobile", "lender", "support"))
    settlement = Wallet.objects.create(kind="SETTLEMENT", currency="NGN", balance=Decimal("-30.00"))
    borrower, pool, drained, untouched = (
        Wallet.objects.create(user_id=uuid.uuid4(), currency="NGN", balance=balance)
        for balance in (Decimal("10.00"), Decimal("20.00"), Decimal("0"), Decimal("0"))
    )

    def log(client, source, destination, type, minute, **fields):
        return Log.objects.create(
            client=client,
            idempotency_key=f"k-{uuid.uuid4()}",
            movement_fingerprint="-",
            source_wallet=source,
            destination_wallet=destination,
            amount=Decimal("10.00"),
            currency="NGN",
            type=type,
            status="COMPLETED",
            completed_at="2026-01-01T00:00:00Z",
            created_at=f"2026-01-01T00:{minute:02d}:00Z",
            **fields,
        )

    # Before tenancy the lender paid the borrower first; the mobile backend,
    # which opened the borrower's wallet, deposited into it later: the owner
    # is whoever first did what only an owner may do now.
    log(lender, pool, borrower, "TRANSFER", 1)
    log(mobile, settlement, borrower, "DEPOSIT", 2)
    log(lender, settlement, pool, "DEPOSIT", 3)
    # Only ever credited by another client: the client of its first transaction.
    first = log(lender, pool, drained, "TRANSFER", 4)
    # A staff reversal names no owner.
    log(staff, drained, pool, "TRANSFER", 5, reversal_of=first)
    Log.objects.filter(pk=first.pk).update(status="REVERSED")

    apps = migrate(AFTER)

    Wallet = apps.get_model("wallets", "Wallet")
    owners = dict(Wallet.objects.values_list("pk", "owner__username"))
    assert owners == {
        settlement.pk: None,
        borrower.pk: "mobile",
        pool.pk: "lender",
        drained.pk: "lender",
        untouched.pk: "unclaimed-wallets",
    }
    unclaimed = apps.get_model("auth", "User").objects.get(username="unclaimed-wallets")
    # It can never authenticate: inactive, no usable password, no key.
    assert (unclaimed.is_active, unclaimed.password.startswith("!")) == (False, True)
