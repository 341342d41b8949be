"""Migration events/0002_created_at_brin: the events' created_at index is a
BRIN (no b-tree entry per event written), the retention purge's query
still reads it, and the migration goes back (a b-tree) and forward."""

from datetime import timedelta

import pytest
from django.db import connection, transaction

from events.outbox import expired_events
from wallet_project.tests.migrating import builds_after_a_drop, migrate, migration_sql

pytestmark = pytest.mark.django_db(transaction=True)


def created_at_index() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'idx_events_created_at'")
        return cursor.fetchone()[0].split(" USING ", 1)[1]


def test_created_at_is_a_brin_index_that_the_purge_reads():
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # the plan of a large table
        read = expired_events(retention=timedelta(days=30)).values_list("pk", flat=True)[:5000].explain()

    assert created_at_index() == "brin (created_at) WITH (autosummarize='on')"
    assert "Bitmap Index Scan on idx_events_created_at" in read, read


def test_the_migration_goes_back_to_a_btree_and_forward_again(back_to_latest):
    migrate([("events", "0001_initial")])
    assert created_at_index() == "btree (created_at)"

    migrate([("events", "0002_created_at_brin")])
    assert created_at_index() == "brin (created_at) WITH (autosummarize='on')"


def test_the_brin_is_built_before_the_btree_is_dropped():
    # A drop takes the events' ACCESS EXCLUSIVE lock to the migration's
    # commit: a build after it would keep every read of the events waiting.
    statements = migration_sql("events", "0002_created_at_brin")

    assert any(s.lstrip().startswith("DROP INDEX") for s in statements), statements
    assert builds_after_a_drop(statements) == []
