"""wallet_project.db.base.from_row builds what Model.from_db builds from a row
read by plain SQL, without from_db's walk over every field."""

from decimal import Decimal

import pytest
from django.db import connection
from django.db.models.signals import post_init

from transfers.locks import LOCKED_WALLET_FIELDS
from wallet_project.db.base import from_row, in_model_order
from wallets.models import Wallet

pytestmark = pytest.mark.django_db

FIELDS = in_model_order(Wallet, LOCKED_WALLET_FIELDS)


def read_row(wallet: Wallet) -> tuple:
    columns = ", ".join(Wallet._meta.get_field(name).column for name in FIELDS)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {columns} FROM wallets WHERE id = %s", [wallet.pk])  # noqa: S608 (model names)
        return cursor.fetchone()


def test_the_instance_is_the_one_from_db_builds(funded_wallet):
    wallet = funded_wallet("12.34")
    row = read_row(wallet)

    built, expected = from_row(Wallet, "default", FIELDS, row), Wallet.from_db("default", FIELDS, row)

    assert type(built) is Wallet
    assert {k: v for k, v in built.__dict__.items() if k != "_state"} == {
        k: v for k, v in expected.__dict__.items() if k != "_state"
    }
    assert (built._state.adding, built._state.db) == (False, "default")
    assert built.get_deferred_fields() == expected.get_deferred_fields() != set()


def test_a_deferred_field_loads_and_a_save_writes_only_what_was_read(funded_wallet):
    wallet = funded_wallet("12.34")
    built = from_row(Wallet, "default", FIELDS, read_row(wallet))

    assert built.user_id == wallet.user_id  # deferred: read on first use
    assert built.owner == wallet.owner  # a foreign key's object, through its id
    built.balance = Decimal("20.00")
    built.save(update_fields=["balance"])
    assert Wallet.objects.get(pk=wallet.pk).balance == Decimal("20.00")


def test_with_a_post_init_receiver_it_is_built_by_from_db(funded_wallet):
    wallet = funded_wallet("1.00")
    seen = []

    def receiver(sender, instance, **kwargs):
        seen.append(instance)

    post_init.connect(receiver, sender=Wallet)
    try:
        built = from_row(Wallet, "default", FIELDS, read_row(wallet))
    finally:
        post_init.disconnect(receiver, sender=Wallet)

    assert seen == [built]
