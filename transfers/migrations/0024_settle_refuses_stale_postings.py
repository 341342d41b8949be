"""The settle statement refuses a posting whose logs are not all as decided
(docs/design.md, "The settle statement's refusal"): SETTLE (transfers/engine.py) calls
this function once, with how many of the posting's logs it found as decided
(each PENDING; a reversal's original COMPLETED) and how many the posting
names; when they differ it raises, and the whole statement (every balance,
held, exposure, daily total, client debit, log, reversal and event it would
write) fails with it. The caller's row lock and PENDING check keep that from
happening: it is a bug if it ever fires, and it is loud.

integrity_constraint_violation, as the ledger's other rules in the database:
the service reads it as IntegrityError, a bug (500 at the API, ERROR in
reconciliation's run), never as a business rule or a retry.

Safe on a live ledger: a new function only; SETTLE names it from the
release that ships with this migration.
"""

from django.db import migrations

FUNCTION = """
CREATE FUNCTION settle_as_decided(matched bigint, named integer) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
  IF matched IS DISTINCT FROM named THEN
    RAISE EXCEPTION 'settle refused: % of the posting''s % logs are no longer as decided', named - matched, named
      USING ERRCODE = 'integrity_constraint_violation',
            DETAIL = 'Each log must be PENDING and a reversal''s original COMPLETED; nothing is written.';
  END IF;
  RETURN true;
END
$$;
"""


class Migration(migrations.Migration):
    dependencies = [
        ("transfers", "0023_room_for_hot_updates"),
    ]

    operations = [
        migrations.RunSQL(sql=FUNCTION, reverse_sql="DROP FUNCTION IF EXISTS settle_as_decided(bigint, integer)"),
    ]
