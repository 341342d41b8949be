"""The ledger chain (docs/operations.md, "A provable history"): one link per
finished transaction log, each a SHA-256 over the previous link's hash and the
log's canonical fields (reconciliation/chain.py).

Append-only in the database: a trigger refuses UPDATE and DELETE of a link
(migration 0001). No foreign key to transaction_logs: a log deleted by hand
must leave its link behind, for the check to name the position it held.
"""

from django.db import models
from django.db.models.functions import Now


class ChainLink(models.Model):
    position = models.BigIntegerField(primary_key=True, help_text="1 for the first finished log, then 2, 3, ...")
    log_id = models.UUIDField(unique=True, help_text="The transaction log this link covers.")
    # The log's finished_txid when it was chained: the chain's order is
    # (txid, log_id), and the next tick starts after the head's.
    txid = models.BigIntegerField()
    # sha256(previous link's hash, or 32 zero bytes, || the log's canonical form)
    hash = models.BinaryField(max_length=32)
    chained_at = models.DateTimeField(db_default=Now())

    class Meta:
        db_table = "ledger_chain"
        ordering = ["position"]

    def __str__(self) -> str:
        return f"link {self.position} {bytes(self.hash).hex()}"
