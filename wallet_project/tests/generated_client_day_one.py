"""A client team's first hour, written against the Python client that
openapi-python-client generates from /api/schema/ (package `wallet_client`),
with no wrapper of its own: wallets, a deposit, a transfer and its replay, a
failed transfer, lookups by an odd key and by reference, the history page by
page, a batch and the event feed. It must pass `mypy --strict` as it is.

Run by wallet_project/tests/test_generated_client.py beside the generated
package: WALLET_BASE_URL and WALLET_API_KEY name the service and the key. It
prints one JSON line per answer it got (operation, method, status, body, the
headers that carry meaning) for the test to check against the schema.
"""

import json
import os
import time
import uuid
from typing import Any

from wallet_client import AuthenticatedClient
from wallet_client.api.events import events_list
from wallet_client.api.transfer import transfer_create, transfer_reference_retrieve, transfer_retrieve
from wallet_client.api.transfers import transfers_batch_create, transfers_batch_retrieve
from wallet_client.api.wallets import (
    wallets_create,
    wallets_deposit_create,
    wallets_list,
    wallets_retrieve,
    wallets_transactions_list,
    wallets_withdraw_create,
)
from wallet_client.models import (
    BatchFinishedEvent,
    BatchRequest,
    BatchResultEnvelope,
    CurrencyEnum,
    DepositCompletedEvent,
    Error,
    ErrorCode,
    MoneyRequest,
    MovementResult,
    MovementResultEnvelope,
    MovementResultError,
    PayoutRequest,
    TransactionDetailEnvelope,
    TransactionStatusEnum,
    TransferCompletedEvent,
    TransferFailedEvent,
    TransferRequest,
    WalletCreateRequest,
    WalletDetailEnvelope,
    WalletEnvelope,
    WalletHistoryEntryPageEnvelope,
    WalletListEnvelope,
)
from wallet_client.types import UNSET, Response, Unset

SEEN: list[dict[str, Any]] = []


def seen(operation: str, method: str, response: Response[Any]) -> None:
    """Record an answer for the test, which checks it against the schema."""
    headers = {name: response.headers.get(name) for name in ("Idempotent-Replayed", "Retry-After", "X-Request-ID")}
    SEEN.append(
        {
            "operation": operation,
            "method": method,
            "status": int(response.status_code),
            "body": json.loads(response.content),
            "headers": {name: value for name, value in headers.items() if value is not None},
        }
    )


def open_wallet(client: AuthenticatedClient) -> WalletEnvelope:
    answer = wallets_create.sync_detailed(
        client=client, body=WalletCreateRequest(user_id=uuid.uuid4(), currency=CurrencyEnum.NGN)
    )
    seen("/api/wallets", "post", answer)
    assert isinstance(answer.parsed, WalletEnvelope), answer.content
    return answer.parsed


def main() -> None:
    client = AuthenticatedClient(
        base_url=os.environ["WALLET_BASE_URL"], token=os.environ["WALLET_API_KEY"], prefix="Token"
    )
    run = uuid.uuid4().hex[:8]

    # Two wallets, and money into the first.
    ada, ben = open_wallet(client).data, open_wallet(client).data
    assert ada.balance == "0.00" and ada.currency is CurrencyEnum.NGN
    deposit = wallets_deposit_create.sync_detailed(
        ada.id, client=client, body=MoneyRequest(amount="1000.00"), idempotency_key=f"deposit-{run}"
    )
    seen("/api/wallets/{id}/deposit", "post", deposit)
    assert deposit.status_code == 201 and isinstance(deposit.parsed, MovementResultEnvelope)

    # A transfer, then the same request again: a replay, told by its status and header.
    body = TransferRequest(source_wallet_id=ada.id, destination_wallet_id=ben.id, amount="250.50")
    first = transfer_create.sync_detailed(client=client, body=body, idempotency_key=f"transfer-{run}")
    again = transfer_create.sync_detailed(client=client, body=body, idempotency_key=f'"transfer-{run}"')
    seen("/api/transfer", "post", first)
    seen("/api/transfer", "post", again)
    assert isinstance(first.parsed, MovementResultEnvelope) and isinstance(again.parsed, MovementResultEnvelope)
    assert first.status_code == 201 and again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.parsed.data.id == first.parsed.data.id
    assert first.parsed.data.status is TransactionStatusEnum.COMPLETED

    # A transfer the balance cannot cover: a 422 whose data is the FAILED transaction (the
    # operation's MovementResultError: a hold's 422 is HoldError, its data the FAILED hold).
    failed = transfer_create.sync_detailed(
        client=client,
        body=TransferRequest(
            source_wallet_id=ada.id, destination_wallet_id=ben.id, amount="999999.99", idempotency_key=f"big-{run}"
        ),
    )
    seen("/api/transfer", "post", failed)
    assert failed.status_code == 422 and isinstance(failed.parsed, MovementResultError), failed.content
    assert failed.parsed.code is ErrorCode.INSUFFICIENT_BALANCE
    assert isinstance(failed.parsed.data, MovementResult)
    assert failed.parsed.data.status is TransactionStatusEnum.FAILED

    # A key that is not plain ASCII goes in the body, and is looked up as it is.
    odd_key = f"loan/42 ünïcode {run}"
    withdrawal = wallets_withdraw_create.sync_detailed(
        ada.id, client=client, body=MoneyRequest(amount="10", idempotency_key=odd_key)
    )
    seen("/api/wallets/{id}/withdraw", "post", withdrawal)
    assert isinstance(withdrawal.parsed, MovementResultEnvelope), withdrawal.content
    by_key = transfer_retrieve.sync_detailed(odd_key, client=client)
    seen("/api/transfer/{idempotency_key}", "get", by_key)
    assert isinstance(by_key.parsed, TransactionDetailEnvelope), by_key.content
    assert by_key.parsed.data.idempotency_key == odd_key and by_key.parsed.data.amount == "10.00"
    by_reference = transfer_reference_retrieve.sync_detailed(first.parsed.data.reference, client=client)
    seen("/api/transfer/reference/{reference}", "get", by_reference)
    assert isinstance(by_reference.parsed, TransactionDetailEnvelope)
    assert by_reference.parsed.data.id == first.parsed.data.id

    # A wallet, a user's wallets, and the history one entry a page, cursor passed back as it is.
    wallet = wallets_retrieve.sync_detailed(ada.id, client=client)
    listed = wallets_list.sync_detailed(client=client, user_id=ada.user_id)
    seen("/api/wallets/{id}", "get", wallet)
    seen("/api/wallets", "get", listed)
    assert isinstance(wallet.parsed, WalletDetailEnvelope) and wallet.parsed.data.balance == "739.50"
    assert isinstance(listed.parsed, WalletListEnvelope) and [w.id for w in listed.parsed.data] == [ada.id]
    cursor: str | Unset | None = UNSET
    entries = []
    while cursor is not None:
        page = wallets_transactions_list.sync_detailed(ada.id, client=client, limit=1, cursor=cursor)
        seen("/api/wallets/{id}/transactions", "get", page)
        assert isinstance(page.parsed, WalletHistoryEntryPageEnvelope), page.content
        entries += page.parsed.data.results
        cursor = page.parsed.data.next_cursor
    assert len(entries) == 4  # deposit, transfer, the failed transfer, withdrawal

    # A batch of two payouts, each on its own.
    batch = transfers_batch_create.sync_detailed(
        client=client,
        idempotency_key=f"batch-{run}",
        body=BatchRequest(
            source_wallet_id=ada.id,
            atomic=False,
            transfers=[
                PayoutRequest(destination_wallet_id=ben.id, amount="1.25", idempotency_key=f"payout-1-{run}"),
                PayoutRequest(destination_wallet_id=ben.id, amount="2.75", idempotency_key=f"payout-2-{run}"),
            ],
        ),
    )
    seen("/api/transfers/batch", "post", batch)
    assert batch.status_code == 201 and isinstance(batch.parsed, BatchResultEnvelope), batch.content
    assert batch.parsed.data.total_amount == "4.00"
    looked_up = transfers_batch_retrieve.sync_detailed(batch.parsed.data.batch_id, client=client)
    seen("/api/transfers/batch/{batch_id}", "get", looked_up)
    assert isinstance(looked_up.parsed, BatchResultEnvelope)

    # The event feed, typed by event type, until the batch's own event.
    after: str | Unset = UNSET
    types: set[str] = set()
    finished: BatchFinishedEvent | None = None
    deadline = time.monotonic() + 60
    while finished is None:
        assert time.monotonic() < deadline, f"no batch.finished event; saw {sorted(types)}"
        events = events_list.sync_detailed(client=client, after=after)
        seen("/api/events", "get", events)
        assert not isinstance(events.parsed, Error) and events.parsed is not None, events.content
        for event in events.parsed.data.events:
            types.add(event.type_)
            if isinstance(event, BatchFinishedEvent):
                finished = event
            elif isinstance(event, (DepositCompletedEvent, TransferCompletedEvent, TransferFailedEvent)):
                assert event.data.amount
        if events.parsed.data.next_cursor is not None:
            after = events.parsed.data.next_cursor
        time.sleep(0.1)
    assert finished.data.batch_id == batch.parsed.data.batch_id
    assert finished.data.total_amount == batch.parsed.data.total_amount

    for answer in SEEN:
        print(json.dumps(answer))


if __name__ == "__main__":
    main()
