"""A movement's fingerprint is stored with its transaction and compared on
every retry: it never changes for the same request, whatever makes it."""

import hashlib
import json
import uuid
from decimal import Decimal

import pytest

from transfers.models import Movement, canonical_fingerprint

SOURCE, DESTINATION = uuid.UUID(int=1), uuid.UUID(int=2)


@pytest.mark.parametrize(
    "asked",
    [
        {"type": "TRANSFER", "source": str(SOURCE), "destination": None, "amount": Decimal("10"), "metadata": {}},
        {"amount": Decimal("0.1"), "metadata": {"z": [1, 2.5, None, True], "a": {"é": "\u2028"}}, "id": SOURCE},
        {"source": "s", "atomic": False, "payouts": [["d", "1.00", "k", {"b": 1, "a": 2}]]},
    ],
)
def test_the_fingerprint_is_json_dumps_sorted_and_compact(asked):
    canonical = {k: (f"{v:.2f}" if isinstance(v, Decimal) else v) for k, v in asked.items()}
    written = json.dumps(canonical, sort_keys=True, separators=(",", ":"), default=str)

    assert canonical_fingerprint(**asked) == hashlib.sha256(written.encode()).hexdigest()


def test_a_transfers_fingerprint_is_the_one_stored_before():
    movement = Movement.transfer(
        source_wallet_id=SOURCE, destination_wallet_id=DESTINATION, amount=Decimal("10.5"), metadata={"b": 1, "a": "x"}
    )

    # What every transaction stored until now holds for this request.
    stored = hashlib.sha256(
        b'{"amount":"10.50","destination":"00000000-0000-0000-0000-000000000002","metadata":{"a":"x","b":1},'
        b'"source":"00000000-0000-0000-0000-000000000001","type":"TRANSFER"}'
    ).hexdigest()

    assert movement.fingerprint() == stored
