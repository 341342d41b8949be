"""Helpers for tests that fire requests at the same moment from many threads.

Each thread gets its own PostgreSQL connection (Django keeps one per thread)
and sees only what other threads have committed, like separate web workers.
That rules out the usual per-test transaction: these tests run with
django_db(transaction=True).
"""

import threading
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import TypeVar

from django.db import connection
from django.db.models import Sum
from rest_framework.test import APIClient

from wallets.models import Wallet, WalletKind

T = TypeVar("T")

# Far above any healthy run; a hung thread fails the test instead of the suite.
TIMEOUT_SECONDS = 60


def run_concurrently(calls: Sequence[Callable[[], T]], *, threads: int) -> list[T]:
    """Run `calls` on `threads` threads that start together (a barrier); thread
    t runs calls t, t + threads, t + 2 * threads, ... in turn, so calls next to
    each other in the list run at the same moment on neighbouring threads.

    Returns the results in the order of `calls`. An exception in any thread is
    re-raised here once all threads have finished.
    """
    threads = min(threads, len(calls))
    barrier = threading.Barrier(threads)
    results: list = [None] * len(calls)
    errors: list[BaseException] = []

    def work(first: int) -> None:
        try:
            barrier.wait(timeout=TIMEOUT_SECONDS)
            for index in range(first, len(calls), threads):
                results[index] = calls[index]()
        except BaseException as exc:  # reported in the main thread
            errors.append(exc)
            barrier.abort()
        finally:
            # The test database cannot be flushed (or dropped) while a thread's
            # connection is still open.
            connection.close()

    workers = [threading.Thread(target=work, args=(t,), name=f"concurrent-{t}") for t in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=TIMEOUT_SECONDS)
    hung = [worker.name for worker in workers if worker.is_alive()]
    assert not hung, f"threads still running after {TIMEOUT_SECONDS}s: {hung}"
    if errors:
        raise errors[0]
    return results


def token_of(api: APIClient) -> str:
    """The token of a fixture's API client, for the clients each thread makes."""
    return api.api_key


def api_client(token: str) -> APIClient:
    # One per call: a test client keeps per-request state and is not meant to
    # be shared between threads.
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


def post_transfer(token: str, source: Wallet, destination: Wallet, amount: Decimal | str, key: str):
    return api_client(token).post(
        "/api/transfer",
        {"sourceWalletId": str(source.pk), "destinationWalletId": str(destination.pk), "amount": str(amount)},
        format="json",
        headers={"Idempotency-Key": key},
    )


def post_deposit(token: str, wallet: Wallet, amount: Decimal | str, key: str):
    return api_client(token).post(
        f"/api/wallets/{wallet.pk}/deposit", {"amount": str(amount)}, format="json", headers={"Idempotency-Key": key}
    )


def post_withdrawal(token: str, wallet: Wallet, amount: Decimal | str, key: str):
    return api_client(token).post(
        f"/api/wallets/{wallet.pk}/withdraw", {"amount": str(amount)}, format="json", headers={"Idempotency-Key": key}
    )


def customer_total() -> Decimal:
    return Wallet.objects.filter(kind=WalletKind.CUSTOMER).aggregate(total=Sum("balance"))["total"] or Decimal("0")


def balances(wallets: Sequence[Wallet]) -> dict:
    """{wallet id: balance} as committed now."""
    return dict(Wallet.objects.filter(pk__in=[w.pk for w in wallets]).values_list("pk", "balance"))
