"""The two digests stored with a transaction say which is which: the canonical
movement asked for (movement_fingerprint) and the bytes sent (body_digest)."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("transfers", "0005_request_digest"),
    ]

    operations = [
        migrations.RenameField("transactionlog", "request_fingerprint", "movement_fingerprint"),
        migrations.RenameField("transactionlog", "request_digest", "body_digest"),
    ]
