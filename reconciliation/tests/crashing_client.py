"""A process that starts a money movement and hangs at a chosen stage, so
that a test can kill it there (test_fault_process_killed.py,
test_fault_batch_process_killed.py).

    python -m reconciliation.tests.crashing_client STAGE CLIENT_ID AMOUNT KEY SOURCE DESTINATION  # a transfer
    python -m reconciliation.tests.crashing_client STAGE CLIENT_ID AMOUNT KEY WALLET              # a deposit
    python -m reconciliation.tests.crashing_client STAGE CLIENT_ID batch KEY BODY                 # a batch

(BODY: the JSON body of POST /api/transfers/batch; KEY: the batch's key.)

Settings come from the environment (DATABASE_URL of the test database). When
the movement reaches STAGE it prints "inside <backend pid>" (0 outside a
transaction) and sleeps.
"""

import json
import sys
import time
import uuid
from decimal import Decimal


def main(stage: str, client_id: str, amount: str, key: str, *wallets: str) -> None:
    import django

    django.setup()

    from django.contrib.auth import get_user_model
    from django.db import connection

    from reconciliation.tests.faults import interrupt_at
    from transfers.models import Payout
    from transfers.services import batch_create, deposit_create, transfer_create

    def hang() -> None:
        # The server session holding the movement's row locks, asked of the
        # server: through PgBouncer the pid the client was told is the
        # pooler's, and outside a transaction no session is the client's (0).
        pid = 0
        if connection.in_atomic_block:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                (pid,) = cursor.fetchone()
        print(f"inside {pid}", flush=True)
        time.sleep(600)

    interrupt_at(stage, hang)
    client = get_user_model().objects.get(pk=client_id)
    if amount == "batch":
        # The request the view builds from this body (transfers/views.py).
        (body,) = wallets
        batch = json.loads(body)
        payouts = tuple(
            Payout(
                destination_wallet_id=uuid.UUID(p["destinationWalletId"]),
                amount=Decimal(p["amount"]),
                idempotency_key=p["idempotencyKey"],
                metadata=p.get("metadata", {}),
            )
            for p in batch["transfers"]
        )
        batch_create(
            client=client,
            idempotency_key=key,
            source_wallet_id=uuid.UUID(batch["sourceWalletId"]),
            atomic=batch["atomic"],
            payouts=payouts,
        )
        sys.exit(f"the batch finished without reaching {stage}")
    request = {
        "client": client,
        "amount": Decimal(amount),
        "idempotency_key": key,
        "metadata": {},
    }
    if len(wallets) == 2:
        transfer_create(source_wallet_id=uuid.UUID(wallets[0]), destination_wallet_id=uuid.UUID(wallets[1]), **request)
    else:
        deposit_create(wallet_id=uuid.UUID(wallets[0]), **request)
    sys.exit(f"the money movement finished without reaching {stage}")


if __name__ == "__main__":
    main(*sys.argv[1:])
