"""Prove the books balance: conservation per currency, every wallet's balance
equal to its ledger, no negative customer wallet. Exit status 1 on any
discrepancy, so it can gate a deploy or page someone.

    python manage.py verify_ledger
"""

import time

from django.core.management.base import BaseCommand

from reconciliation import services


class Command(BaseCommand):
    help = "Check invariants 1-3 over the whole database; exit 1 if any discrepancy is found."

    def handle(self, *args, **options):
        started = time.monotonic()
        discrepancies = services.ledger_verify()
        elapsed = time.monotonic() - started
        for d in discrepancies:
            self.stdout.write(f"{d.invariant:<17} {d.subject:<36} {d.detail}")
        if discrepancies:
            self.stderr.write(f"{len(discrepancies)} discrepancies found ({elapsed:.2f}s).")
            raise SystemExit(1)
        self.stdout.write(f"The books balance: no discrepancies ({elapsed:.2f}s).")
