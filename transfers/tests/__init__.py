"""Helpers the apps' tests share about the ledger."""

from transfers.models import Hold, TransactionLog
from wallets.models import Wallet


def ledger_state() -> tuple:
    """Every wallet's balance and held amount, every log's status and every
    hold's: what a refused request must leave exactly as it was."""
    return (
        sorted(Wallet.objects.values_list("pk", "balance", "held")),
        sorted(TransactionLog.objects.values_list("pk", "status")),
        sorted(Hold.objects.values_list("pk", "status")),
    )
