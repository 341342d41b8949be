"""A statement as the API gives it: JSON (statement_data, in the envelope),
CSV and PDF (docs/api.md, "a statement").

The CSV and PDF renderers take the JSON's `data`, so the three say the same
thing. The PDF is drawn with fpdf2, imported only when a PDF is asked for
(most processes never draw one). Amounts are written as the API writes them
("1234.50"); times in the business time zone (settings.BUSINESS_TIME_ZONE),
the zone of the statement's days, with their offset.
"""

import csv
import io

from django.utils.dateparse import parse_datetime
from rest_framework.renderers import BaseRenderer

from transfers.models import business_zone
from transfers.statements import Statement
from wallet_project.api import timestamp_text


def _money(amount) -> str:
    return f"{amount:.2f}"


def _local(text: str) -> str:
    """An instant the JSON gives in UTC, in the business time zone to the
    second, with its offset: the statement's days are that zone's days."""
    return parse_datetime(text).astimezone(business_zone()).isoformat(timespec="seconds")


def statement_data(statement: Statement) -> dict:
    """The statement as the API's JSON shows it (docs/api.md): the period,
    the balances and totals, each movement with the wallet's balance after
    it, and the chain link of the last movement (null without one)."""
    wallet = statement.wallet
    return {
        "walletId": str(wallet.pk),
        "currency": wallet.currency,
        "timeZone": business_zone().key,
        "from": statement.first_day.isoformat(),
        "to": statement.last_day.isoformat(),
        "periodStart": timestamp_text(statement.starts_at),
        "periodEnd": timestamp_text(statement.ends_at),
        "openingBalance": _money(statement.opening_balance),
        "totalIn": _money(statement.total_in),
        "totalOut": _money(statement.total_out),
        "closingBalance": _money(statement.closing_balance),
        "movementCount": len(statement.movements),
        "movements": [
            {
                "id": str(movement.id),
                "reference": movement.reference,
                "type": movement.type,
                "status": movement.status,
                "direction": movement.direction,
                "amount": _money(movement.amount),
                "balanceAfter": _money(movement.balance_after),
                "counterpartyWalletId": str(movement.counterparty_wallet_id),
                "counterpartyWalletKind": movement.counterparty_wallet_kind,
                "reversalOf": str(movement.reversal_of) if movement.reversal_of else None,
                "completedAt": timestamp_text(movement.completed_at),
            }
            for movement in statement.movements
        ],
        "chainPosition": statement.chain.position if statement.chain else None,
        "chainHash": statement.chain.hash if statement.chain else None,
    }


def describe(movement: dict) -> str:
    """A movement in words, as a statement line reads: "Transfer to
    <wallet>", "Deposit", "Reversal of a transfer from <wallet>"."""
    kind = movement["type"].capitalize()
    if movement["counterpartyWalletKind"] == "CUSTOMER":
        side = "from" if movement["direction"] == "CREDIT" else "to"
        text = f"{kind} {side} {movement['counterpartyWalletId']}"
    else:
        text = kind
    if movement["reversalOf"]:
        text = f"Reversal: {text}"
    if movement["status"] == "REVERSED":
        text = f"{text} (reversed later)"
    return text


CSV_COLUMNS = ("date", "reference", "id", "type", "description", "moneyIn", "moneyOut", "balance")


def statement_rows(data: dict) -> list[dict[str, str]]:
    """The statement's table, as both documents show it, by CSV_COLUMNS
    (a cell left out is empty): the opening balance, each movement (money in
    or out, the balance after it), then two rows that are not one: "Totals"
    (money in and out over the period, no balance) and "Closing balance"
    (the balance at the period's end). Dates in the statement's zone
    (timeZone) with their offset."""
    rows = [{"date": _local(data["periodStart"]), "description": "Opening balance", "balance": data["openingBalance"]}]
    for movement in data["movements"]:
        credit = movement["direction"] == "CREDIT"
        rows.append(
            {
                "date": _local(movement["completedAt"]),
                "reference": movement["reference"],
                "id": movement["id"],
                "type": movement["type"],
                "description": describe(movement),
                "moneyIn" if credit else "moneyOut": movement["amount"],
                "balance": movement["balanceAfter"],
            }
        )
    end = _local(data["periodEnd"])
    rows.append({"date": end, "description": "Totals", "moneyIn": data["totalIn"], "moneyOut": data["totalOut"]})
    rows.append({"date": end, "description": "Closing balance", "balance": data["closingBalance"]})
    return rows


def statement_csv(data: dict) -> str:
    """The statement as CSV: one header row, then statement_rows. Dates in the
    statement's zone (timeZone) with their offset. No cell starts with = + - @
    unless it is an amount: nothing a spreadsheet would run."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for row in statement_rows(data):
        writer.writerow([row.get(column, "") for column in CSV_COLUMNS])
    return out.getvalue()


def statement_pdf(data: dict) -> bytes:
    """The statement as a PDF a customer would hand to a bank: a heading
    with the wallet, currency and period, the balances and totals, a table
    of movements with the balance after each (repeated headings over pages),
    and the chain position of the last row when there is one."""
    from fpdf import FPDF  # a PDF is rare: most processes never import it
    from fpdf.enums import XPos, YPos

    pdf = FPDF(orientation="landscape", format="A4")
    pdf.set_title(f"Statement {data['walletId']} {data['from']} to {data['to']}")
    pdf.set_creator("Wallet transfer service")
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.alias_nb_pages()
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 16)
    pdf.cell(0, 10, "Wallet statement", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font("Helvetica", size=10)
    for label, value in (
        ("Wallet", data["walletId"]),
        ("Currency", data["currency"]),
        ("Period", f"{data['from']} to {data['to']} (whole days, {data['timeZone']})"),
        ("Opening balance", data["openingBalance"]),
        ("Money in", data["totalIn"]),
        ("Money out", data["totalOut"]),
        ("Closing balance", data["closingBalance"]),
        ("Movements", str(data["movementCount"])),
    ):
        pdf.cell(40, 6, f"{label}:")
        pdf.cell(0, 6, value, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(4)
    widths = (42, 50, 95, 30, 30, 30)
    # "Date (Lagos)": the city of the zone the period line names in full.
    headings = (
        f"Date ({data['timeZone'].rsplit('/', 1)[-1]})",
        "Reference",
        "Description",
        "Money in",
        "Money out",
        "Balance",
    )
    columns = ("reference", "description", "moneyIn", "moneyOut", "balance")
    rows = [(row["date"].replace("T", " "), *(row.get(c, "") for c in columns)) for row in statement_rows(data)]
    _table(pdf, widths, headings, rows, right_from=3)
    pdf.ln(4)
    pdf.set_font("Helvetica", size=8)
    if data["chainPosition"] is not None:
        chain = f"Last movement's ledger chain position {data['chainPosition']}, hash {data['chainHash']}."
    else:
        chain = "Ledger chain position of the last movement: not available."
    pdf.multi_cell(0, 4, chain, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    return bytes(pdf.output())


# A table row's height and a cell's inner margin, in mm; the text's size, in points.
_ROW, _PAD, _SIZE = 5, 1, 8


def _table(pdf, widths: tuple[int, ...], headings: tuple[str, ...], rows: list[tuple[str, ...]], right_from: int):
    """The movements' table at the page's left margin, one line a row, its
    headings again at the top of every page, a rule under each row; the
    columns from `right_from` on aligned right (amounts). Each text is drawn
    at its place (FPDF.text), not laid out as a cell: fpdf2's table() wraps
    and measures every cell twice, 3.3 ms a row, and a statement of 9,000
    movements held a web thread for 25 s, while every other client's money
    waited for one (a hostile-client review; this way, about 0.1 ms a row).
    A text wider than its column is set smaller to fit, never cut."""
    left, bottom = pdf.l_margin, pdf.h - pdf.b_margin
    xs = [left + sum(widths[:i]) for i in range(len(widths))]
    right = left + sum(widths)

    def line(y: float, cells: tuple[str, ...]) -> None:
        baseline = y + _ROW - 1.5
        for i, (x, width, text) in enumerate(zip(xs, widths, cells, strict=True)):
            if not text:
                continue
            room, wide = width - 2 * _PAD, pdf.get_string_width(text)
            if wide > room:
                pdf.set_font_size(_SIZE * room / wide)
                wide = room
            pdf.text(x + width - _PAD - wide if i >= right_from else x + _PAD, baseline, text)
            if pdf.font_size_pt != _SIZE:
                pdf.set_font_size(_SIZE)
        pdf.line(left, y + _ROW, right, y + _ROW)

    def top(y: float) -> float:
        pdf.set_font("Helvetica", "B", _SIZE)
        pdf.line(left, y, right, y)
        line(y, headings)
        pdf.set_font("Helvetica", "", _SIZE)
        return y + _ROW

    y = top(pdf.get_y())
    for cells in rows:
        if y + _ROW > bottom:
            pdf.add_page()
            y = top(pdf.get_y())
        line(y, cells)
        y += _ROW
    pdf.set_y(y)


class StatementCSVRenderer(BaseRenderer):
    """?format=csv (or Accept: text/csv) on GET /api/wallets/{id}/statement."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return statement_csv(data["data"]).encode()


class StatementPDFRenderer(BaseRenderer):
    """?format=pdf (or Accept: application/pdf) on the same route."""

    media_type = "application/pdf"
    format = "pdf"
    charset = None
    render_style = "binary"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return statement_pdf(data["data"])
