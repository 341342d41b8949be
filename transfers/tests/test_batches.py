"""Batch disbursements through the API (docs/api.md, "Batch payouts"):
outcomes per payout in both modes, replays, refusals that store nothing,
tenancy, and each payout findable as a transaction of its own."""

import uuid
from decimal import Decimal

import pytest
from django.test import override_settings

from conftest import make_api_client
from events.models import Event
from reconciliation.services import ledger_discrepancies
from transfers.models import BatchStatus, TransactionLog, TransactionStatus, TransferBatch
from wallets.tests.factories import WalletFactory

pytestmark = pytest.mark.django_db

BATCH = "/api/transfers/batch"


def post_batch(api, source, payouts, *, atomic=False, key=None, headers=None):
    body = {"sourceWalletId": str(source.pk), "atomic": atomic, "transfers": payouts}
    headers = {"Idempotency-Key": key or f"batch-{uuid.uuid4()}"} if headers is None else headers
    return api.post(BATCH, body, format="json", headers=headers)


def payout(destination, amount, key=None, **extra):
    wallet_id = destination if isinstance(destination, str) else str(destination.pk)
    return {
        "destinationWalletId": wallet_id,
        "amount": str(amount),
        "idempotencyKey": key or f"p-{uuid.uuid4()}",
        **extra,
    }


def balance(wallet) -> Decimal:
    wallet.refresh_from_db(fields=["balance"])
    return wallet.balance


def nothing_stored() -> None:
    assert not TransferBatch.objects.exists()
    assert not TransactionLog.objects.filter(batch__isnull=False).exists()


def test_batch_pays_each_payout_as_a_transfer_of_its_own(transfer_api, funded_wallet):
    pool, a, b = funded_wallet("100.00"), funded_wallet("0"), funded_wallet("0")
    payouts = [
        payout(a, "10.50", "loan-1", metadata={"loan": 1}),
        payout(b, "20", "loan-2"),
        payout(a, "1.25", "loan-3"),
    ]

    response = post_batch(transfer_api, pool, payouts, key="disbursement-1")

    assert response.status_code == 201, response.json()
    data = response.json()["data"]
    assert data["status"] == "COMPLETED" and data["completedCount"] == 3 and data["completedAmount"] == "31.75"
    assert [p["status"] for p in data["payouts"]] == ["COMPLETED"] * 3
    assert [p["idempotencyKey"] for p in data["payouts"]] == ["loan-1", "loan-2", "loan-3"]
    assert (balance(pool), balance(a), balance(b)) == (Decimal("68.25"), Decimal("11.75"), Decimal("20.00"))
    batch = TransferBatch.objects.get(pk=data["batchId"])
    logs = list(batch.payouts.order_by("batch_index"))
    assert [str(log.pk) for log in logs] == [p["transactionId"] for p in data["payouts"]]
    assert {log.type for log in logs} == {"TRANSFER"}
    by_key = transfer_api.get("/api/transfer/loan-1").json()["data"]
    assert by_key["id"] == data["payouts"][0]["transactionId"] and by_key["metadata"] == {"loan": 1}
    by_reference = transfer_api.get(f"/api/transfer/reference/{data['payouts'][1]['reference']}").json()["data"]
    assert by_reference["id"] == data["payouts"][1]["transactionId"]
    assert ledger_discrepancies() == []


def test_batch_timestamps_are_written_in_utc_with_a_z_as_every_other_timestamp(transfer_api, funded_wallet):
    pool, a = funded_wallet("100.00"), funded_wallet("0")

    data = post_batch(transfer_api, pool, [payout(a, "1", "z-1")]).json()["data"]
    log = transfer_api.get("/api/transfer/z-1").json()["data"]
    again = transfer_api.get(f"{BATCH}/{data['batchId']}").json()["data"]
    finished = Event.objects.get(client=transfer_api.user, type="batch.finished").data

    stamps = [data["createdAt"], data["finishedAt"], again["createdAt"], again["finishedAt"], finished["finishedAt"]]
    assert all(stamp.endswith("Z") and "+" not in stamp for stamp in stamps), stamps
    assert log["completedAt"].endswith("Z") and data["finishedAt"] == finished["finishedAt"]


def test_batch_replay_returns_the_first_outcomes_and_moves_nothing(transfer_api, funded_wallet):
    pool, a = funded_wallet("100.00"), funded_wallet("0")
    payouts = [payout(a, "10", "r-1"), payout(a, "95", "r-2")]
    first = post_batch(transfer_api, pool, payouts, key="replayed-batch")

    again = post_batch(transfer_api, pool, payouts, key="replayed-batch")
    shown = transfer_api.get(f"{BATCH}/{first.json()['data']['batchId']}")

    assert first.status_code == 201 and again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first.headers
    assert again.json()["data"]["payouts"] == first.json()["data"]["payouts"]
    assert shown.json()["data"]["payouts"] == first.json()["data"]["payouts"]
    assert balance(pool) == Decimal("90.00")
    assert TransactionLog.objects.filter(batch__isnull=False).count() == 2


def test_independent_batch_fails_only_the_payouts_that_no_longer_fit_in_order(transfer_api, funded_wallet):
    pool, a = funded_wallet("100.00"), funded_wallet("0")
    payouts = [payout(a, "60"), payout(a, "50"), payout(a, "40"), payout(a, "1")]

    data = post_batch(transfer_api, pool, payouts).json()["data"]

    assert [(p["status"], p["errorCode"]) for p in data["payouts"]] == [
        ("COMPLETED", ""),
        ("FAILED", "insufficient_balance"),
        ("COMPLETED", ""),
        ("FAILED", "insufficient_balance"),
    ]
    assert data["status"] == "PARTIALLY_COMPLETED" and data["failedCount"] == 2
    assert (balance(pool), balance(a)) == (Decimal("0.00"), Decimal("100.00"))
    assert ledger_discrepancies() == []


def test_atomic_batch_moves_nothing_when_one_payout_breaks_a_rule(transfer_api, funded_wallet):
    pool, a = funded_wallet("100.00"), funded_wallet("0")
    frozen = funded_wallet("0", is_active=False)
    payouts = [payout(a, "10"), payout(frozen, "10"), payout(a, "500")]

    response = post_batch(transfer_api, pool, payouts, atomic=True, key="atomic-1")
    replay = post_batch(transfer_api, pool, payouts, atomic=True, key="atomic-1")

    assert response.status_code == 422 and response.json()["code"] == "batch_failed"
    data = response.json()["data"]
    assert data["status"] == "FAILED" and data["failedPayoutIndex"] == 1 and data["errorCode"] == "wallet_inactive"
    assert [(p["status"], p["errorCode"]) for p in data["payouts"]] == [
        ("FAILED", "batch_failed"),
        ("FAILED", "wallet_inactive"),
        ("FAILED", "batch_failed"),
    ]
    assert replay.status_code == 422 and replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json()["data"]["payouts"] == data["payouts"]
    assert (balance(pool), balance(a)) == (Decimal("100.00"), Decimal("0.00"))


def test_batch_of_a_thousand_with_frozen_and_unknown_destinations_independent(transfer_api, funded_wallet):
    pool = funded_wallet("100000.00")
    wallets = [WalletFactory(owner=transfer_api.user) for _ in range(20)]
    frozen = WalletFactory(owner=transfer_api.user, is_active=False)
    unknown, foreign = str(uuid.uuid4()), WalletFactory()  # another client's wallet: unknown to this one
    bad = {7: frozen, 100: unknown, 555: foreign, 998: frozen}
    payouts = [payout(bad.get(i, wallets[i % 20]), "1.01", f"k-{i}") for i in range(1000)]

    response = post_batch(transfer_api, pool, payouts)

    assert response.status_code == 201, response.json()
    data = response.json()["data"]
    expected = {7: "wallet_inactive", 100: "wallet_not_found", 555: "wallet_not_found", 998: "wallet_inactive"}
    assert {p["index"]: p["errorCode"] for p in data["payouts"] if p["status"] == "FAILED"} == expected
    assert [p["index"] for p in data["payouts"]] == list(range(1000))
    assert data["payouts"][100]["transactionId"] is None and data["payouts"][7]["transactionId"] is not None
    assert data["completedCount"] == 996 and data["status"] == "PARTIALLY_COMPLETED"
    assert balance(pool) == Decimal("100000.00") - 996 * Decimal("1.01")
    assert sum(balance(w) for w in wallets) == 996 * Decimal("1.01")
    assert TransactionLog.objects.filter(batch_id=data["batchId"]).count() == 998
    assert ledger_discrepancies() == []


def test_batch_of_a_thousand_with_frozen_and_unknown_destinations_atomic(transfer_api, funded_wallet):
    pool = funded_wallet("100000.00")
    wallets = [WalletFactory(owner=transfer_api.user) for _ in range(20)]
    frozen = WalletFactory(owner=transfer_api.user, is_active=False)
    bad = {300: str(uuid.uuid4()), 600: frozen}
    payouts = [payout(bad.get(i, wallets[i % 20]), "1.01") for i in range(1000)]

    response = post_batch(transfer_api, pool, payouts, atomic=True)

    assert response.status_code == 422
    data = response.json()["data"]
    assert (data["failedPayoutIndex"], data["errorCode"]) == (300, "wallet_not_found")
    assert {p["status"] for p in data["payouts"]} == {"FAILED"}
    assert data["payouts"][600]["errorCode"] == "batch_failed" and data["payouts"][300]["transactionId"] is None
    assert balance(pool) == Decimal("100000.00") and sum(balance(w) for w in wallets) == 0
    assert not TransactionLog.objects.filter(batch_id=data["batchId"], status=TransactionStatus.COMPLETED).exists()
    assert ledger_discrepancies() == []


@pytest.mark.parametrize(
    ("body_change", "field"),
    [
        (lambda body, pool: body.update(transfers=[]), "transfers"),
        (
            lambda body, pool: body["transfers"][1].update(idempotencyKey=body["transfers"][0]["idempotencyKey"]),
            "transfers",
        ),
        (lambda body, pool: body["transfers"][1].update(destinationWalletId=str(pool.pk)), "transfers"),
        (lambda body, pool: body.update(atomic="yes"), "atomic"),
        (lambda body, pool: body.pop("atomic"), "atomic"),
        (lambda body, pool: body["transfers"][0].update(amount="0.001"), "transfers"),
        (lambda body, pool: body["transfers"][0].pop("idempotencyKey"), "transfers"),
        # A number is not its text: 7 and "7" would be one payout key.
        (lambda body, pool: body["transfers"][0].update(idempotencyKey=7), "transfers"),
        (lambda body, pool: body["transfers"][0].update(amount=" 1.00"), "transfers"),
        (lambda body, pool: body.update(transfers={"a": 1}), "transfers"),
    ],
)
def test_malformed_batch_is_400_and_stores_nothing(body_change, field, transfer_api, funded_wallet):
    pool, a = funded_wallet("100.00"), funded_wallet("0")
    body = {"sourceWalletId": str(pool.pk), "atomic": False, "transfers": [payout(a, "1"), payout(a, "2")]}
    body_change(body, pool)

    response = transfer_api.post(BATCH, body, format="json", headers={"Idempotency-Key": "bad-batch"})

    assert response.status_code == 400, response.json()
    assert response.json()["code"] == "validation_error" and field in response.json()["errors"]
    nothing_stored()
    assert balance(pool) == Decimal("100.00")


@pytest.mark.parametrize(
    "unknown", [{"sourceWalletId": "x"}, {"status": "COMPLETED"}, {"metdata": {"loan": 1}}], ids=lambda u: next(iter(u))
)
def test_an_unknown_field_in_a_payout_is_400_naming_it_and_stores_nothing(unknown, transfer_api, funded_wallet):
    pool, a = funded_wallet("100.00"), funded_wallet("0")

    response = post_batch(transfer_api, pool, [payout(a, "1"), payout(a, "2", **unknown)])

    assert response.status_code == 400, response.json()
    assert response.json()["errors"]["transfers"] == {"1": {next(iter(unknown)): ["Unknown field."]}}
    nothing_stored()
    assert balance(pool) == Decimal("100.00")


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("k" * 300, "The idempotency key must be at most 255 characters."),
        ("a/../b", "The idempotency key must not have '.' or '..' between slashes"),
    ],
    ids=["300_characters", "dot_segment"],
)
def test_a_bad_payout_key_is_one_400_message_as_for_a_single_transfer(key, message, transfer_api, funded_wallet):
    pool, a = funded_wallet("100.00"), funded_wallet("0")

    response = post_batch(transfer_api, pool, [payout(a, "1"), payout(a, "2", key)])

    assert response.status_code == 400, response.json()
    [only] = response.json()["errors"]["transfers"]["1"]["idempotencyKey"]
    assert only.startswith(message), only
    nothing_stored()


def test_batch_without_its_idempotency_key_is_400(transfer_api, funded_wallet):
    pool, a = funded_wallet("100.00"), funded_wallet("0")

    response = post_batch(transfer_api, pool, [payout(a, "1")], headers={})

    assert response.status_code == 400 and "idempotencyKey" in response.json()["errors"]
    nothing_stored()


def test_a_batch_missing_its_key_and_body_fields_is_told_every_missing_part_in_one_400(transfer_api, funded_wallet):
    pool, a = funded_wallet("100.00"), funded_wallet("0")
    body = {"sourceWalletId": str(pool.pk), "transfers": [{"destinationWalletId": str(a.pk), "amount": "1.00"}]}

    response = transfer_api.post(BATCH, body, format="json")

    assert response.status_code == 400, response.json()
    errors = response.json()["errors"]
    assert set(errors) == {"idempotencyKey", "atomic", "transfers"}, errors
    assert errors["transfers"] == {"0": {"idempotencyKey": ["This field is required."]}}
    nothing_stored()


def test_the_batch_key_may_come_in_the_body_as_for_a_single_transfer(transfer_api, funded_wallet):
    pool, a = funded_wallet("100.00"), funded_wallet("0")
    body = {"sourceWalletId": str(pool.pk), "atomic": False, "transfers": [payout(a, "1")], "idempotencyKey": "b-1"}

    first = transfer_api.post(BATCH, body, format="json")
    by_header = transfer_api.post(
        BATCH,
        {k: v for k, v in body.items() if k != "idempotencyKey"},
        format="json",
        headers={"Idempotency-Key": "b-1"},
    )

    assert first.status_code == 201, first.json()
    assert (by_header.status_code, by_header.headers["Idempotent-Replayed"]) == (200, "true")
    assert by_header.json()["data"]["batchId"] == first.json()["data"]["batchId"]
    assert TransferBatch.objects.get().idempotency_key == "b-1" and balance(a) == Decimal("1.00")


@pytest.mark.parametrize(
    ("header", "body_key"),
    [("b-1", "b-2"), ("a,b", None), (None, " b-1"), (None, 7), ("reference/x", None)],
    ids=["header_and_body_differ", "header_list", "body_whitespace", "body_number", "reserved_prefix"],
)
def test_a_batch_key_is_read_by_the_single_transfers_rules(header, body_key, transfer_api, funded_wallet):
    pool, a = funded_wallet("100.00"), funded_wallet("0")
    body = {"sourceWalletId": str(pool.pk), "atomic": False, "transfers": [payout(a, "1")]}
    if body_key is not None:
        body["idempotencyKey"] = body_key

    response = transfer_api.post(BATCH, body, format="json", headers={"Idempotency-Key": header} if header else {})

    assert response.status_code == 400 and list(response.json()["errors"]) == ["idempotencyKey"], response.json()
    nothing_stored()


@override_settings(BATCH_MAX_PAYOUTS=3)
def test_batch_over_the_payout_limit_is_400(transfer_api, funded_wallet):
    pool, a = funded_wallet("100.00"), funded_wallet("0")

    response = post_batch(transfer_api, pool, [payout(a, "1") for _ in range(4)])

    assert response.status_code == 400 and "at most 3" in str(response.json()["errors"]["transfers"])
    nothing_stored()


def test_batch_key_reused_for_another_batch_is_422(transfer_api, funded_wallet):
    pool, a = funded_wallet("100.00"), funded_wallet("0")
    post_batch(transfer_api, pool, [payout(a, "1", "x-1")], key="same-batch")

    response = post_batch(transfer_api, pool, [payout(a, "2", "x-1")], key="same-batch")

    assert response.status_code == 422 and response.json()["code"] == "idempotency_key_reused"
    assert balance(a) == Decimal("1.00")


def test_payout_key_used_by_an_earlier_transfer_refuses_the_batch_and_stores_nothing(transfer_api, funded_wallet):
    pool, a = funded_wallet("100.00"), funded_wallet("0")
    transfer_api.post(
        "/api/transfer",
        {"sourceWalletId": str(pool.pk), "destinationWalletId": str(a.pk), "amount": "5"},
        format="json",
        headers={"Idempotency-Key": "taken"},
    )

    response = post_batch(transfer_api, pool, [payout(a, "1", "fresh"), payout(a, "5", "taken")])

    assert response.status_code == 422 and response.json()["code"] == "idempotency_key_reused"
    assert response.json()["data"]["payouts"] == [{"index": 1, "idempotencyKey": "taken"}]
    nothing_stored()
    assert not TransactionLog.objects.filter(idempotency_key="fresh").exists()
    assert balance(a) == Decimal("5.00")


def test_payout_key_replays_through_the_transfer_endpoint(transfer_api, funded_wallet):
    pool, a = funded_wallet("100.00"), funded_wallet("0")
    first = post_batch(transfer_api, pool, [payout(a, "7", "pay-7", metadata={"n": 1})]).json()["data"]

    replay = transfer_api.post(
        "/api/transfer",
        {"sourceWalletId": str(pool.pk), "destinationWalletId": str(a.pk), "amount": "7.00", "metadata": {"n": 1}},
        format="json",
        headers={"Idempotency-Key": "pay-7"},
    )
    other = transfer_api.post(
        "/api/transfer",
        {"sourceWalletId": str(pool.pk), "destinationWalletId": str(a.pk), "amount": "8"},
        format="json",
        headers={"Idempotency-Key": "pay-7"},
    )

    assert replay.status_code == 200 and replay.json()["data"]["transactionId"] == first["payouts"][0]["transactionId"]
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"
    assert balance(a) == Decimal("7.00")


def test_batch_from_another_clients_wallet_is_404_and_stores_nothing(transfer_api, funded_wallet):
    other = make_api_client("Transfer client")
    pool, a = funded_wallet("100.00", owner=other.user), funded_wallet("0")

    response = post_batch(transfer_api, pool, [payout(a, "1")])

    assert response.status_code == 404 and response.json()["code"] == "wallet_not_found"
    nothing_stored()


def test_payout_to_another_clients_wallet_needs_the_pay_other_clients_permission(funded_wallet):
    payer = make_api_client("Transfer client")
    disburser = make_api_client("Disbursement client")
    borrower_wallet = funded_wallet("0", owner=make_api_client("Transfer client").user)
    own_pool, disburser_pool = funded_wallet("50.00", owner=payer.user), funded_wallet("50.00", owner=disburser.user)

    refused = post_batch(payer, own_pool, [payout(borrower_wallet, "5")]).json()["data"]
    paid = post_batch(disburser, disburser_pool, [payout(borrower_wallet, "5")]).json()["data"]

    assert (refused["payouts"][0]["status"], refused["payouts"][0]["errorCode"]) == ("FAILED", "wallet_not_found")
    assert paid["payouts"][0]["status"] == "COMPLETED"
    assert balance(borrower_wallet) == Decimal("5.00") and balance(own_pool) == Decimal("50.00")


def test_a_batch_is_visible_only_to_the_client_that_sent_it(transfer_api, funded_wallet):
    pool, a = funded_wallet("100.00"), funded_wallet("0")
    batch_id = post_batch(transfer_api, pool, [payout(a, "1")]).json()["data"]["batchId"]
    stranger = make_api_client("Transfer client")

    assert transfer_api.get(f"{BATCH}/{batch_id}").status_code == 200
    hidden = stranger.get(f"{BATCH}/{batch_id}")
    assert hidden.status_code == 404 and hidden.json()["code"] == "batch_not_found"
    assert stranger.get(f"{BATCH}/{uuid.uuid4()}").json()["code"] == "batch_not_found"


@pytest.mark.parametrize(
    ("model", "change", "constraint"),
    [
        ("batch", {"finished_at": None}, "transferbatch_finished_at_iff_settled"),
        ("batch", {"status": "DONE"}, "transferbatch_status_valid"),
        ("batch", {"completed_count": 5}, "transferbatch_counts_fit"),
        ("batch", {"payout_count": 0, "completed_count": 0, "failed_count": 0}, "transferbatch_not_empty"),
        ("log", {"batch_index": None}, "transactionlog_batch_payout_has_index"),
        ("log", {"type": "DEPOSIT"}, "transactionlog_batch_payout_has_index"),
        ("log", {"batch_index": 1}, "transactionlog_unique_batch_index"),
    ],
)
def test_batch_constraints_hold_when_the_service_is_bypassed(model, change, constraint, transfer_api, funded_wallet):
    from django.db import IntegrityError, transaction

    pool, a = funded_wallet("100.00"), funded_wallet("0")
    batch_id = post_batch(transfer_api, pool, [payout(a, "1"), payout(a, "2")]).json()["data"]["batchId"]
    rows = (
        TransferBatch.objects.filter(pk=batch_id)
        if model == "batch"
        else TransactionLog.objects.filter(batch_id=batch_id, batch_index=0)
    )

    with pytest.raises(IntegrityError, match=constraint), transaction.atomic():
        rows.update(**change)
    assert TransferBatch.objects.get(pk=batch_id).status == BatchStatus.COMPLETED


def test_metrics_count_batches_and_payouts_by_outcome(transfer_api, funded_wallet):
    from prometheus_client import REGISTRY

    def sample(name, **labels) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    pool, a = funded_wallet("100.00"), funded_wallet("0")
    frozen = funded_wallet("0", is_active=False)
    before = {
        "partial": sample("wallet_transfer_batches_total", mode="independent", outcome="partially_completed"),
        "replayed": sample("wallet_transfer_batches_total", mode="independent", outcome="replayed"),
        "completed": sample("wallet_transfer_batch_payouts_total", outcome="completed", reason=""),
        "inactive": sample("wallet_transfer_batch_payouts_total", outcome="failed", reason="wallet_inactive"),
    }
    payouts = [payout(a, "1"), payout(a, "2"), payout(frozen, "3")]

    post_batch(transfer_api, pool, payouts, key="counted")
    post_batch(transfer_api, pool, payouts, key="counted")

    assert (
        sample("wallet_transfer_batches_total", mode="independent", outcome="partially_completed")
        == before["partial"] + 1
    )
    assert sample("wallet_transfer_batches_total", mode="independent", outcome="replayed") == before["replayed"] + 1
    assert sample("wallet_transfer_batch_payouts_total", outcome="completed", reason="") == before["completed"] + 2
    failed = sample("wallet_transfer_batch_payouts_total", outcome="failed", reason="wallet_inactive")
    assert failed == before["inactive"] + 1


@pytest.mark.usefixtures("migrated_groups")
def test_support_sees_a_batch_with_its_payouts_and_totals_and_cannot_change_it(transfer_api, funded_wallet):
    from django.urls import reverse

    from wallets.tests.test_admin import staff_client

    pool, a = funded_wallet("100.00"), funded_wallet("0")
    frozen = funded_wallet("0", is_active=False)
    data = post_batch(transfer_api, pool, [payout(a, "10", "admin-1"), payout(frozen, "5", "admin-2")]).json()["data"]
    support = staff_client("Support")
    url = reverse("admin:transfers_transferbatch_change", args=[data["batchId"]])

    page = support.get(url)
    listed = support.get(reverse("admin:transfers_transferbatch_changelist"), {"q": "admin-1"})
    found = support.get(reverse("admin:transfers_transferbatch_changelist"), {"q": data["batchId"]})

    assert page.status_code == 200
    html = page.content.decode()
    for shown in (
        data["payouts"][0]["reference"],
        data["payouts"][1]["reference"],
        "wallet_inactive",
        "15.00",
        "10.00",
    ):
        assert shown in html
    assert "PARTIALLY_COMPLETED" in html or "Partially completed" in html
    assert [str(b.pk) for b in found.context["cl"].result_list] == [data["batchId"]]
    assert list(listed.context["cl"].result_list) == []  # a payout's key is not the batch's
    assert support.post(url, {"status": "COMPLETED"}).status_code == 403
    assert TransferBatch.objects.get(pk=data["batchId"]).status == BatchStatus.PARTIALLY_COMPLETED
