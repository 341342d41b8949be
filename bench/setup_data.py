"""Wallets for the benchmark, in the bench database (run by bench/run.py with
the bench environment: DATABASE_URL and REDIS_URL of the bench).

    python bench/setup_data.py CLIENT_USERNAME N_CUSTOMERS

Wallet rows are created with fixed ids (harness.wallet_id: pgbench names them
in SQL) and a zero balance, as wallets.services.wallet_create would make them;
every cent then enters through the deposit service, from the settlement
wallet, so conservation and ledger agreement hold from the start.
Wallet 0 is the pool wallet of the hot-source workload.
"""

import os
import sys
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "wallet_project.settings")

import django  # noqa: E402

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from harness import wallet_id, wallet_user_id  # noqa: E402

from transfers.services import deposit_create  # noqa: E402
from wallets.models import Wallet, WalletKind  # noqa: E402
from wallets.services import settlement_wallet_get_or_create  # noqa: E402

CUSTOMER_FUNDS = Decimal("1000000.00")
POOL_FUNDS = Decimal("1000000000000.00")


def main(username: str, customers: int) -> None:
    started = time.monotonic()
    client = get_user_model().objects.get(username=username)
    settlement_wallet_get_or_create(currency="NGN")
    Wallet.objects.bulk_create(
        [
            # The bench client's own (tenancy): it may move money out of them.
            Wallet(id=wallet_id(n), owner=client, user_id=wallet_user_id(n), currency="NGN", kind=WalletKind.CUSTOMER)
            for n in range(customers + 1)
        ]
    )
    for n in range(customers + 1):
        deposit_create(
            client=client,
            wallet_id=wallet_id(n),
            amount=POOL_FUNDS if n == 0 else CUSTOMER_FUNDS,
            idempotency_key=f"bench-funding-{n}",
            metadata={"bench": "funding"},
        )
    print(f"{customers} customer wallets and 1 pool wallet funded in {time.monotonic() - started:.1f} s")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
