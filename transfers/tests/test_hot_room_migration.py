"""Migration transfers/0023_room_for_hot_updates: wallets and
wallet_daily_totals keep room on each page (fillfactor 70) for the versions
the settle statement writes, so that its updates can be HOT; backwards, the
default again."""

import pytest
from django.db import connection

from wallet_project.tests.migrating import migrate

pytestmark = pytest.mark.django_db(transaction=True)

TABLES = ["wallet_daily_totals", "wallets"]


def storage_parameters() -> dict[str, list[str] | None]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT relname, reloptions FROM pg_class WHERE relname = ANY(%s) AND relkind = 'r'", [TABLES])
        return dict(cursor.fetchall())


def test_the_tables_the_settle_updates_in_place_keep_room_on_their_pages():
    assert storage_parameters() == dict.fromkeys(TABLES, ["fillfactor=70"])


def test_the_migration_goes_back_to_full_pages_and_forward_again(back_to_latest):
    migrate([("transfers", "0022_drop_key_index")])
    assert storage_parameters() == dict.fromkeys(TABLES)

    migrate([("transfers", "0023_room_for_hot_updates")])
    assert storage_parameters() == dict.fromkeys(TABLES, ["fillfactor=70"])
