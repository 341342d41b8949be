"""Helpers the apps' tests share about the ledger."""

from transfers.models import TransactionLog
from wallets.models import Wallet


def ledger_state() -> tuple:
    """Every wallet's balance and every log's status: what a refused request
    must leave exactly as it was."""
    return (
        sorted(Wallet.objects.values_list("pk", "balance")),
        sorted(TransactionLog.objects.values_list("pk", "status")),
    )
