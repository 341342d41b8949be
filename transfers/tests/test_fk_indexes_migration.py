"""Migration transfers/0020_fk_indexes_led_by_composites: the four foreign
keys of transaction_logs it leaves without an index of their own (client,
source wallet, destination wallet, batch) each still lead another index, so
that every lookup by one of them, and the check PostgreSQL and Django's
PROTECT make when a wallet, a batch or a client is deleted, reads an index
rather than the whole table; and the migration goes back (the four indexes
again) and forward."""

import pytest
from django.db import connection

from wallet_project.tests.migrating import migrate

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("transfers", "0019_hold_request_keys")]
AFTER = [("transfers", "0020_fk_indexes_led_by_composites")]
FOREIGN_KEYS = ["batch_id", "client_id", "destination_wallet_id", "source_wallet_id"]


def indexes_led_by() -> dict[str, set[str]]:
    """Each column of transaction_logs that leads a valid index that serves
    every lookup by it, and the names of those indexes: unconditional, or on
    the rows where the column IS NOT NULL (an equality implies it: migration
    0021's batch index); a partial index on any other condition serves only
    the lookups it covers."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT a.attname, c.relname
              FROM pg_index i
              JOIN pg_class c ON c.oid = i.indexrelid
              JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
             WHERE i.indrelid = 'transaction_logs'::regclass AND i.indisvalid
               AND (i.indpred IS NULL OR pg_get_expr(i.indpred, i.indrelid) = '(' || a.attname || ' IS NOT NULL)')
            """
        )
        led: dict[str, set[str]] = {}
        for column, index in cursor.fetchall():
            led.setdefault(column, set()).add(index)
    return led


def test_every_foreign_key_of_a_log_leads_an_index():
    led = indexes_led_by()

    assert {column: sorted(led.get(column, ())) for column in FOREIGN_KEYS} == {
        "batch_id": ["transfers_transactionlog_unique_batch_index"],
        "client_id": ["transfers_transactionlog_unique_client_key"],
        "destination_wallet_id": ["idx_txlogs_destination_wallet"],
        "source_wallet_id": ["idx_txlogs_source_wallet"],
    }


def test_the_migration_goes_back_to_the_four_indexes_and_forward_again(back_to_latest):
    migrate(BEFORE)
    before = indexes_led_by()
    assert all(len(before[column]) == 2 for column in FOREIGN_KEYS), before

    migrate(AFTER)
    after = indexes_led_by()
    assert {column: len(after[column]) for column in FOREIGN_KEYS} == dict.fromkeys(FOREIGN_KEYS, 1)
