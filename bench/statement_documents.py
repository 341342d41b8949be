"""CPU to render one wallet statement as each document, per movement: the
JSON answer (DRF's renderer, the baseline), the CSV and the PDF, for N
movements made up as the statement endpoint reads them
(transfers.statement_documents.statement_data's shape). No database.

    .venv/bin/python bench/statement_documents.py [N]      # N default 9,000

The PDF is drawn in the web worker's thread while the client waits, so its
cost per movement is how long one statement holds a thread that other
clients' money could use (bench/HISTORY.md, 2026-12-07 23:20). Prints one
JSON line: microseconds of CPU per movement for each document (best of
three) and the PDF's cost as a multiple of the JSON's.
"""

import json
import os
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "wallet_project.settings")

import django  # noqa: E402

django.setup()

from rest_framework.renderers import JSONRenderer  # noqa: E402

from transfers.statement_documents import statement_csv, statement_pdf  # noqa: E402


def statement(n: int) -> dict:
    """A statement of `n` movements, alternately in and out, as the
    endpoint's `data` holds it."""
    movements = [
        {
            "id": str(uuid.uuid4()),
            "reference": f"TXN-20261207{i:010d}",
            "type": "TRANSFER",
            "status": "COMPLETED",
            "direction": "CREDIT" if i % 2 else "DEBIT",
            "amount": "1.00",
            "balanceAfter": f"{90_000 - i % 2}.00",
            "counterpartyWalletId": str(uuid.uuid4()),
            "counterpartyWalletKind": "CUSTOMER",
            "reversalOf": None,
            "completedAt": "2026-12-07T09:12:03.118Z",
        }
        for i in range(n)
    ]
    return {
        "walletId": str(uuid.uuid4()), "currency": "NGN", "timeZone": "Africa/Lagos",
        "from": "2026-12-07", "to": "2026-12-07",
        "periodStart": "2026-12-06T23:00:00Z", "periodEnd": "2026-12-07T23:00:00Z",
        "openingBalance": "90000.00", "totalIn": f"{n // 2}.00", "totalOut": f"{n - n // 2}.00",
        "closingBalance": f"{90_000 + n // 2 - (n - n // 2)}.00", "movementCount": n, "movements": movements,
        "chainPosition": None, "chainHash": None,
    }  # fmt: skip


def cpu_per_movement(render, data: dict, n: int) -> float:
    best = float("inf")
    for _ in range(3):
        started = time.process_time()
        render(data)
        best = min(best, time.process_time() - started)
    return best / n * 1e6


def main(n: int) -> None:
    data = statement(n)
    statement_pdf(statement(10))  # the PDF library's import and fonts, once per process
    figures = {
        "json": cpu_per_movement(lambda d: JSONRenderer().render({"success": True, "data": d}), data, n),
        "csv": cpu_per_movement(statement_csv, data, n),
        "pdf": cpu_per_movement(statement_pdf, data, n),
    }
    us = {name: round(value, 1) for name, value in figures.items()}
    ratio = round(figures["pdf"] / figures["json"], 1)
    print(json.dumps({"movements": n, "us_per_movement": us, "pdf_over_json": ratio}))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 9_000)
