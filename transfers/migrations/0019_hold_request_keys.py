"""A hold request's key (capture, void, extend; one hold or a set) is the
client's, bound to its holds and its request (transfers.models.HoldRequestKey).
A new table; the keys that already ended or extended holds are copied into
it, so that they stay bound to the holds they ended: a set's holds share one
row, and of a key used twice (which this table now prevents) the first copy
stays, an end's before an extension's."""

import django.contrib.postgres.fields
import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

BOUND_KEYS = """
INSERT INTO hold_request_keys (client_id, idempotency_key, fingerprint, hold_ids, created_at)
SELECT client_id, end_key, end_fingerprint, array_agg(id ORDER BY id), min(ended_at)
  FROM holds WHERE end_key <> '' GROUP BY client_id, end_key, end_fingerprint
ON CONFLICT DO NOTHING;
INSERT INTO hold_request_keys (client_id, idempotency_key, fingerprint, hold_ids, created_at)
SELECT client_id, extend_key, extend_fingerprint, array_agg(id ORDER BY id), min(updated_at)
  FROM holds WHERE extend_key <> '' GROUP BY client_id, extend_key, extend_fingerprint
ON CONFLICT DO NOTHING;
"""


class Migration(migrations.Migration):
    dependencies = [
        ("transfers", "0018_holds"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="HoldRequestKey",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("idempotency_key", models.CharField(max_length=255)),
                ("fingerprint", models.CharField(max_length=64)),
                ("hold_ids", django.contrib.postgres.fields.ArrayField(base_field=models.UUIDField(), size=None)),
                ("created_at", models.DateTimeField()),
                (
                    "client",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT, related_name="+", to=settings.AUTH_USER_MODEL
                    ),
                ),
            ],
            options={
                "db_table": "hold_request_keys",
                "constraints": [
                    models.UniqueConstraint(
                        fields=("client", "idempotency_key"), name="transfers_holdrequestkey_unique_client_key"
                    )
                ],
            },
        ),
        migrations.RunSQL(BOUND_KEYS, migrations.RunSQL.noop),
    ]
