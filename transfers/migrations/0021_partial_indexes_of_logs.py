"""Three indexes of transaction_logs made partial, so that a movement writes
fewer index entries (docs/design.md, "The indexes of transaction_logs";
bench/HISTORY.md, 2026-12-07 12:12):

- idx_txlogs_status only on the logs not COMPLETED: the settle that
  completes a log adds no entry to it (every query by status that reads it
  asks for PENDING, FAILED or REVERSED);
- the unique (batch, batch_index) only on a batch's payouts: a single
  movement writes no entry, on insert nor on settle;
- reversal_of's uniqueness a partial unique index on the compensating logs
  alone (transfers_transactionlog_one_reversal_each), in place of the
  column's own UNIQUE, which held a NULL entry for every other log.

Every rule stays: a batch index and a reversal are as unique as before, and
a lookup or a foreign-key check by batch_id or reversal_of_id (an equality,
which implies IS NOT NULL) reads the partial index. reversal_of keeps its
foreign key: its field is altered in the migration state only (Django's
AlterField would drop and re-add the foreign key, which checks every row
under the table's lock). Each index is built under the table's lock
(SHARE: writes wait, reads go on), as every earlier index of this table
was. Every new index is built before an old one is dropped, the two that
keep their names built under temporary ones and renamed last: a DROP takes
the table's ACCESS EXCLUSIVE lock, held to the migration's commit, so a
drop before a build would stop every read of the logs (a lookup by
reference, a list) for as long as the builds take.
"""

import django.db.models.deletion
from django.db import migrations, models

import transfers.models

# PostgreSQL's name for the column's UNIQUE that migration 0001 made
# (<table>_<column>_key).
REVERSAL_UNIQUE = "transaction_logs_reversal_of_id_key"


# The temporary names the two renamed indexes are built under.
STATUS_BUILT_AS = "idx_txlogs_status_partial"
BATCH_INDEX = "transfers_transactionlog_unique_batch_index"
BATCH_INDEX_BUILT_AS = "transfers_transactionlog_unique_batch_index_partial"


def unique_batch_index(name: str) -> models.UniqueConstraint:
    return models.UniqueConstraint(
        condition=models.Q(("batch__isnull", False)), fields=("batch", "batch_index"), name=name
    )


class Migration(migrations.Migration):
    dependencies = [
        ("transfers", "0020_fk_indexes_led_by_composites"),
    ]

    operations = [
        # The builds first (SHARE lock)...
        migrations.AddIndex(
            model_name="transactionlog",
            index=models.Index(
                condition=models.Q(("status", "COMPLETED"), _negated=True),
                fields=["status", "created_at"],
                name=STATUS_BUILT_AS,
            ),
        ),
        migrations.AddConstraint(model_name="transactionlog", constraint=unique_batch_index(BATCH_INDEX_BUILT_AS)),
        migrations.AddConstraint(
            model_name="transactionlog",
            constraint=models.UniqueConstraint(
                condition=models.Q(("reversal_of__isnull", False)),
                fields=("reversal_of",),
                name="transfers_transactionlog_one_reversal_each",
            ),
        ),
        # ...then the drops (ACCESS EXCLUSIVE, to the commit), and the renames.
        migrations.RemoveIndex(model_name="transactionlog", name="idx_txlogs_status"),
        migrations.RemoveConstraint(model_name="transactionlog", name=BATCH_INDEX),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="transactionlog",
                    name="reversal_of",
                    field=transfers.models.OneToOneIndexedByConstraint(
                        blank=True,
                        db_index=False,
                        help_text="For a compensating transfer: the log it reverses (at most one each).",
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="reversed_by",
                        to="transfers.transactionlog",
                    ),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    sql=f"ALTER TABLE transaction_logs DROP CONSTRAINT {REVERSAL_UNIQUE}",
                    reverse_sql=f"ALTER TABLE transaction_logs ADD CONSTRAINT {REVERSAL_UNIQUE} UNIQUE (reversal_of_id)",
                )
            ],
        ),
        migrations.RenameIndex(model_name="transactionlog", new_name="idx_txlogs_status", old_name=STATUS_BUILT_AS),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveConstraint(model_name="transactionlog", name=BATCH_INDEX_BUILT_AS),
                migrations.AddConstraint(model_name="transactionlog", constraint=unique_batch_index(BATCH_INDEX)),
            ],
            database_operations=[
                migrations.RunSQL(
                    sql=f"ALTER INDEX {BATCH_INDEX_BUILT_AS} RENAME TO {BATCH_INDEX}",
                    reverse_sql=f"ALTER INDEX {BATCH_INDEX} RENAME TO {BATCH_INDEX_BUILT_AS}",
                )
            ],
        ),
    ]
