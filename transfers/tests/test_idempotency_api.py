"""Each row of the contract's idempotency table, through the API."""

import copy
import uuid
from decimal import Decimal

import pytest
from django.core.cache import cache

from conftest import make_api_client
from transfers import locks, services
from transfers.models import TransactionLog, TransactionStatus, TransactionType
from wallets.tests.factories import WalletFactory

# The contract holds straight to PostgreSQL and through PgBouncer alike.
pytestmark = [pytest.mark.django_db, pytest.mark.through_pgbouncer]


def transfer(api, source, destination, amount="10.00", key="key-1", **extra):
    body = {"sourceWalletId": str(source.pk), "destinationWalletId": str(destination.pk), "amount": amount, **extra}
    return api.post("/api/transfer", body, format="json", headers={"Idempotency-Key": key} if key else {})


def balances(*wallets):
    return [type(w).objects.get(pk=w.pk).balance for w in wallets]


def test_first_request_moves_money_and_answers_201(treasury_api, funded_wallet):
    source, destination = funded_wallet("100.00"), funded_wallet("0")

    response = transfer(treasury_api, source, destination, "10.00")

    assert response.status_code == 201
    body = response.json()
    assert body["success"] is True
    assert body["data"]["status"] == "COMPLETED"
    assert body["data"]["message"] == "Transfer completed successfully"
    assert body["data"]["reference"].startswith("TXN-")
    assert "Idempotent-Replayed" not in response.headers
    assert balances(source, destination) == [Decimal("90.00"), Decimal("10.00")]


def test_same_key_and_payload_replays_the_first_result(treasury_api, funded_wallet):
    source, destination = funded_wallet("100.00"), funded_wallet("0")
    first = transfer(treasury_api, source, destination, "10.00").json()["data"]

    again = transfer(treasury_api, source, destination, "10.00")

    assert again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    data = again.json()["data"]
    assert (data["transactionId"], data["reference"]) == (first["transactionId"], first["reference"])
    assert data["message"] == "Transaction already processed"
    assert balances(source, destination) == [Decimal("90.00"), Decimal("10.00")]


def test_the_same_amount_written_differently_is_the_same_payload(treasury_api, funded_wallet):
    source, destination = funded_wallet("100.00"), funded_wallet("0")
    transfer(treasury_api, source, destination, "10")

    again = transfer(treasury_api, source, destination, Decimal("10.00"))

    assert again.status_code == 200
    assert balances(source) == [Decimal("90.00")]


@pytest.mark.parametrize(
    ("first", "retry"), [("1.0", "1"), ("1", "1.0"), ("10e-1", "1"), ("1.50", "1.5"), ("2.0e1", "20")]
)
def test_a_metadata_number_written_differently_is_the_same_payload(treasury_api, funded_wallet, first, retry):
    # A retry layer that parses and writes the body again (JavaScript writes
    # 1.0 as 1) must get its replay, not idempotency_key_reused.
    source, destination = funded_wallet("100.00"), funded_wallet("0")

    def send(number: str):
        body = (
            f'{{"sourceWalletId": "{source.pk}", "destinationWalletId": "{destination.pk}", '
            f'"amount": "10.00", "metadata": {{"r": {number}}}}}'
        )
        return treasury_api.post(
            "/api/transfer", body, content_type="application/json", headers={"Idempotency-Key": "meta-number"}
        )

    assert send(first).status_code == 201
    again = send(retry)

    assert (again.status_code, again.headers.get("Idempotent-Replayed")) == (200, "true")
    assert balances(source) == [Decimal("90.00")]


@pytest.mark.parametrize(
    "change",
    [{"amount": "11.00"}, {"metadata": {"note": "other"}}, {"swap": True}],
    ids=["other-amount", "other-metadata", "other-direction"],
)
def test_duplicate_key_with_other_payload_is_rejected(treasury_api, funded_wallet, change):
    source, destination = funded_wallet("100.00"), funded_wallet("100.00")
    transfer(treasury_api, source, destination, "10.00")

    if change.get("swap"):
        response = transfer(treasury_api, destination, source, "10.00")
    else:
        response = transfer(
            treasury_api,
            source,
            destination,
            change.get("amount", "10.00"),
            **{k: v for k, v in change.items() if k != "amount"},
        )

    assert response.status_code == 422
    assert response.json()["code"] == "idempotency_key_reused"
    assert balances(source, destination) == [Decimal("90.00"), Decimal("110.00")]
    assert TransactionLog.objects.filter(type=TransactionType.TRANSFER).count() == 1


def test_a_key_used_for_a_transfer_cannot_be_reused_for_a_deposit(treasury_api, funded_wallet):
    source, destination = funded_wallet("100.00"), funded_wallet("0")
    transfer(treasury_api, source, destination, "10.00", key="shared")

    response = treasury_api.post(
        f"/api/wallets/{destination.pk}/deposit",
        {"amount": "10.00"},
        format="json",
        headers={"Idempotency-Key": "shared"},
    )

    assert response.status_code == 422
    assert response.json()["code"] == "idempotency_key_reused"
    assert balances(destination) == [Decimal("10.00")]


def test_same_key_while_the_first_is_processing_is_409_with_retry_after(treasury_api, funded_wallet):
    source, destination = funded_wallet("100.00"), funded_wallet("0")
    # The first request holds the real Redis lock for (client, key) right now.
    with locks.idempotency_lock(treasury_api.user.pk, "busy-key"):
        response = transfer(treasury_api, source, destination, "10.00", key="busy-key")

    assert response.status_code == 409
    assert response.json()["code"] == "idempotency_key_in_use"
    assert int(response.headers["Retry-After"]) >= 1
    assert not TransactionLog.objects.filter(idempotency_key="busy-key").exists()
    assert balances(source) == [Decimal("100.00")]
    # Once the first is done, the key works.
    assert transfer(treasury_api, source, destination, "10.00", key="busy-key").status_code == 201


def test_a_retry_finishes_a_log_a_crash_left_pending_and_answers_as_first(treasury_api, funded_wallet, monkeypatch):
    source, destination = funded_wallet("100.00"), funded_wallet("0")

    def crash(**kwargs):
        raise ConnectionError("worker died after the PENDING log was committed")

    with monkeypatch.context() as patch:
        patch.setattr(services, "transaction_settle", crash)
        crashed = transfer(treasury_api, source, destination, "10.00", key="crashed")
    assert crashed.status_code == 500
    pending = TransactionLog.objects.get(idempotency_key="crashed")
    assert pending.status == TransactionStatus.PENDING
    assert balances(source) == [Decimal("100.00")]  # a PENDING log has moved no money
    # The retry below repeats the request byte for byte: its digest matches,
    # and a PENDING log is still settled, not replayed.
    assert pending.body_digest

    retry = transfer(treasury_api, source, destination, "10.00", key="crashed")

    assert retry.status_code == 201
    assert retry.json()["data"]["transactionId"] == str(pending.pk)
    assert retry.json()["data"]["message"] == "Transfer completed successfully"
    assert balances(source, destination) == [Decimal("90.00"), Decimal("10.00")]


def test_a_finished_transfer_leaves_its_lock_to_expire_and_replays_still_answer(treasury_api, funded_wallet, settings):
    source, destination = funded_wallet("100.00"), funded_wallet("0")
    lock_key = cache.make_key(locks.idempotency_lock_name(treasury_api.user.pk, "done"))
    redis = cache.client.get_client()

    assert transfer(treasury_api, source, destination, "10.00", key="done").status_code == 201

    # Not released (a round trip saved); it expires within the lock timeout.
    assert 0 < redis.pttl(lock_key) <= settings.TRANSFER_LOCK_TIMEOUT * 1000
    # The key is answered from its finished log before the lock is looked at.
    replay = transfer(treasury_api, source, destination, "10.00", key="done")
    assert replay.status_code == 200
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert balances(source, destination) == [Decimal("90.00"), Decimal("10.00")]


def test_the_lock_token_is_random_and_never_asks_uuidd(treasury_api, funded_wallet, monkeypatch):
    # redis-py's default token, uuid1, first asks the uuidd daemon over a socket.
    def uuid1(*args, **kwargs):
        raise AssertionError("uuid1 called")

    monkeypatch.setattr(uuid, "uuid1", uuid1)
    source, destination = funded_wallet("100.00"), funded_wallet("0")
    lock_key = cache.make_key(locks.idempotency_lock_name(treasury_api.user.pk, "token"))

    assert transfer(treasury_api, source, destination, "10.00", key="token").status_code == 201

    token = cache.client.get_client().get(lock_key)
    assert uuid.UUID(token.decode()).version == 4


def test_a_failed_request_releases_its_lock_at_once(treasury_api, funded_wallet):
    source = funded_wallet("100.00")
    lock_key = cache.make_key(locks.idempotency_lock_name(treasury_api.user.pk, "ghost"))

    assert transfer(treasury_api, source, WalletFactory.build(), "10.00", key="ghost").status_code == 404

    assert cache.client.get_client().exists(lock_key) == 0


def test_malformed_input_stores_nothing_and_leaves_the_key_free(treasury_api, funded_wallet):
    source, destination = funded_wallet("100.00"), funded_wallet("0")

    response = transfer(treasury_api, source, source, "10.00", key="free")

    assert response.status_code == 400
    assert response.json()["code"] == "validation_error"
    assert "destinationWalletId" in response.json()["errors"]
    assert not TransactionLog.objects.filter(idempotency_key="free").exists()
    assert transfer(treasury_api, source, destination, "10.00", key="free").status_code == 201


def test_unknown_wallet_is_404_stores_nothing_and_leaves_the_key_free(treasury_api, funded_wallet):
    source, destination = funded_wallet("100.00"), funded_wallet("0")
    ghost = WalletFactory.build()

    response = transfer(treasury_api, source, ghost, "10.00", key="free")

    assert response.status_code == 404
    assert response.json()["code"] == "wallet_not_found"
    assert not TransactionLog.objects.filter(idempotency_key="free").exists()
    assert transfer(treasury_api, source, destination, "10.00", key="free").status_code == 201


def test_insufficient_balance_stores_a_failed_log_and_replays_the_same_failure(treasury_api, funded_wallet):
    source, destination = funded_wallet("5.00"), funded_wallet("0")

    first = transfer(treasury_api, source, destination, "10.00")
    again = transfer(treasury_api, source, destination, "10.00")

    assert first.status_code == again.status_code == 422
    assert first.json()["code"] == again.json()["code"] == "insufficient_balance"
    assert again.headers["Idempotent-Replayed"] == "true"
    assert first.json()["data"]["transactionId"] == again.json()["data"]["transactionId"]
    log = TransactionLog.objects.get(idempotency_key="key-1")
    assert (log.status, log.error_code) == (TransactionStatus.FAILED, "insufficient_balance")
    assert log.error_message
    assert balances(source, destination) == [Decimal("5.00"), Decimal("0.00")]


@pytest.mark.parametrize("frozen", ["source", "destination"])
def test_an_inactive_wallet_fails_the_transfer(treasury_api, funded_wallet, frozen):
    source, destination = funded_wallet("100.00"), funded_wallet("0")
    (source if frozen == "source" else destination).__class__.objects.filter(
        pk=(source if frozen == "source" else destination).pk
    ).update(is_active=False)

    response = transfer(treasury_api, source, destination, "10.00")

    assert response.status_code == 422
    assert response.json()["code"] == "wallet_inactive"
    assert TransactionLog.objects.get(idempotency_key="key-1").status == TransactionStatus.FAILED
    assert balances(source, destination) == [Decimal("100.00"), Decimal("0.00")]


def test_wallets_of_different_currencies_fail_with_currency_mismatch(treasury_api, funded_wallet):
    source, destination = funded_wallet("100.00"), funded_wallet("0", currency="USD")

    response = transfer(treasury_api, source, destination, "10.00")

    assert response.status_code == 422
    assert response.json()["code"] == "currency_mismatch"
    assert balances(source, destination) == [Decimal("100.00"), Decimal("0.00")]


def test_keys_are_scoped_to_the_calling_client(treasury_api, funded_wallet):
    source, destination = funded_wallet("100.00"), funded_wallet("0")
    other_api = make_api_client("Transfer client")
    their_source, their_destination = (funded_wallet(amount, owner=other_api.user) for amount in ("100.00", "0"))

    mine = transfer(treasury_api, source, destination, "10.00", key="same")
    theirs = transfer(other_api, their_source, their_destination, "10.00", key="same")

    assert mine.status_code == theirs.status_code == 201
    assert mine.json()["data"]["transactionId"] != theirs.json()["data"]["transactionId"]
    assert balances(source, their_source) == [Decimal("90.00"), Decimal("90.00")]
    # And neither can read the other's key.
    assert treasury_api.get("/api/transfer/same").json()["data"]["id"] == mine.json()["data"]["transactionId"]
    assert other_api.get("/api/transfer/same").json()["data"]["id"] == theirs.json()["data"]["transactionId"]


def test_key_in_header_and_body_must_agree(treasury_api, funded_wallet):
    source, destination = funded_wallet("100.00"), funded_wallet("0")

    agree = transfer(treasury_api, source, destination, "1.00", key="k", idempotencyKey="k")
    differ = transfer(treasury_api, source, destination, "1.00", key="k2", idempotencyKey="other")
    body_only = transfer(treasury_api, source, destination, "1.00", key=None, idempotencyKey="k3")

    assert agree.status_code == 201
    assert differ.status_code == 400
    assert "idempotencyKey" in differ.json()["errors"]
    assert body_only.status_code == 201
    assert balances(source) == [Decimal("98.00")]


def test_deposit_and_withdrawal_move_money_through_the_settlement_wallet(treasury_api, funded_wallet):
    wallet = funded_wallet("0")

    deposit = treasury_api.post(
        f"/api/wallets/{wallet.pk}/deposit", {"amount": "50.00", "idempotencyKey": "d"}, format="json"
    )
    withdrawal = treasury_api.post(
        f"/api/wallets/{wallet.pk}/withdraw", {"amount": "20.00", "idempotencyKey": "w"}, format="json"
    )
    overdraw = treasury_api.post(
        f"/api/wallets/{wallet.pk}/withdraw", {"amount": "30.01", "idempotencyKey": "w2"}, format="json"
    )

    assert (deposit.status_code, withdrawal.status_code, overdraw.status_code) == (201, 201, 422)
    assert overdraw.json()["code"] == "insufficient_balance"
    assert balances(wallet) == [Decimal("30.00")]
    logs = {log.idempotency_key: log for log in TransactionLog.objects.filter(client=treasury_api.user)}
    assert logs["d"].type == TransactionType.DEPOSIT and logs["d"].source_wallet.is_settlement
    assert logs["w"].type == TransactionType.WITHDRAWAL and logs["w"].destination_wallet.is_settlement


def test_log_views_by_key_and_by_reference(treasury_api, funded_wallet):
    source, destination = funded_wallet("100.00"), funded_wallet("0")
    data = transfer(treasury_api, source, destination, "10.00", key="look/me up", metadata={"loan": "L-1"}).json()[
        "data"
    ]

    by_key = treasury_api.get("/api/transfer/look/me up")
    by_reference = treasury_api.get(f"/api/transfer/reference/{data['reference']}")

    assert by_key.status_code == by_reference.status_code == 200
    assert by_key.json() == by_reference.json()
    log = by_key.json()["data"]
    assert log["idempotencyKey"] == "look/me up"
    assert (log["amount"], log["status"], log["metadata"]) == ("10.00", "COMPLETED", {"loan": "L-1"})
    assert treasury_api.get("/api/transfer/unknown").status_code == 404


# --- the lock taken with the charge (transfers/locks.py, taken_with_charge) ----------


def test_a_request_over_its_rate_limit_takes_no_lock(treasury_api, funded_wallet, settings):
    rest_framework = copy.deepcopy(settings.REST_FRAMEWORK)
    rest_framework["DEFAULT_THROTTLE_RATES"]["transfers"] = "1/min"
    settings.REST_FRAMEWORK = rest_framework
    source, destination = funded_wallet("100.00"), funded_wallet("0")
    assert transfer(treasury_api, source, destination, key="first").status_code == 201

    assert transfer(treasury_api, source, destination, key="refused").status_code == 429

    lock_key = cache.make_key(locks.idempotency_lock_name(treasury_api.user.pk, "refused"))
    assert not cache.client.get_client().exists(lock_key)


def test_a_lock_the_charge_took_and_the_service_did_not_is_released(treasury_api, funded_wallet, monkeypatch):
    # A PENDING log under the key (a crash left it): the charge takes the
    # key's lock, as for any first-time work; the service refuses a request
    # for another movement before it would take the lock over.
    source, destination = funded_wallet("100.00"), funded_wallet("0")
    with monkeypatch.context() as patch:
        patch.setattr(services, "transaction_settle", lambda **kwargs: 1 / 0)
        assert transfer(treasury_api, source, destination, "10.00", key="pending").status_code == 500

    other = transfer(treasury_api, source, destination, "20.00", key="pending")

    assert other.status_code == 422, other.json()
    assert other.json()["code"] == "idempotency_key_reused"
    lock_key = cache.make_key(locks.idempotency_lock_name(treasury_api.user.pk, "pending"))
    assert not cache.client.get_client().exists(lock_key)
    # Free at once: the first request's retry settles it (no 409).
    assert transfer(treasury_api, source, destination, "10.00", key="pending").status_code == 201


def test_releasing_a_lock_taken_with_the_charge_deletes_only_our_own():
    # Compare-and-delete, as redis-py's release: had ours expired and another
    # request taken the key since, its lock stays.
    redis = cache.client.get_client()
    lock = locks.charge_lock(1, "expired-meanwhile")
    redis.set(lock.name, "another request's token", px=10_000)

    with locks.taken_with_charge(lock):
        pass

    assert redis.get(lock.name) == b"another request's token"
    redis.delete(lock.name)


def test_each_units_lock_is_named_as_before_the_names_had_one_home():
    # A deploy runs old and new processes side by side: a duplicate must meet
    # the lock of its first request whichever process took it, so the names
    # stay what the services' prefixes made them (transfers.locks.unit_lock_key).
    hold_id = uuid.UUID("12345678-1234-5678-1234-567812345678")
    assert [
        locks.unit_lock_key(locks.Unit.MOVEMENT, "k"),
        locks.unit_lock_key(locks.Unit.BATCH, "k"),
        locks.unit_lock_key(locks.Unit.HOLD, "k"),
        locks.unit_lock_key(locks.Unit.HOLD_END, "k"),
        locks.unit_lock_key(locks.Unit.HOLD_END, "k", hold_id=hold_id),
    ] == ["k", "batch\nk", "hold\nk", "hold-end\nk", f"hold-end\n{hold_id}\nk"]
