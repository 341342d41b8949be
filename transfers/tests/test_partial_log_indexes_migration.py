"""Migrations transfers/0021_partial_indexes_of_logs and 0022_drop_key_index:
the status index, the unique (batch, batch_index) and reversal_of's
uniqueness hold only the logs their queries and rules are about, the key has
no index of its own (docs/design.md, "The indexes of transaction_logs"),
each query by them still reads an index, and the migrations go back (the
indexes as they were) and forward."""

import uuid

import pytest
from django.contrib import admin
from django.db import IntegrityError, connection, transaction

from reconciliation.services import stale_pending_logs
from transfers.models import TransactionLog, TransactionStatus
from transfers.tests.factories import ApiUserFactory
from transfers.tests.test_constraints import raw_insert_log
from wallet_project.tests.migrating import builds_after_a_drop, migrate, migration_sql
from wallets.tests.factories import WalletFactory

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("transfers", "0020_fk_indexes_led_by_composites")]
AFTER = [("transfers", "0022_drop_key_index")]
PARTIAL = {
    "idx_txlogs_status": "(status, created_at) WHERE (NOT ((status)::text = 'COMPLETED'::text))",
    "transfers_transactionlog_unique_batch_index": "(batch_id, batch_index) WHERE (batch_id IS NOT NULL)",
    "transfers_transactionlog_one_reversal_each": "(reversal_of_id) WHERE (reversal_of_id IS NOT NULL)",
}
COLUMN_UNIQUE = "transaction_logs_reversal_of_id_key"
KEY_INDEX = "idx_txlogs_idempotency_key"


def index_definitions() -> dict[str, str]:
    """Each index of transaction_logs: its name and what follows `btree` in its definition."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'transaction_logs'")
        return {name: definition.split(" USING btree ", 1)[1] for name, definition in cursor.fetchall()}


def plan(queryset) -> str:
    """The plan PostgreSQL would choose for `queryset` if the table were
    large (no sequential scan on a test's few rows)."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        return queryset.explain()


def test_the_three_indexes_hold_only_the_logs_they_are_for():
    definitions = index_definitions()

    assert {name: definitions.get(name) for name in PARTIAL} == PARTIAL
    assert COLUMN_UNIQUE not in definitions
    assert KEY_INDEX not in definitions


@pytest.mark.parametrize(
    ("query", "index"),
    [
        (lambda: stale_pending_logs(), "idx_txlogs_status"),
        (lambda: TransactionLog.objects.filter(status=TransactionStatus.PENDING), "idx_txlogs_status"),
        (
            lambda: TransactionLog.objects.filter(status__in=[TransactionStatus.FAILED, TransactionStatus.REVERSED]),
            "idx_txlogs_status",
        ),
        (lambda: TransactionLog.objects.filter(batch_id=uuid.uuid4()), "transfers_transactionlog_unique_batch_index"),
        (
            lambda: TransactionLog.objects.filter(reversal_of_id=uuid.uuid4()),
            "transfers_transactionlog_one_reversal_each",
        ),
    ],
    ids=["re-drive", "pending", "failed-or-reversed", "by-batch", "reversed-by"],
)
def test_each_query_by_them_reads_its_partial_index(query, index):
    read = plan(query()).replace("\n", " ") + " "
    # An index scan says "using <index> on <table>", a bitmap index scan "on <index>".
    assert f"using {index} " in read or f"Bitmap Index Scan on {index} " in read, read


def test_supports_search_by_key_reads_the_client_key_index_under_each_client():
    ApiUserFactory(), ApiUserFactory()
    logs = TransactionLog.objects.all()
    found, _ = admin.site._registry[TransactionLog].get_search_results(None, logs, "some-key")

    read = plan(found)

    assert "Index Cond: ((client_id = ANY (" in read and "idempotency_key)::text = 'some-key'" in read, read
    assert "transfers_transactionlog_unique_client_key" in read, read


def test_the_migration_goes_back_to_the_full_indexes_and_forward_again(back_to_latest):
    migrate(BEFORE)
    before = index_definitions()
    assert before["idx_txlogs_status"] == "(status, created_at)"
    assert before["transfers_transactionlog_unique_batch_index"] == "(batch_id, batch_index)"
    assert before[COLUMN_UNIQUE] == "(reversal_of_id)"
    assert "transfers_transactionlog_one_reversal_each" not in before
    assert before[KEY_INDEX] == "(idempotency_key)"

    migrate(AFTER)
    after = index_definitions()
    assert {name: after.get(name) for name in PARTIAL} == PARTIAL
    assert COLUMN_UNIQUE not in after
    assert KEY_INDEX not in after


def test_a_second_reversal_is_refused_after_the_migration_as_before(back_to_latest):
    def second_reversal_refused(constraint: str) -> bool:
        with connection.cursor() as cursor:
            cursor.execute("SELECT id FROM transaction_logs LIMIT 1")
            (original,) = cursor.fetchone()
            try:
                with transaction.atomic():
                    cursor.execute(
                        "UPDATE transaction_logs SET reversal_of_id = %s WHERE id <> %s", [original, original]
                    )
            except IntegrityError as refused:
                return refused.__cause__.diag.constraint_name == constraint
        return False

    fields = {
        "client": ApiUserFactory(),
        "idempotency_key": "k",
        "movement_fingerprint": "0" * 64,
        "type": "TRANSFER",
        "source_wallet": WalletFactory(),
        "destination_wallet": WalletFactory(),
        "amount": "10.00",
        "currency": "NGN",
    }
    for n in range(3):
        raw_insert_log(fields, idempotency_key=f"k{n}", reference=f"TXN-PARTIALIDX{n}")

    assert second_reversal_refused("transfers_transactionlog_one_reversal_each")
    migrate(BEFORE)
    assert second_reversal_refused(COLUMN_UNIQUE)


def test_every_index_is_built_before_an_old_one_is_dropped():
    # A drop takes the logs' ACCESS EXCLUSIVE lock to the migration's commit:
    # a build after it would keep every read of the logs waiting.
    statements = migration_sql("transfers", "0021_partial_indexes_of_logs")

    assert any(s.lstrip().startswith("DROP INDEX") for s in statements), statements
    assert builds_after_a_drop(statements) == []
