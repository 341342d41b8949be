"""Re-drive PENDING transactions, for a person on call.

python manage.py reconcile                       # PENDING older than RECONCILE_PENDING_AFTER
python manage.py reconcile --older-than 60       # seconds
python manage.py reconcile --dry-run
python manage.py reconcile --transaction TXN-20261124ABCDEFGHJK   # or a log id

A batch of payouts left PENDING is settled whole (its row is batch:<id>); a
payout's reference given to --transaction settles its batch.
"""

import sys
from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError

from reconciliation import services
from transfers.models import TransactionLog, TransactionStatus
from wallet_project.api import StrictIntegerField, option_reader

# --older-than: a whole number of seconds, 0 or more, read as the API reads a
# whole number (StrictIntegerField: ASCII digits, so not int()'s sign, spaces,
# underscores or other scripts' digits). A negative age would take PENDING
# logs still in their clients' hands.
seconds = option_reader(StrictIntegerField(min_value=0))


class Command(BaseCommand):
    help = "Complete or fail PENDING transactions that a crash left behind."

    def add_arguments(self, parser):
        parser.add_argument("--older-than", type=seconds, metavar="SECONDS", help="Default: RECONCILE_PENDING_AFTER.")
        parser.add_argument("--dry-run", action="store_true", help="List what would be re-driven; change nothing.")
        parser.add_argument("--transaction", metavar="ID_OR_REFERENCE", help="Only this transaction (any age).")

    def handle(self, *args, older_than, dry_run, transaction, **options):
        if transaction:
            try:
                log = services.pending_log_lookup(identifier=transaction)
            except ValueError as exc:
                raise CommandError(f"--transaction {transaction!r}: {exc}") from None
            if log is None:
                raise CommandError(f"No transaction {transaction!r}.")
            if log.status != TransactionStatus.PENDING:
                self.stdout.write(f"{log.reference} is {log.status}: nothing to do.")
                return
            logs, batches = TransactionLog.objects.filter(pk=log.pk), None
        else:
            age = timedelta(seconds=older_than) if older_than is not None else None
            logs = services.stale_pending_logs(older_than=age)
            batches = services.stale_pending_batches(older_than=age)

        total = logs.count() + (batches.count() if batches is not None else 0)
        if total == 0:
            self.stdout.write("No PENDING transactions to reconcile.")
            return
        verb = "Would re-drive" if dry_run else "Re-driving"
        self.stdout.write(f"{verb} {total} PENDING transaction(s).")
        done = 0

        def progress(_outcome):
            nonlocal done
            done += 1
            # A progress line on a terminal for large backlogs; quiet otherwise.
            if total >= 100 and sys.stderr.isatty() and (done % 100 == 0 or done == total):
                sys.stderr.write(f"\r  {done}/{total}")
                sys.stderr.flush()

        outcomes = services.logs_reconcile(logs=logs, batches=batches, dry_run=dry_run, on_progress=progress)
        if total >= 100 and sys.stderr.isatty():
            sys.stderr.write("\n")
        counts = services.outcome_counts(outcomes)
        self._table(outcomes, counts)
        errors = counts["ERROR"]
        if errors:
            raise CommandError(f"{errors} transaction(s) could not be settled; see the log, then the runbook.")

    def _table(self, outcomes, counts):
        rows = [("REFERENCE", "OUTCOME", "DETAIL")] + [(o.reference, o.outcome, o.detail) for o in outcomes]
        widths = [max(len(row[i]) for row in rows) for i in range(2)]
        for row in rows:
            self.stdout.write(f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]}".rstrip())
        self.stdout.write("Summary: " + ", ".join(f"{name} {count}" for name, count in sorted(counts.items())))
