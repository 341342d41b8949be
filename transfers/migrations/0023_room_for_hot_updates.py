"""Room on each page of wallets and wallet_daily_totals for the new versions
of their rows (fillfactor 70): the settle statement updates them in place
and changes no indexed column (balance, held and updated_at; debits and
credits), so an update that finds room on its row's page is a HOT update,
which writes none of the table's indexes (eight on wallets, two on
wallet_daily_totals); one that does not writes them all. Measured with
bench/index_writes.py (bench/HISTORY.md, 2026-12-07 12:12): HOT updates of
wallets 74 % -> 89 %, of daily totals 70 % -> 87 %.

Only the storage parameter is set: the pages written from now on keep the
room, and PostgreSQL prunes a full page's dead versions sooner; existing
pages get it when the table is rewritten (VACUUM FULL, which locks the
table: in a maintenance window, if at all). Backwards, the default again.
"""

from django.db import migrations

TABLES = ("wallets", "wallet_daily_totals")
FILLFACTOR = 70


class Migration(migrations.Migration):
    dependencies = [
        ("transfers", "0022_drop_key_index"),
        ("wallets", "0017_keys_and_events_move_to_their_apps"),
    ]

    operations = [
        migrations.RunSQL(
            sql=[f"ALTER TABLE {table} SET (fillfactor = {FILLFACTOR})" for table in TABLES],
            reverse_sql=[f"ALTER TABLE {table} RESET (fillfactor)" for table in TABLES],
        )
    ]
