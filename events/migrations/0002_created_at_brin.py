"""The events' created_at index a BRIN instead of a b-tree: the retention
purge and a resend from an instant read it (events/models.py); a b-tree was
one more index entry per event, written by the settle statement under the
wallet row locks, two per transfer (bench/HISTORY.md, 2026-12-07 12:12).
Backwards, the b-tree again."""

import django.contrib.postgres.indexes
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("events", "0001_initial"),
    ]

    operations = [
        migrations.RemoveIndex(model_name="event", name="idx_events_created_at"),
        migrations.AddIndex(
            model_name="event",
            index=django.contrib.postgres.indexes.BrinIndex(
                autosummarize=True, fields=["created_at"], name="idx_events_created_at"
            ),
        ),
    ]
