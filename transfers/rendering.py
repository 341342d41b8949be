"""How a transaction is shown to a viewer, written once.

TRANSACTION_FIELDS is the one field list: the API's serializer
(transfers.serializers.TransactionLogSerializer) declares its fields from it.
A transaction looked up by key or reference (TransactionDetailSerializer)
adds its REVERSAL_LINKS, and so does an event: the SQL that writes a
transaction into its events (transaction_json_sql, run by the engine under
the row locks) is generated from DETAIL_FIELDS and the model's columns.
transfers/tests/test_events.py checks that they agree.

The idempotency key, the metadata and why a movement failed (PAYER_ONLY)
are shown only to a viewer who may see what the paying client sent
(selectors.shows_request_details, and its SQL twin SHOWS_REQUEST_DETAILS_SQL);
anyone else gets null for them.
"""

from django.db import models

from transfers.models import TransactionLog, TransactionStatus, TransactionType
from transfers.selectors import SHOWS_REQUEST_DETAILS_SQL
from wallet_project.api import timestamp_text

# (API name, model field; "relation.field" for a field of a related row), in
# the order the API shows them.
TRANSACTION_FIELDS = (
    ("id", "id"),
    ("idempotencyKey", "idempotency_key"),
    ("reference", "reference"),
    ("type", "type"),
    ("status", "status"),
    ("sourceWalletId", "source_wallet_id"),
    ("destinationWalletId", "destination_wallet_id"),
    # What each wallet is: a SETTLEMENT wallet (a deposit's source, a
    # withdrawal's destination) is the service's own, and no client can read it.
    ("sourceWalletKind", "source_wallet.kind"),
    ("destinationWalletKind", "destination_wallet.kind"),
    ("amount", "amount"),
    ("currency", "currency"),
    ("metadata", "metadata"),
    ("errorCode", "error_code"),
    ("errorMessage", "error_message"),
    ("createdAt", "created_at"),
    ("updatedAt", "updated_at"),
    ("completedAt", "completed_at"),
)
FIELD_NAMES = [name for name, _ in TRANSACTION_FIELDS]
# A reversal and its compensating transaction name each other: reversalOf on
# the compensating one, reversedBy (the log whose reversal_of it is) on the
# REVERSED one; null otherwise (docs/api.md).
REVERSAL_LINKS = (("reversalOf", "reversal_of_id"), ("reversedBy", "reversed_by.id"))
DETAIL_FIELDS = TRANSACTION_FIELDS + REVERSAL_LINKS
DETAIL_FIELD_NAMES = [name for name, _ in DETAIL_FIELDS]
# What the paying client sent, and why its movement failed (which says, for
# one, that the payer lacked the money): shown to it (and to auditors) only.
PAYER_ONLY = frozenset({"idempotencyKey", "metadata", "errorCode", "errorMessage"})


def utc_text_sql(column: str) -> str:
    """SQL for a timestamp as DRF's DateTimeField writes it in UTC
    ("2026-11-30T05:46:47.123456Z", no fraction when it is zero)."""
    whole = f"""to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS')"""
    fraction = f"""CASE WHEN mod(extract(microseconds FROM {column})::bigint, 1000000) = 0 THEN ''
        ELSE to_char({column} AT TIME ZONE 'UTC', '.US') END"""
    return f"({whole} || {fraction} || 'Z')"


def _field_sql(path: str, row: str) -> str:
    """SQL for one field of the log in `row` as the API writes it in JSON."""
    if "." in path:
        relation, name = path.split(".")
        link = TransactionLog._meta.get_field(relation)
        related = link.related_model
        if link.concrete:  # the log's foreign key: the row it points at
            match = f"{related._meta.pk.column} = {row}.{link.column}"
        else:  # a one-to-one pointing back at the log: the row that points at it
            match = f"{link.field.column} = {row}.{TransactionLog._meta.pk.column}"
        return f"(SELECT {related._meta.get_field(name).column} FROM {related._meta.db_table} WHERE {match})"  # noqa: S608 (model names)
    field = TransactionLog._meta.get_field(path)
    column = f"{row}.{field.column}"
    if isinstance(field, models.DateTimeField):
        text = utc_text_sql(column)
        return f"CASE WHEN {column} IS NOT NULL THEN {text} END" if field.null else text
    if isinstance(field, models.DecimalField):
        return f"{column}::text"  # NUMERIC(20,2) as text: "12.30", as DRF writes it
    return column


def transaction_json_sql(*, row: str, viewer: str) -> str:
    """SQL for the transaction in `row` (a transaction_logs row) as a JSON
    object, as a lookup by reference shows it to the client whose id is
    `viewer` (DETAIL_FIELDS: reversal links included)."""
    shows = SHOWS_REQUEST_DETAILS_SQL.format(viewer=viewer, row=row)
    pairs = ",\n    ".join(f"'{name}', {_field_sql(path, row)}" for name, path in DETAIL_FIELDS)
    # The payer-only fields nulled by one overlay, so that the viewer test is
    # written once in the statement (the engine's settle statement must stay
    # under psycopg's 4096-byte prepared-statement cache: test_engine_statements).
    hidden = "{" + ", ".join(f'"{name}": null' for name in sorted(PAYER_ONLY)) + "}"
    return f"(jsonb_build_object(\n    {pairs}) || CASE WHEN {shows} THEN '{{}}'::jsonb ELSE '{hidden}'::jsonb END)"


# --- money answers (docs/api.md, "Requests and responses") ----------------------------

COMPLETED_MESSAGES = {
    TransactionType.TRANSFER: "Transfer completed successfully",
    TransactionType.DEPOSIT: "Deposit completed",
    TransactionType.WITHDRAWAL: "Withdrawal completed",
}


def movement_result_json(result) -> dict:
    """The answer to a money-moving request (a transfers.models.MovementResult),
    as the first version of the API wrote it: the one rendering of it, for
    its 201, its replays and its 422's data. The transaction's id is `id`, as
    in every lookup; `transactionId` repeats it for the first version's
    clients (deprecated). serializers.MovementResultSerializer describes it
    in the schema; transfers/tests/test_serializers.py checks the two agree."""
    log = result.log
    if result.replayed:
        message = "Transaction already processed"
    elif log.status == TransactionStatus.FAILED:
        message = log.error_message
    else:
        message = COMPLETED_MESSAGES[log.type]
    pk = str(log.pk)
    return {
        "id": pk,
        "transactionId": pk,
        "status": str(log.status),
        "reference": log.reference,
        "message": message,
    }


# --- batches (docs/api.md, "Batch payouts") ---------------------------------------------


def batch_json(batch) -> dict:
    """A batch's outcome as the API shows it (a TransferBatch with the
    fields BATCH_FIELDS names): the `batch.finished` event's data
    (BatchFinished in the schema) and, with the message and each payout's
    outcome after it, every batch answer (serializers.BatchResultSerializer):
    the one rendering of a batch. Amounts with two places, times UTC with Z."""
    return {
        "batchId": str(batch.pk),
        "status": str(batch.status),
        "atomic": batch.atomic,
        "sourceWalletId": str(batch.source_wallet_id),
        "payoutCount": batch.payout_count,
        "totalAmount": f"{batch.total_amount:.2f}",
        "completedCount": batch.completed_count,
        "completedAmount": f"{batch.completed_amount:.2f}",
        "failedCount": batch.failed_count,
        "errorCode": batch.error_code,
        "errorMessage": batch.error_message,
        "failedPayoutIndex": batch.failed_index,
        "createdAt": timestamp_text(batch.created_at),
        "finishedAt": timestamp_text(batch.finished_at),
    }


def batch_result_json(result) -> dict:
    """A batch and each payout's outcome (a transfers.models.BatchResult):
    every batch answer, its replays and its 422's data
    (serializers.BatchResultSerializer describes it in the schema)."""
    return {
        **batch_json(result.batch),
        "message": "Batch already processed" if result.replayed else "Batch processed",
        "payouts": [
            {
                "index": p.index,
                "idempotencyKey": p.idempotency_key,
                "destinationWalletId": str(p.destination_wallet_id),
                "amount": f"{p.amount:.2f}",
                "transactionId": str(p.transaction_id) if p.transaction_id else None,
                "reference": p.reference,
                "status": str(p.status),
                "errorCode": p.error_code,
                "errorMessage": p.error_message,
            }
            for p in result.payouts
        ],
    }


# The model fields batch_json reads, in its order.
BATCH_FIELDS = (
    "id", "status", "atomic", "source_wallet_id", "payout_count", "total_amount", "completed_count",
    "completed_amount", "failed_count", "error_code", "error_message", "failed_index", "created_at", "finished_at",
)  # fmt: skip


# --- holds (docs/api.md, "Holds") ------------------------------------------------------

# What the placing client sent, and why the hold failed: shown to it only
# (the payee's copy of an event has null for them), as a transaction's PAYER_ONLY.
HOLD_PAYER_ONLY = frozenset({"idempotencyKey", "metadata", "errorCode", "errorMessage"})


def hold_json(hold, *, viewer_id: int | None) -> dict:
    """A hold as the API shows it to the client `viewer_id` (its placing
    client sees everything; the payee's owner sees HOLD_PAYER_ONLY as null):
    the one rendering of a hold, for answers and events alike.
    Amounts are strings with two places, times ISO 8601 UTC."""

    def amount(value) -> str | None:
        return None if value is None else f"{value:.2f}"

    when = timestamp_text

    data = {
        "id": str(hold.pk),
        "idempotencyKey": hold.idempotency_key,
        "status": hold.status,
        "sourceWalletId": str(hold.source_wallet_id),
        "destinationWalletId": str(hold.destination_wallet_id),
        "amount": amount(hold.amount),
        "currency": hold.currency,
        "capturedAmount": amount(hold.captured_amount),
        "transactionId": None if hold.transaction_id is None else str(hold.transaction_id),
        "expiresAt": when(hold.expires_at),
        "metadata": hold.metadata,
        "errorCode": hold.error_code or None,
        "errorMessage": hold.error_message or None,
        "createdAt": when(hold.created_at),
        "updatedAt": when(hold.updated_at),
        "endedAt": when(hold.ended_at),
    }
    if viewer_id != hold.client_id:
        data.update(dict.fromkeys(HOLD_PAYER_ONLY))
    return data
