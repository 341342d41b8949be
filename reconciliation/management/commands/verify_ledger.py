"""Prove the books balance: conservation per currency, every wallet's balance
equal to its ledger, no negative customer wallet; with --chain, also that the
ledger chain holds (every finished transaction as it was when chained, none
missing), and with --checkpoint POS:HASH that the chain still has a published
head. Exit status 1 on any discrepancy, so it can gate a deploy or page someone.

    python manage.py verify_ledger
    python manage.py verify_ledger --chain [--checkpoint 1234:9f86d0...]
"""

import time

from django.core.management.base import BaseCommand, CommandError

from reconciliation import chain, services


class Command(BaseCommand):
    help = (
        "Check invariants 1-3 over the whole database (with --chain, the ledger chain too); "
        "exit 1 if any discrepancy is found."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--chain", action="store_true", help="Also recompute the ledger chain and name its first broken link."
        )
        parser.add_argument(
            "--checkpoint",
            metavar="POS:HASH",
            help="A published ledger.checkpoint (implies --chain): the link at POS must still have HASH.",
        )

    def handle(self, *args, **options):
        checkpoint = None
        if options["checkpoint"]:
            try:
                checkpoint = chain.parse_checkpoint(options["checkpoint"])
            except ValueError as exc:
                raise CommandError(f"--checkpoint {options['checkpoint']!r}: {exc}") from None
        started = time.monotonic()
        report = chain.chain_verify(checkpoint=checkpoint) if options["chain"] or checkpoint else None
        discrepancies = services.ledger_verify(chain=chain.chain_discrepancies(report) if report else None)
        elapsed = time.monotonic() - started
        for d in discrepancies:
            self.stdout.write(f"{d.invariant:<17} {d.subject:<36} {d.detail}")
        if discrepancies:
            self.stderr.write(f"{len(discrepancies)} discrepancies found ({elapsed:.2f}s).")
            raise SystemExit(1)
        self.stdout.write(f"The books balance: no discrepancies ({elapsed:.2f}s).")
        if report is not None:
            head = f"head {report.head.position}:{report.head.hash}" if report.head else "empty"
            proven = f"; checkpoint {report.checkpoint.position} holds" if report.checkpoint else ""
            self.stdout.write(f"The ledger chain holds: {report.links} links, {head}{proven}.")
