"""Balances after each movement, balances as of an instant, statements
(docs/api.md, "the balance at an instant" and "a statement"; transfers/statements.py)."""

import csv
import datetime as dt
import io
import random
import time
import uuid
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from conftest import make_api_client
from transfers import statements
from transfers.models import TransactionLog, TransactionStatus, business_today, business_zone
from transfers.services import deposit_create, transaction_reverse, transfer_create, withdrawal_create
from transfers.tests.concurrency import api_client, post_transfer, run_concurrently, token_of
from wallet_project.tests import assert_error_envelope
from wallets.models import Wallet, WalletKind

pytestmark = pytest.mark.django_db

D = Decimal


def transfer(client, source, destination, amount) -> TransactionLog:
    result = transfer_create(
        client=client,
        source_wallet_id=source.pk,
        destination_wallet_id=destination.pk,
        amount=D(amount),
        idempotency_key=f"t-{uuid.uuid4()}",
        metadata={},
    )
    return result.log


def deposit(client, wallet, amount) -> TransactionLog:
    return deposit_create(
        client=client, wallet_id=wallet.pk, amount=D(amount), idempotency_key=f"d-{uuid.uuid4()}", metadata={}
    ).log


def withdraw(client, wallet, amount) -> TransactionLog:
    return withdrawal_create(
        client=client, wallet_id=wallet.pk, amount=D(amount), idempotency_key=f"w-{uuid.uuid4()}", metadata={}
    ).log


def stored(log: TransactionLog) -> tuple[Decimal | None, Decimal | None]:
    log.refresh_from_db()
    return log.source_balance_after, log.destination_balance_after


def today() -> str:
    return business_today().isoformat()


def statement_of(api, wallet, first=None, last=None, **params):
    return api.get(f"/api/wallets/{wallet.pk}/statement", {"from": first or today(), "to": last or today(), **params})


def replay(wallet_id) -> list[tuple[dt.datetime, Decimal]]:
    """Every movement of a wallet in the order it moved, with the balance a
    replay of the ledger gives after each."""
    logs = TransactionLog.objects.filter(completed_at__isnull=False).order_by("completed_at", "batch_index")
    running, out = D("0.00"), []
    for log in logs:
        if log.destination_wallet_id == wallet_id:
            running += log.amount
        elif log.source_wallet_id == wallet_id:
            running -= log.amount
        else:
            continue
        out.append((log.completed_at, running))
    return out


# --- the engine records the balances after ----------------------------------------


def test_a_transfer_records_both_wallets_balances_after_it(wallet_owner, funded_wallet):
    payer, payee = funded_wallet("100.00"), funded_wallet("5.00")
    log = transfer(wallet_owner, payer, payee, "30.25")
    assert stored(log) == (D("69.75"), D("35.25"))
    assert (log.source_balance_after, log.destination_balance_after) == (D("69.75"), D("35.25"))


def test_a_deposit_and_a_withdrawal_record_the_settlement_wallets_balance_too(wallet_owner, funded_wallet):
    wallet = funded_wallet("0")
    log = deposit(wallet_owner, wallet, "40.00")
    settlement = Wallet.objects.get(pk=log.source_wallet_id)
    assert stored(log) == (settlement.balance, D("40.00"))
    out = withdraw(wallet_owner, wallet, "15.50")
    settlement.refresh_from_db()
    assert stored(out) == (D("24.50"), settlement.balance)


def test_a_failed_movement_records_no_balance_after(wallet_owner, funded_wallet):
    payer, payee = funded_wallet("10.00"), funded_wallet("0")
    log = transfer(wallet_owner, payer, payee, "10.01")
    assert log.status == TransactionStatus.FAILED
    assert stored(log) == (None, None)


def test_batch_payouts_record_the_running_balances_in_batch_order(treasury_api, funded_wallet):
    source, first, second = funded_wallet("100.00"), funded_wallet("0"), funded_wallet("1.00")
    payouts = [(first, "10.00"), (second, "20.00"), (first, "30.00"), (second, "200.00"), (first, "5.00")]
    response = treasury_api.post(
        "/api/transfers/batch",
        {
            "sourceWalletId": str(source.pk),
            "atomic": False,
            "transfers": [
                {"destinationWalletId": str(wallet.pk), "amount": amount, "idempotencyKey": f"p-{n}-{uuid.uuid4()}"}
                for n, (wallet, amount) in enumerate(payouts)
            ],
        },
        format="json",
        headers={"Idempotency-Key": f"b-{uuid.uuid4()}"},
    )
    assert response.status_code == 201, response.json()
    logs = list(TransactionLog.objects.filter(source_wallet=source, batch__isnull=False).order_by("batch_index"))
    assert [(log.source_balance_after, log.destination_balance_after) for log in logs] == [
        (D("90.00"), D("10.00")),
        (D("70.00"), D("21.00")),
        (D("40.00"), D("40.00")),
        (None, None),  # 200.00 did not fit: FAILED
        (D("35.00"), D("45.00")),
    ]
    # One completed_at for the whole batch: batch_index orders its payouts.
    assert len({log.completed_at for log in logs if log.completed_at}) == 1
    assert statements.balance_at(wallet=source, at=timezone.now()) == D("35.00")
    assert statements.balance_at(wallet=first, at=timezone.now()) == D("45.00")


def test_an_atomic_batch_that_fails_records_no_balance_after(treasury_api, funded_wallet):
    source, payee = funded_wallet("10.00"), funded_wallet("0")
    response = treasury_api.post(
        "/api/transfers/batch",
        {
            "sourceWalletId": str(source.pk),
            "atomic": True,
            "transfers": [
                {"destinationWalletId": str(payee.pk), "amount": amount, "idempotencyKey": f"p-{n}-{uuid.uuid4()}"}
                for n, amount in enumerate(["5.00", "50.00"])
            ],
        },
        format="json",
        headers={"Idempotency-Key": f"b-{uuid.uuid4()}"},
    )
    assert response.status_code == 422
    logs = TransactionLog.objects.filter(batch__isnull=False, source_wallet=source)
    assert {(log.source_balance_after, log.destination_balance_after) for log in logs} == {(None, None)}


def test_a_reversal_records_the_balances_after_its_compensation(wallet_owner, funded_wallet):
    payer, payee = funded_wallet("50.00"), funded_wallet("0")
    original = transfer(wallet_owner, payer, payee, "20.00")
    compensation = transaction_reverse(log_id=original.pk, reason="sent twice", reversed_by=wallet_owner)
    assert stored(compensation) == (D("0.00"), D("50.00"))  # payee back to payer
    assert stored(original) == (D("30.00"), D("20.00"))  # REVERSED, its record kept


# --- balance as of an instant ----------------------------------------------------


def instants_between(wallet_owner, funded_wallet):
    """A wallet with four movements and the instants between them."""
    wallet, other = funded_wallet("0"), funded_wallet("500.00")
    marks = [timezone.now()]
    for move in (
        lambda: deposit(wallet_owner, wallet, "100.00"),
        lambda: transfer(wallet_owner, wallet, other, "30.00"),
        lambda: transfer(wallet_owner, other, wallet, "12.34"),
        lambda: withdraw(wallet_owner, wallet, "2.34"),
    ):
        move()
        marks.append(timezone.now())
    return wallet, marks


EXPECTED_AFTER_EACH = ["0.00", "100.00", "70.00", "82.34", "80.00"]


def test_the_balance_at_each_instant_between_movements(treasury_api, wallet_owner, funded_wallet):
    wallet, marks = instants_between(wallet_owner, funded_wallet)
    for mark, expected in zip(marks, EXPECTED_AFTER_EACH, strict=True):
        response = treasury_api.get(f"/api/wallets/{wallet.pk}/balance", {"at": mark.isoformat()})
        assert response.status_code == 200, response.json()
        data = response.json()["data"]
        assert data["balance"] == expected
        assert (data["walletId"], data["currency"]) == (str(wallet.pk), wallet.currency)


def test_the_balance_at_a_movements_own_instant_includes_it(wallet_owner, funded_wallet):
    wallet = funded_wallet("0")
    log = deposit(wallet_owner, wallet, "7.00")
    assert statements.balance_at(wallet=wallet, at=log.completed_at) == D("7.00")
    assert statements.balance_at(wallet=wallet, at=log.completed_at - dt.timedelta(microseconds=1)) == D("0.00")


def test_the_balance_without_at_is_the_wallets_balance_now(treasury_api, funded_wallet):
    wallet = funded_wallet("321.09")
    data = treasury_api.get(f"/api/wallets/{wallet.pk}/balance").json()["data"]
    assert data["balance"] == "321.09"
    assert dt.datetime.fromisoformat(data["at"]) <= timezone.now()


def test_the_balance_at_an_offset_other_than_utc_names_the_same_instant(treasury_api, wallet_owner, funded_wallet):
    wallet, marks = instants_between(wallet_owner, funded_wallet)
    lagos = marks[2].astimezone(business_zone()).isoformat()
    assert treasury_api.get(f"/api/wallets/{wallet.pk}/balance", {"at": lagos}).json()["data"]["balance"] == "70.00"


def test_logs_settled_before_balances_after_were_kept_are_summed(treasury_api, wallet_owner, funded_wallet):
    wallet, marks = instants_between(wallet_owner, funded_wallet)
    # As migration 0015 leaves the logs settled before it.
    TransactionLog.objects.update(source_balance_after=None, destination_balance_after=None)
    for mark, expected in zip(marks, EXPECTED_AFTER_EACH, strict=True):
        assert statements.balance_at(wallet=wallet, at=mark) == D(expected)
    data = statement_of(treasury_api, wallet).json()["data"]
    assert [m["balanceAfter"] for m in data["movements"]] == EXPECTED_AFTER_EACH[1:]
    assert data["closingBalance"] == "80.00"


def test_old_and_new_logs_mixed_still_give_the_right_balances(wallet_owner, funded_wallet):
    wallet, marks = instants_between(wallet_owner, funded_wallet)
    # An old web process, still running after the migration, settled the third.
    third = TransactionLog.objects.filter(completed_at__gt=marks[2], completed_at__lte=marks[3])
    third.update(source_balance_after=None, destination_balance_after=None)
    for mark, expected in zip(marks, EXPECTED_AFTER_EACH, strict=True):
        assert statements.balance_at(wallet=wallet, at=mark) == D(expected)


def test_the_balance_at_matches_a_replay_of_a_random_history(wallet_owner, funded_wallet):
    rng = random.Random(31)
    wallets = [funded_wallet("100.00") for _ in range(3)]
    for _ in range(25):
        move = rng.choice(["transfer", "deposit", "withdraw"])
        wallet = rng.choice(wallets)
        amount = D(rng.randint(1, 6000)) / 100
        if move == "transfer":
            transfer(wallet_owner, wallet, rng.choice([w for w in wallets if w != wallet]), amount)
        elif move == "deposit":
            deposit(wallet_owner, wallet, amount)
        else:
            withdraw(wallet_owner, wallet, amount)  # may fail: FAILED logs move nothing
    for wallet in wallets:
        history = replay(wallet.pk)
        for (moved_at, after), next_moved_at in zip(history, [*(h[0] for h in history[1:]), None], strict=True):
            assert statements.balance_at(wallet=wallet, at=moved_at) == after
            if next_moved_at is not None:  # anywhere in between
                between = moved_at + (next_moved_at - moved_at) / 2
                assert statements.balance_at(wallet=wallet, at=between) == after
        wallet.refresh_from_db()
        assert history[-1][1] == wallet.balance


def test_the_balance_at_is_one_indexed_read(funded_wallet, wallet_owner):
    wallet = funded_wallet("10.00")
    plan = "\n".join(
        row[0] for row in _explain(statements._LAST_MOVEMENT, {"wallet": wallet.pk, "before": timezone.now()})
    )
    assert "idx_txlogs_source_moved" in plan and "idx_txlogs_destination_moved" in plan, plan


def _explain(sql, params):
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("EXPLAIN " + sql, params)
        return cursor.fetchall()


@pytest.mark.parametrize(
    "at",
    [
        "yesterday",
        "2026-13-01T00:00:00Z",
        "2026-12-01T12:00:00",  # no offset: no instant
        "2999-01-01T00:00:00Z",  # to come
        "",
        "0001-01-01T00:00:00+01:00",  # in year 0 in UTC: out of range
        "0001-01-01T00:30:00+23:59",
        # Instants that have come, written in other scripts' digits or with
        # whitespace around them: parse_datetime read each (its `\d` and `$`).
        "\u0662\u0660\u0662\u0666-\u0661\u0662-\u0660\u0661T00:00:00Z",  # Arabic-Indic digits
        "\uff12\uff10\uff12\uff16-12-01T00:00:00Z",  # fullwidth digits
        "2026-12-01T00:00:00Z\n",
        " 2026-12-01T00:00:00Z",
        # Instants that have come in ISO 8601 spellings other than RFC 3339's:
        # datetime.fromisoformat (and parse_datetime through it) read each.
        "20261201T000000Z",  # basic format
        "2026-W49-1T00:00:00Z",  # week date
        "2026-335T00:00:00Z",  # ordinal date
        "2026-12-01 00:00:00Z",  # a space for the T
        "2026-12-01T00Z",  # hours alone
        "2026-12-01T00:00Z",  # no seconds
        "2026-12-01T00:00:00+0100",  # offset without a colon
        "2026-12-01T00:00:00+01",
        "2026-12-01T00:00:00,5Z",  # decimal comma
        "2026-12-01t00:00:00z",
        # Offsets RFC 3339 has no room for (time-numoffset: hours 00-23,
        # minutes 00-59) that fromisoformat reads as a longer one (+05:60 as
        # +06:00, +01:99 as +02:39).
        "2026-12-01T00:00:00+05:60",
        "2026-12-01T00:00:00+01:99",
        "2026-12-01T00:00:00-00:75",
    ],
)
def test_a_bad_at_is_a_400_naming_it(treasury_api, funded_wallet, at):
    wallet = funded_wallet("1.00")
    response = treasury_api.get(f"/api/wallets/{wallet.pk}/balance", {"at": at})
    assert response.status_code == 400
    body = response.json()
    assert (body["success"], body["code"]) == (False, "validation_error")
    assert list(body["errors"]) == ["at"]


def test_an_unknown_or_repeated_balance_parameter_is_a_400(treasury_api, funded_wallet):
    wallet = funded_wallet("1.00")
    unknown = treasury_api.get(f"/api/wallets/{wallet.pk}/balance", {"when": "2026-12-01T00:00:00Z"})
    assert (unknown.status_code, list(unknown.json()["errors"])) == (400, ["when"])
    now = timezone.now().isoformat()
    repeated = treasury_api.get(f"/api/wallets/{wallet.pk}/balance?at={now}&at={now}".replace("+", "%2B"))
    assert (repeated.status_code, list(repeated.json()["errors"])) == (400, ["at"])


# --- tenancy ------------------------------------------------------------------------


@pytest.mark.parametrize("route", ["balance", "statement", "statement?format=csv", "statement?format=pdf"])
def test_another_clients_wallet_is_not_found_as_an_unknown_one(funded_wallet, route):
    other = make_api_client("Treasury client")
    mine = funded_wallet("10.00")
    query = f"from={today()}&to={today()}" if route.startswith("statement") else ""
    sep = "&" if "?" in route else "?"
    theirs = other.get(f"/api/wallets/{mine.pk}/{route}{sep}{query}")
    unknown = other.get(f"/api/wallets/{uuid.uuid4()}/{route}{sep}{query}")
    assert theirs.status_code == unknown.status_code == 404
    assert theirs["Content-Type"] == "application/json"
    assert theirs.json()["code"] == unknown.json()["code"] == "wallet_not_found"


def test_a_settlement_wallet_is_not_found(treasury_api, wallet_owner, funded_wallet):
    log = deposit(wallet_owner, funded_wallet("0"), "1.00")
    settlement = Wallet.objects.get(pk=log.source_wallet_id)
    assert settlement.kind == WalletKind.SETTLEMENT
    assert treasury_api.get(f"/api/wallets/{settlement.pk}/balance").status_code == 404
    assert statement_of(treasury_api, settlement).status_code == 404


def test_an_auditor_reads_any_clients_statement(funded_wallet):
    wallet = funded_wallet("10.00")
    auditor = make_api_client("Auditor")
    response = statement_of(auditor, wallet)
    assert response.status_code == 200, response.json()
    assert response.json()["data"]["closingBalance"] == "10.00"


def test_a_client_without_view_wallet_is_refused(funded_wallet, wallet_owner):
    wallet = funded_wallet("10.00")
    bare = make_api_client(user=wallet_owner)  # in no group
    assert bare.get(f"/api/wallets/{wallet.pk}/balance").status_code == 403
    assert statement_of(bare, wallet).status_code == 403


# --- statements ---------------------------------------------------------------------


def test_a_statement_has_opening_movements_totals_and_closing(treasury_api, wallet_owner, funded_wallet):
    wallet, marks = instants_between(wallet_owner, funded_wallet)
    response = statement_of(treasury_api, wallet)
    assert response.status_code == 200, response.json()
    data = response.json()["data"]
    assert (data["walletId"], data["currency"], data["timeZone"]) == (str(wallet.pk), "NGN", "Africa/Lagos")
    assert (data["from"], data["to"]) == (today(), today())
    assert data["openingBalance"] == "0.00"
    assert (data["totalIn"], data["totalOut"], data["closingBalance"]) == ("112.34", "32.34", "80.00")
    assert data["movementCount"] == 4
    assert [(m["type"], m["direction"], m["amount"], m["balanceAfter"]) for m in data["movements"]] == [
        ("DEPOSIT", "CREDIT", "100.00", "100.00"),
        ("TRANSFER", "DEBIT", "30.00", "70.00"),
        ("TRANSFER", "CREDIT", "12.34", "82.34"),
        ("WITHDRAWAL", "DEBIT", "2.34", "80.00"),
    ]
    assert [m["counterpartyWalletKind"] for m in data["movements"]] == [
        "SETTLEMENT",
        "CUSTOMER",
        "CUSTOMER",
        "SETTLEMENT",
    ]
    assert (data["chainPosition"], data["chainHash"]) == (None, None)


def test_statement_totals_equal_the_balance_difference(treasury_api, wallet_owner, funded_wallet):
    wallet, _ = instants_between(wallet_owner, funded_wallet)
    data = statement_of(treasury_api, wallet).json()["data"]
    opening = statements.balance_before(wallet_id=wallet.pk, before=statements.day_start(business_today()))
    closing = statements.balance_at(wallet=wallet, at=timezone.now())
    assert D(data["openingBalance"]) == opening
    assert D(data["closingBalance"]) == closing
    assert D(data["totalIn"]) - D(data["totalOut"]) == closing - opening


def test_a_statement_of_a_quiet_period_has_the_balance_then(treasury_api, funded_wallet):
    wallet = funded_wallet("25.00")
    TransactionLog.objects.filter(destination_wallet=wallet).update(completed_at=timezone.now() - dt.timedelta(days=10))
    data = statement_of(treasury_api, wallet).json()["data"]
    assert (data["openingBalance"], data["closingBalance"], data["movements"]) == ("25.00", "25.00", [])
    assert (data["totalIn"], data["totalOut"]) == ("0.00", "0.00")


def test_a_statement_across_a_lagos_midnight(treasury_api, wallet_owner, funded_wallet):
    wallet, other = funded_wallet("0"), funded_wallet("100.00")
    late, early = deposit(wallet_owner, wallet, "10.00"), transfer(wallet_owner, other, wallet, "5.00")
    # 22:59:59.999999 UTC is 23:59:59.999999 in Lagos (UTC+1), on the 3rd;
    # 23:00:00 UTC is midnight, the 4th.
    TransactionLog.objects.filter(pk=late.pk).update(completed_at=dt.datetime(2026, 12, 3, 22, 59, 59, 999999, dt.UTC))
    TransactionLog.objects.filter(pk=early.pk).update(completed_at=dt.datetime(2026, 12, 3, 23, 0, tzinfo=dt.UTC))
    third = statement_of(treasury_api, wallet, "2026-12-03", "2026-12-03").json()["data"]
    fourth = statement_of(treasury_api, wallet, "2026-12-04", "2026-12-04").json()["data"]
    assert [m["id"] for m in third["movements"]] == [str(late.pk)]
    assert [m["id"] for m in fourth["movements"]] == [str(early.pk)]
    assert (third["openingBalance"], third["closingBalance"]) == ("0.00", "10.00")
    assert (fourth["openingBalance"], fourth["closingBalance"]) == ("10.00", "15.00")
    assert (third["periodStart"], third["periodEnd"]) == ("2026-12-02T23:00:00Z", "2026-12-03T23:00:00Z")
    both = statement_of(treasury_api, wallet, "2026-12-03", "2026-12-04").json()["data"]
    assert [m["id"] for m in both["movements"]] == [str(late.pk), str(early.pk)]


def test_a_statements_days_are_those_of_the_business_time_zone_setting(
    settings, treasury_api, wallet_owner, funded_wallet
):
    settings.BUSINESS_TIME_ZONE = "America/New_York"  # UTC-5 in December
    wallet = funded_wallet("0")
    evening = deposit(wallet_owner, wallet, "10.00")
    # 03:00 UTC on the 4th is 22:00 on the 3rd in New York (and 04:00 on the 4th in Lagos).
    TransactionLog.objects.filter(pk=evening.pk).update(completed_at=dt.datetime(2026, 12, 4, 3, 0, tzinfo=dt.UTC))
    data = statement_of(treasury_api, wallet, "2026-12-03", "2026-12-03").json()["data"]
    assert data["timeZone"] == "America/New_York"
    assert (data["periodStart"], data["periodEnd"]) == ("2026-12-03T05:00:00Z", "2026-12-04T05:00:00Z")
    assert [m["id"] for m in data["movements"]] == [str(evening.pk)]
    rows = list(
        csv.DictReader(
            io.StringIO(statement_of(treasury_api, wallet, "2026-12-03", "2026-12-03", format="csv").content.decode())
        )
    )
    assert rows[1]["date"] == "2026-12-03T22:00:00-05:00"
    tomorrow = (business_today() + dt.timedelta(days=1)).isoformat()
    refused = statement_of(treasury_api, wallet, tomorrow, tomorrow)
    assert refused.status_code == 400
    assert refused.json()["errors"]["from"] == ["This day is still to come in America/New_York."]


def test_a_reversed_movement_and_its_compensation_are_both_on_the_statement(treasury_api, wallet_owner, funded_wallet):
    payer, payee = funded_wallet("50.00"), funded_wallet("0")
    original = transfer(wallet_owner, payer, payee, "20.00")
    compensation = transaction_reverse(log_id=original.pk, reason="sent twice", reversed_by=wallet_owner)
    rows = statement_of(treasury_api, payer).json()["data"]["movements"]
    assert [(m["id"], m["status"], m["direction"], m["balanceAfter"], m["reversalOf"]) for m in rows[-2:]] == [
        (str(original.pk), "REVERSED", "DEBIT", "30.00", None),
        (str(compensation.pk), "COMPLETED", "CREDIT", "50.00", str(original.pk)),
    ]


def test_failed_and_pending_movements_are_not_on_a_statement(treasury_api, wallet_owner, funded_wallet):
    payer, payee = funded_wallet("10.00"), funded_wallet("0")
    transfer(wallet_owner, payer, payee, "99.00")  # FAILED
    data = statement_of(treasury_api, payer).json()["data"]
    assert [m["type"] for m in data["movements"]] == ["DEPOSIT"]


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ({"to": "2026-12-01"}, "from"),
        ({"from": "2026-12-01"}, "to"),
        ({"from": "2026-12-05", "to": "2026-12-04"}, "to"),
        ({"from": "2025-01-01", "to": "2026-01-02"}, "to"),  # 367 days
        ({"from": "2026-02-30", "to": "2026-03-01"}, "from"),
        ({"from": "01/12/2026", "to": "2026-12-01"}, "from"),
        ({"from": "2999-01-01", "to": "2999-01-02"}, "from"),
        ({"from": "2026-12-01", "to": "2026-12-01", "format": "xml"}, "format"),
        ({"from": "2026-12-01", "to": "2026-12-01", "fromDate": "2026-12-01"}, "fromDate"),
        ({"from": "2026-12-1", "to": "2026-12-01"}, "from"),  # YYYY-MM-DD exactly
        ({"from": "2026-12-01", "to": "2026-12-1"}, "to"),
        ({"from": "20261201", "to": "2026-12-01"}, "from"),  # ISO 8601's basic form
        ({"from": "2026-W49-1", "to": "2026-12-01"}, "from"),  # a week date
        ({"from": "２０２６-12-01", "to": "2026-12-01"}, "from"),  # fullwidth digits
        ({"from": "0001-01-01", "to": "0001-01-01"}, "from"),  # starts in year 0 in UTC: out of range
        ({"from": "2026-12-01", "to": "9999-12-31"}, "to"),
    ],
)
def test_a_bad_statement_query_is_a_400_naming_it(treasury_api, funded_wallet, query, named):
    wallet = funded_wallet("1.00")
    response = treasury_api.get(f"/api/wallets/{wallet.pk}/statement", query)
    assert response.status_code == 400, response.content
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert (body["success"], body["code"]) == (False, "validation_error")
    assert named in body["errors"], body


def test_the_first_day_in_range_is_read(treasury_api, funded_wallet):
    wallet = funded_wallet("1.00")
    response = treasury_api.get(f"/api/wallets/{wallet.pk}/statement", {"from": "0001-01-02", "to": "0001-01-02"})
    assert response.status_code == 200, response.json()
    data = response.json()["data"]
    # Lagos kept local mean time then (+00:13:35): the day starts late on 0001-01-01 in UTC.
    assert (data["periodStart"][:11], data["closingBalance"]) == ("0001-01-01T", "0.00")


def test_a_full_year_is_allowed(treasury_api, funded_wallet):
    wallet = funded_wallet("1.00")
    response = treasury_api.get(f"/api/wallets/{wallet.pk}/statement", {"from": "2024-01-01", "to": "2024-12-31"})
    assert response.status_code == 200, response.json()  # 366 days: a leap year


def test_statement_max_days_is_a_setting(treasury_api, funded_wallet, settings):
    settings.STATEMENT_MAX_DAYS = 7
    wallet = funded_wallet("1.00")
    assert statement_of(treasury_api, wallet, "2026-11-01", "2026-11-07").status_code == 200
    response = statement_of(treasury_api, wallet, "2026-11-01", "2026-11-08")
    assert response.status_code == 400
    assert "At most 7 days" in response.json()["errors"]["to"][0]


def test_a_statement_past_its_row_limit_asks_for_a_shorter_period(treasury_api, wallet_owner, funded_wallet, settings):
    settings.STATEMENT_MAX_ROWS = 3
    wallet = funded_wallet("10.00")
    for _ in range(2):
        deposit(wallet_owner, wallet, "1.00")
    assert statement_of(treasury_api, wallet).status_code == 200  # 3 movements
    deposit(wallet_owner, wallet, "1.00")
    response = statement_of(treasury_api, wallet)
    assert response.status_code == 400
    assert "More than 3 movements" in response.json()["errors"]["to"][0]


def test_a_statement_as_csv(treasury_api, wallet_owner, funded_wallet):
    wallet, _ = instants_between(wallet_owner, funded_wallet)
    response = statement_of(treasury_api, wallet, format="csv")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"] == (
        f'attachment; filename="statement-{wallet.pk}-{today().replace("-", "")}-{today().replace("-", "")}.csv"'
    )
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert [row["description"] for row in rows][0] == "Opening balance"
    assert [(row["moneyIn"], row["moneyOut"], row["balance"]) for row in rows] == [
        ("", "", "0.00"),
        ("100.00", "", "100.00"),
        ("", "30.00", "70.00"),
        ("12.34", "", "82.34"),
        ("", "2.34", "80.00"),
        ("112.34", "32.34", ""),
        ("", "", "80.00"),
    ]
    assert [row["description"] for row in rows][-2:] == ["Totals", "Closing balance"]
    assert rows[2]["description"].startswith("Transfer to ")
    assert rows[1]["date"].endswith("+01:00")  # Lagos time
    json_rows = statement_of(treasury_api, wallet).json()["data"]["movements"]
    assert [row["reference"] for row in rows[1:-2]] == [m["reference"] for m in json_rows]


def test_a_statement_as_csv_by_accept_header(treasury_api, funded_wallet):
    wallet = funded_wallet("3.00")
    response = treasury_api.get(
        f"/api/wallets/{wallet.pk}/statement", {"from": today(), "to": today()}, HTTP_ACCEPT="text/csv"
    )
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")


@pytest.mark.parametrize(
    ("format", "accept", "content_type"),
    [
        ("csv", "application/json", "text/csv"),
        ("csv", "application/pdf", "text/csv"),
        ("pdf", "text/csv", "application/pdf"),
        ("json", "text/csv", "application/json"),
    ],
)
def test_a_format_named_in_the_query_wins_over_the_accept_header(
    treasury_api, funded_wallet, format, accept, content_type
):
    wallet = funded_wallet("3.00")
    response = treasury_api.get(
        f"/api/wallets/{wallet.pk}/statement", {"from": today(), "to": today(), "format": format}, HTTP_ACCEPT=accept
    )
    assert response.status_code == 200, response.content
    assert response["Content-Type"].split(";")[0] == content_type


def test_an_accept_header_without_a_format_still_chooses_and_refuses(treasury_api, funded_wallet):
    wallet = funded_wallet("3.00")
    url, days = f"/api/wallets/{wallet.pk}/statement", {"from": today(), "to": today()}
    assert treasury_api.get(url, days, HTTP_ACCEPT="application/pdf")["Content-Type"] == "application/pdf"
    assert_error_envelope(treasury_api.get(url, days, HTTP_ACCEPT="text/html"), status=406, code="not_acceptable")


def test_a_statement_as_pdf(treasury_api, wallet_owner, funded_wallet):
    from pypdf import PdfReader

    wallet, _ = instants_between(wallet_owner, funded_wallet)
    response = statement_of(treasury_api, wallet, format="pdf")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"].endswith('.pdf"')
    assert response.content.startswith(b"%PDF-")
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(response.content)).pages)
    data = statement_of(treasury_api, wallet).json()["data"]
    assert "Wallet statement" in text
    assert str(wallet.pk) in text
    assert "Africa/Lagos" in text
    for reference in (m["reference"] for m in data["movements"]):
        assert reference in text
    for figure in ("Opening balance", "Closing balance", "112.34", "32.34", "82.34", "80.00"):
        assert figure in text


def test_the_pdf_tells_the_totals_row_from_the_closing_balance(treasury_api, wallet_owner, funded_wallet):
    """The table ends as the CSV does: "Totals" holds the money in and out
    of the period and no balance; "Closing balance" holds the balance only."""
    from pypdf import PdfReader

    wallet, _ = instants_between(wallet_owner, funded_wallet)
    response = statement_of(treasury_api, wallet, format="pdf")
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(response.content)).pages)
    lines = text.splitlines()
    table = lines[lines.index("Date (Lagos) Reference Description Money in Money out Balance") + 1 :]
    rows = [line for line in table if line.startswith("20")]  # each row opens with its Lagos date
    assert rows[0].endswith("Opening balance 0.00")
    assert rows[-2].endswith(" Totals 112.34 32.34")
    assert rows[-1].endswith(" Closing balance 80.00")
    assert [row for row in rows if "Closing balance" in row] == rows[-1:]


def test_a_long_statement_pdf_runs_over_pages(treasury_api, wallet_owner, funded_wallet):
    from pypdf import PdfReader

    wallet = funded_wallet("0")
    for _ in range(60):
        deposit(wallet_owner, wallet, "1.00")
    response = statement_of(treasury_api, wallet, format="pdf")
    reader = PdfReader(io.BytesIO(response.content))
    assert len(reader.pages) >= 2
    assert "60.00" in reader.pages[-1].extract_text()


def test_the_pdf_library_is_imported_only_for_a_pdf():
    import subprocess
    import sys

    code = (
        "import django, os, sys; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'wallet_project.settings'); "
        "django.setup(); import wallet_project.urls, transfers.views; print('fpdf' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


# --- the chain hook ---------------------------------------------------------------


def test_a_registered_chain_lookup_names_the_last_rows_link(treasury_api, wallet_owner, funded_wallet):
    wallet, _ = instants_between(wallet_owner, funded_wallet)
    asked = []

    def lookup(log_id):
        asked.append(log_id)
        return statements.ChainLink(position=42, hash="ab" * 32)

    previous = statements.register_chain_lookup(lookup)
    try:
        data = statement_of(treasury_api, wallet).json()["data"]
        pdf = statement_of(treasury_api, wallet, format="pdf")
    finally:
        statements.register_chain_lookup(previous)
    assert (data["chainPosition"], data["chainHash"]) == (42, "ab" * 32)
    assert asked[0] == uuid.UUID(data["movements"][-1]["id"])
    from pypdf import PdfReader

    assert "position 42" in PdfReader(io.BytesIO(pdf.content)).pages[-1].extract_text()


def test_a_chain_lookup_that_has_no_link_yet_leaves_nulls(treasury_api, funded_wallet):
    wallet = funded_wallet("1.00")
    previous = statements.register_chain_lookup(lambda log_id: None)
    try:
        data = statement_of(treasury_api, wallet).json()["data"]
    finally:
        statements.register_chain_lookup(previous)
    assert (data["chainPosition"], data["chainHash"]) == (None, None)


# --- history ------------------------------------------------------------------------


def test_history_rows_carry_the_wallets_balance_after(treasury_api, wallet_owner, funded_wallet):
    wallet, _ = instants_between(wallet_owner, funded_wallet)
    payer = funded_wallet("1.00")
    transfer(wallet_owner, payer, wallet, "5.00")  # FAILED: no balance after
    rows = treasury_api.get(f"/api/wallets/{wallet.pk}/transactions").json()["data"]["results"]
    assert [(r["direction"], r["status"], r["balanceAfter"]) for r in rows] == [
        ("CREDIT", "FAILED", None),
        ("DEBIT", "COMPLETED", "80.00"),
        ("CREDIT", "COMPLETED", "82.34"),
        ("DEBIT", "COMPLETED", "70.00"),
        ("CREDIT", "COMPLETED", "100.00"),
    ]
    # The same transfer from the other side: that wallet's balance.
    other_rows = treasury_api.get(f"/api/wallets/{rows[3]['destinationWalletId']}/transactions").json()["data"]
    debit = next(r for r in other_rows["results"] if r["id"] == rows[3]["id"])
    assert debit["direction"] == "CREDIT" and debit["balanceAfter"] == "530.00"


def test_money_answers_keep_transaction_id_as_an_alias_of_id(treasury_api, funded_wallet):
    payer, payee = funded_wallet("10.00"), funded_wallet("0")
    data = post_transfer(token_of(treasury_api), payer, payee, "1.00", f"k-{uuid.uuid4()}").json()["data"]
    assert data["transactionId"] == data["id"]


# --- concurrency --------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_balances_after_are_right_under_concurrent_transfers(treasury_api, funded_wallet):
    wallets = [funded_wallet("1000.00") for _ in range(4)]
    token = token_of(treasury_api)
    rng = random.Random(26)
    calls = []
    for n in range(120):
        source, destination = rng.sample(wallets, 2)
        amount = D(rng.randint(1, 40000)) / 100
        calls.append(lambda s=source, d=destination, a=amount, n=n: post_transfer(token, s, d, a, f"c-{n}"))
    answers = run_concurrently(calls, threads=12)
    assert {answer.status_code for answer in answers} <= {201, 422}
    assert any(answer.status_code == 201 for answer in answers)
    for wallet in wallets:
        wallet.refresh_from_db()
        logs = TransactionLog.objects.filter(completed_at__isnull=False).order_by("completed_at", "batch_index")
        running = D("0.00")
        for log in logs:
            if wallet.pk not in (log.source_wallet_id, log.destination_wallet_id):
                continue
            if log.destination_wallet_id == wallet.pk:
                running += log.amount
                assert log.destination_balance_after == running, log
            else:
                running -= log.amount
                assert log.source_balance_after == running, log
        assert running == wallet.balance
        # And the API agrees at the end of the day.
        data = api_client(token).get(f"/api/wallets/{wallet.pk}/statement", {"from": today(), "to": today()})
        assert data.json()["data"]["closingBalance"] == f"{wallet.balance:.2f}"
        assert statements.balance_at(wallet=wallet, at=timezone.now()) == wallet.balance


@pytest.mark.django_db(transaction=True)
def test_a_statement_read_while_money_moves_adds_up(treasury_api, funded_wallet):
    wallet, other = funded_wallet("500.00"), funded_wallet("500.00")
    token = token_of(treasury_api)
    stop = time.monotonic() + 3

    def move(n):
        return post_transfer(token, *((wallet, other) if n % 2 else (other, wallet)), "1.00", f"s-{n}")

    def read(_):
        answers = []
        while time.monotonic() < stop:
            data = (
                api_client(token)
                .get(f"/api/wallets/{wallet.pk}/statement", {"from": today(), "to": today()})
                .json()["data"]
            )
            answers.append(data)
        return answers

    calls = [lambda n=n: move(n) for n in range(60)] + [lambda: read(0)]
    results = run_concurrently(calls, threads=6)
    for data in results[-1]:
        moved = D(data["totalIn"]) - D(data["totalOut"])
        assert D(data["openingBalance"]) + moved == D(data["closingBalance"])
        last = data["movements"][-1]["balanceAfter"] if data["movements"] else data["openingBalance"]
        assert last == data["closingBalance"]


def test_the_schema_offers_the_statement_as_json_csv_and_pdf(treasury_api):
    schema = treasury_api.get("/api/schema/", headers={"Accept": "application/json"}).json()
    statement = schema["paths"]["/api/wallets/{id}/statement"]["get"]
    assert set(statement["responses"]["200"]["content"]) == {"application/json", "text/csv", "application/pdf"}
    assert {p["name"] for p in statement["parameters"]} >= {"from", "to", "format"}
    balance = schema["paths"]["/api/wallets/{id}/balance"]["get"]
    assert [p["schema"].get("format") for p in balance["parameters"] if p["name"] == "at"] == ["date-time"]


# --- the admin ----------------------------------------------------------------------


def test_support_gets_a_wallets_statement_from_its_admin_page(wallet_owner, funded_wallet, migrated_groups):
    from pypdf import PdfReader

    from wallets.tests.test_admin import staff_client

    wallet, _ = instants_between(wallet_owner, funded_wallet)
    support = staff_client("Support")
    page = support.get(f"/admin/wallets/wallet/{wallet.pk}/change/").content.decode()
    assert 'id="statement-request"' in page and 'form="statement-request"' in page
    url = f"/admin/wallets/wallet/{wallet.pk}/statement/"
    pdf = support.get(url, {"from": today(), "to": today(), "format": "pdf"})
    assert (pdf.status_code, pdf["Content-Type"]) == (200, "application/pdf")
    assert "80.00" in PdfReader(io.BytesIO(pdf.content)).pages[0].extract_text()
    as_csv = support.get(url, {"from": today(), "to": today(), "format": "csv"})
    assert as_csv.content.decode().rstrip().endswith(",Closing balance,,,80.00")
    bad = support.get(url, {"from": today(), "to": "2000-01-01", "format": "pdf"}, follow=True)
    assert "No statement: to: The last day must not be before the first" in bad.content.decode()


def test_the_admin_statement_needs_the_wallet_view_permission(funded_wallet, migrated_groups):
    from wallets.tests.test_admin import staff_client

    wallet = funded_wallet("1.00")
    nobody = staff_client()  # staff, in no group
    response = nobody.get(f"/admin/wallets/wallet/{wallet.pk}/statement/", {"from": today(), "to": today()})
    assert response.status_code == 403
