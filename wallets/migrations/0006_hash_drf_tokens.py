"""Existing clients keep their keys: each DRF token (`authtoken_token`, in
clear) becomes an API key stored as its SHA-256, under the same client, and
the clear rows are deleted. `Authorization: Token <key>` goes on working
until the client rotates it (docs/operations.md, "API keys").

Irreversible: once the clear tokens are gone they cannot be written back.
The table of the removed `rest_framework.authtoken` app stays, empty, as
Django leaves a removed app's tables; it may be dropped by hand.
"""

import hashlib

from django.db import migrations

# Of a token's 40 hex digits, 8 are its prefix (32 of 160 bits: 128 stay
# secret); longer only if two tokens began alike.
LEGACY_PREFIX_LENGTH = 8


def hash_drf_tokens(apps, schema_editor) -> None:
    ApiKey = apps.get_model("wallets", "ApiKey")
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass('authtoken_token') IS NOT NULL")
        if not cursor.fetchone()[0]:
            return  # a database created after the app was removed
        cursor.execute("SELECT key, user_id, created FROM authtoken_token ORDER BY created, key FOR UPDATE")
        tokens = cursor.fetchall()
        taken = set(ApiKey.objects.values_list("prefix", flat=True))
        for key, user_id, created in tokens:
            length = LEGACY_PREFIX_LENGTH
            while key[:length] in taken:
                length += 2
            taken.add(key[:length])
            ApiKey.objects.create(
                client_id=user_id,
                name="DRF token, hashed in place",
                prefix=key[:length],
                digest=hashlib.sha256(key.encode()).hexdigest(),
                created_at=created,
            )
        cursor.execute("DELETE FROM authtoken_token")


class Migration(migrations.Migration):
    dependencies = [("wallets", "0005_api_keys")]

    # Backwards: nothing to undo that can be undone (the clear tokens are gone).
    operations = [migrations.RunPython(hash_drf_tokens, migrations.RunPython.noop, elidable=False)]
