"""docs/api.md's batch payouts section, run as written: its curl example
against a live server, and its one-400 example against what the API answers."""

import json
import os
import re
import subprocess
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings

from transfers.models import TransferBatch

pytestmark = pytest.mark.django_db(transaction=True)

API_GUIDE = Path(settings.BASE_DIR) / "docs" / "api.md"


def batch_section() -> str:
    section = re.search(r"^## Batch payouts.*?\n(.*?)^## ", API_GUIDE.read_text(), re.S | re.M)
    assert section, "docs/api.md has no '## Batch payouts' section followed by another"
    return section.group(1)


def test_the_batch_example_runs_as_written(live_server, transfer_api, funded_wallet):
    pool, ada, ben = funded_wallet("3700.00"), funded_wallet("0"), funded_wallet("0")
    (example,) = re.findall(r"^```sh\n(.*?)^```", batch_section(), re.S | re.M)
    env = {
        "PATH": os.environ["PATH"],
        "AUTH": f"Authorization: Token {transfer_api.api_key}",
        "BASE": live_server.url,
        **{name: str(wallet.pk) for name, wallet in (("POOL", pool), ("ADA", ada), ("BEN", ben))},
    }

    run = subprocess.run(  # noqa: S603
        ["bash", "-c", "set -euo pipefail\n" + example],  # noqa: S607
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert run.returncode == 0, f"stdout:\n{run.stdout}\nstderr:\n{run.stderr}"
    data = json.loads(run.stdout)["data"]
    assert (data["status"], data["completedCount"]) == ("COMPLETED", 2)
    assert [p["idempotencyKey"] for p in data["payouts"]] == ["loan-881", "loan-882"]
    assert TransferBatch.objects.get().idempotency_key == "payroll-2026-11-30"
    for wallet, amount in ((pool, "0.00"), (ada, "2500.00"), (ben, "1200.00")):
        wallet.refresh_from_db()
        assert wallet.balance == Decimal(amount)


def test_the_one_400_example_is_what_the_api_answers(transfer_api, funded_wallet):
    pool, ada = funded_wallet("10.00"), funded_wallet("0")
    documented = re.search(r"^```json\n400 (.*?)^```", batch_section(), re.S | re.M)
    assert documented, "no 400 example in the batch section"
    body = {"sourceWalletId": str(pool.pk), "transfers": [{"destinationWalletId": str(ada.pk), "amount": "1.00",
                                                            "idempotencyKey": "p-1"}]}  # fmt: skip

    response = transfer_api.post("/api/transfers/batch", body, format="json")

    assert response.status_code == 400
    assert response.json() == json.loads(documented.group(1))
