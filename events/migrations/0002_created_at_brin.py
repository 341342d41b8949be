"""The events' created_at index a BRIN instead of a b-tree: the retention
purge and a resend from an instant read it (events/models.py); a b-tree was
one more index entry per event, written by the settle statement under the
wallet row locks, two per transfer (bench/HISTORY.md, 2026-12-07 12:12).
Backwards, the b-tree again.

The BRIN is built first, under a temporary name, and the b-tree dropped
after it: a DROP INDEX takes the table's ACCESS EXCLUSIVE lock to the
migration's commit, so a drop before the build would keep every read of the
events (GET /api/events, the webhook deliveries) waiting for the whole scan
of the table the build is (the build's own SHARE lock lets reads go on).
"""

import django.contrib.postgres.indexes
from django.db import migrations

# The temporary name the BRIN is built under.
BUILT_AS = "idx_events_created_at_brin"


class Migration(migrations.Migration):
    dependencies = [
        ("events", "0001_initial"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="event",
            index=django.contrib.postgres.indexes.BrinIndex(autosummarize=True, fields=["created_at"], name=BUILT_AS),
        ),
        migrations.RemoveIndex(model_name="event", name="idx_events_created_at"),
        migrations.RenameIndex(model_name="event", new_name="idx_events_created_at", old_name=BUILT_AS),
    ]
