"""Holds (docs/api.md, "Holds"): place, capture, void, extend, expire; the
available balance; exactly one end under concurrency; replays; tenancy; bad
input. Real PostgreSQL and Redis; concurrency from real threads."""

import uuid
from datetime import UTC, timedelta
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.db.models import Sum
from django.utils import timezone

from conftest import make_api_client
from events.models import Event
from reconciliation.services import ledger_discrepancies
from transfers import holds, locks
from transfers.models import Hold, HoldStatus, TransactionLog, TransactionStatus, TransactionType
from transfers.tests.concurrency import run_concurrently
from wallet_project.tests import assert_error_envelope
from wallets.models import Wallet

pytestmark = pytest.mark.django_db


def place(api, source, destination, amount="40.00", key=None, **fields):
    body = {
        "sourceWalletId": str(source.pk),
        "destinationWalletId": str(destination.pk),
        "amount": amount,
        "expiresInSeconds": 600,
        **fields,
    }
    body = {name: value for name, value in body.items() if value is not None}  # None: leave the field out
    return api.post("/api/holds", body, format="json", headers={"Idempotency-Key": key or f"h-{uuid.uuid4()}"})


def end(api, hold_id, action, key=None, **body):
    return api.post(
        f"/api/holds/{hold_id}/{action}", body, format="json", headers={"Idempotency-Key": key or f"e-{uuid.uuid4()}"}
    )


def amounts(wallet) -> tuple[str, str, str]:
    wallet.refresh_from_db()
    return f"{wallet.balance:.2f}", f"{wallet.held:.2f}", f"{wallet.available:.2f}"


def held_of_open_holds(wallet) -> Decimal:
    total = Hold.objects.filter(source_wallet=wallet, status=HoldStatus.OPEN).aggregate(s=Sum("amount"))["s"]
    return total or Decimal(0)


@pytest.fixture
def pair(funded_wallet):
    return funded_wallet("100.00"), funded_wallet("0")


def test_a_hold_reserves_and_the_wallet_shows_balance_held_and_available(treasury_api, pair):
    source, destination = pair
    response = place(treasury_api, source, destination, "40.00", metadata={"order": "A-1"})
    assert response.status_code == 201, response.json()
    data = response.json()["data"]
    assert (data["status"], data["amount"], data["metadata"]) == ("OPEN", "40.00", {"order": "A-1"})
    assert amounts(source) == ("100.00", "40.00", "60.00")
    shown = treasury_api.get(f"/api/wallets/{source.pk}").json()["data"]
    assert (shown["balance"], shown["held"], shown["available"]) == ("100.00", "40.00", "60.00")
    assert treasury_api.get(f"/api/holds/{data['id']}").json()["data"]["status"] == "OPEN"
    assert ledger_discrepancies() == []


def test_a_transfer_that_would_eat_held_money_is_refused(treasury_api, pair):
    source, destination = pair
    place(treasury_api, source, destination, "70.00")
    response = treasury_api.post(
        "/api/transfer",
        {"sourceWalletId": str(source.pk), "destinationWalletId": str(destination.pk), "amount": "30.01"},
        format="json",
        headers={"Idempotency-Key": "eat-held"},
    )
    assert response.status_code == 422 and response.json()["code"] == "insufficient_balance"
    assert amounts(source) == ("100.00", "70.00", "30.00")
    fits = treasury_api.post(
        "/api/transfer",
        {"sourceWalletId": str(source.pk), "destinationWalletId": str(destination.pk), "amount": "30.00"},
        format="json",
        headers={"Idempotency-Key": "fits"},
    )
    assert fits.status_code == 201
    assert amounts(source) == ("70.00", "70.00", "0.00")


def test_a_second_hold_past_available_fails_and_reserves_nothing(treasury_api, pair):
    source, destination = pair
    place(treasury_api, source, destination, "60.00")
    response = place(treasury_api, source, destination, "40.01", key="too-much")
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "insufficient_balance" and body["data"]["status"] == "FAILED"
    assert amounts(source) == ("100.00", "60.00", "40.00")
    replay = place(treasury_api, source, destination, "40.01", key="too-much")
    assert replay.status_code == 422 and replay.headers["Idempotent-Replayed"] == "true"


def test_capture_moves_the_amount_as_a_transfer_in_history(treasury_api, pair):
    source, destination = pair
    hold_id = place(treasury_api, source, destination, "40.00").json()["data"]["id"]
    response = end(treasury_api, hold_id, "capture")
    assert response.status_code == 200, response.json()
    data = response.json()["data"]
    assert (data["status"], data["capturedAmount"]) == ("CAPTURED", "40.00")
    assert amounts(source) == ("60.00", "0.00", "60.00")
    assert amounts(destination) == ("40.00", "0.00", "40.00")
    log = TransactionLog.objects.get(pk=data["transactionId"])
    assert (log.type, log.status, log.amount) == ("TRANSFER", TransactionStatus.COMPLETED, Decimal("40.00"))
    history = treasury_api.get(f"/api/wallets/{source.pk}/transactions").json()["data"]["results"]
    assert data["transactionId"] in [entry["id"] for entry in history]
    types = list(Event.objects.filter(client=treasury_api.user).values_list("type", flat=True))
    assert {"hold.created", "hold.captured", "transfer.completed"} <= set(types)
    assert ledger_discrepancies() == []


def test_partial_capture_releases_the_rest_and_a_second_capture_is_refused(treasury_api, pair):
    source, destination = pair
    hold_id = place(treasury_api, source, destination, "40.00").json()["data"]["id"]
    response = end(treasury_api, hold_id, "capture", key="cap-1", amount="15.50")
    assert response.status_code == 200
    assert response.json()["data"]["capturedAmount"] == "15.50"
    assert amounts(source) == ("84.50", "0.00", "84.50")
    assert amounts(destination) == ("15.50", "0.00", "15.50")
    again = end(treasury_api, hold_id, "capture", key="cap-2", amount="10.00")
    assert again.status_code == 409 and again.json()["code"] == "hold_not_open"
    assert again.json()["data"]["status"] == "CAPTURED"
    replay = end(treasury_api, hold_id, "capture", key="cap-1", amount="15.50")
    assert replay.status_code == 200 and replay.headers["Idempotent-Replayed"] == "true"
    other = end(treasury_api, hold_id, "capture", key="cap-1", amount="15.00")
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"
    assert amounts(source) == ("84.50", "0.00", "84.50")


@pytest.mark.parametrize("request_kind", ["transfer", "batch_payout"])
def test_a_client_key_cannot_take_the_key_a_capture_records_its_transfer_under(request_kind, treasury_api, pair):
    source, destination = pair
    hold_id = place(treasury_api, source, destination, "40.00").json()["data"]["id"]
    taken = f"hold:{hold_id}"
    movement = {"destinationWalletId": str(destination.pk), "amount": "10.00"}
    if request_kind == "transfer":
        body = {"sourceWalletId": str(source.pk), **movement}
        response = treasury_api.post("/api/transfer", body, format="json", headers={"Idempotency-Key": taken})
    else:
        body = {"sourceWalletId": str(source.pk), "atomic": False, "transfers": [{**movement, "idempotencyKey": taken}]}
        response = treasury_api.post(
            "/api/transfers/batch", body, format="json", headers={"Idempotency-Key": f"b-{uuid.uuid4()}"}
        )
    assert response.status_code == 400, response.json()
    refusal = response.json()
    assert (refusal["success"], refusal["code"]) == (False, "validation_error")
    assert "must not start with 'hold:'" in str(refusal["errors"])
    assert not TransactionLog.objects.filter(type=TransactionType.TRANSFER).exists()
    assert amounts(source) == ("100.00", "40.00", "60.00")

    captured = end(treasury_api, hold_id, "capture")
    assert captured.status_code == 200, captured.json()
    assert TransactionLog.objects.get(idempotency_key=taken).pk == uuid.UUID(captured.json()["data"]["transactionId"])
    assert amounts(destination) == ("40.00", "0.00", "40.00")


def test_a_capture_above_the_hold_is_refused_and_the_hold_stays_open(treasury_api, pair):
    source, destination = pair
    hold_id = place(treasury_api, source, destination, "40.00").json()["data"]["id"]
    response = end(treasury_api, hold_id, "capture", amount="40.01")
    assert response.status_code == 422 and response.json()["code"] == "capture_exceeds_hold"
    assert Hold.objects.get(pk=hold_id).status == HoldStatus.OPEN


def end_lock_name(client, hold_id, key) -> str:
    """The Redis lock a request ending `hold_id` with `key` takes (transfers/holds.py, _end)."""
    return locks.idempotency_lock_name(client.pk, locks.unit_lock_key(locks.Unit.HOLD_END, key, hold_id=hold_id))


def test_a_capture_while_its_key_is_in_flight_is_refused_and_the_hold_stays_open(treasury_api, pair):
    source, destination = pair
    hold_id = place(treasury_api, source, destination, "40.00").json()["data"]["id"]
    with locks.idempotency_lock(
        treasury_api.user.pk, locks.unit_lock_key(locks.Unit.HOLD_END, "cap-busy", hold_id=hold_id)
    ):
        response = end(treasury_api, hold_id, "capture", key="cap-busy")
    assert response.status_code == 409 and response.json()["code"] == "idempotency_key_in_use"
    assert Hold.objects.get(pk=hold_id).status == HoldStatus.OPEN
    assert end(treasury_api, hold_id, "capture", key="cap-busy").status_code == 200
    assert amounts(source) == ("60.00", "0.00", "60.00")


def test_a_capture_retried_after_its_keys_lock_expired_is_answered_from_the_hold(treasury_api, pair):
    source, destination = pair
    hold_id = place(treasury_api, source, destination, "40.00").json()["data"]["id"]
    first = end(treasury_api, hold_id, "capture", key="cap-late", amount="25.00")
    assert first.status_code == 200
    lock = end_lock_name(treasury_api.user, hold_id, "cap-late")
    assert cache.has_key(lock)  # left to expire
    cache.delete(lock)  # as after TRANSFER_LOCK_TIMEOUT: the retry takes it and reaches the engine
    retry = end(treasury_api, hold_id, "capture", key="cap-late", amount="25.00")
    assert retry.status_code == 200 and retry.headers["Idempotent-Replayed"] == "true"
    assert retry.json()["data"] == first.json()["data"]
    cache.delete(lock)
    other = end(treasury_api, hold_id, "capture", key="cap-late", amount="24.00")
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"
    assert amounts(source) == ("75.00", "0.00", "75.00")


def test_void_releases_everything_once(treasury_api, pair):
    source, destination = pair
    hold_id = place(treasury_api, source, destination, "40.00").json()["data"]["id"]
    response = end(treasury_api, hold_id, "void", key="v-1")
    assert response.status_code == 200 and response.json()["data"]["status"] == "VOIDED"
    assert amounts(source) == ("100.00", "0.00", "100.00")
    assert end(treasury_api, hold_id, "void", key="v-1").headers["Idempotent-Replayed"] == "true"
    assert end(treasury_api, hold_id, "void", key="v-2").json()["code"] == "hold_not_open"
    assert end(treasury_api, hold_id, "capture").json()["code"] == "hold_not_open"
    assert amounts(source) == ("100.00", "0.00", "100.00")


def test_extend_moves_the_expiry_later_only(treasury_api, pair):
    source, destination = pair
    data = place(treasury_api, source, destination).json()["data"]
    later = (timezone.now() + timedelta(hours=2)).isoformat()
    response = end(treasury_api, data["id"], "extend", key="x-1", expiresAt=later)
    assert response.status_code == 200, response.json()
    assert response.json()["data"]["expiresAt"] > data["expiresAt"]
    assert end(treasury_api, data["id"], "extend", key="x-1", expiresAt=later).headers["Idempotent-Replayed"] == "true"
    earlier = end(treasury_api, data["id"], "extend", key="x-2", expiresInSeconds=60)
    assert earlier.status_code == 422 and earlier.json()["code"] == "hold_expiry_not_later"
    assert Event.objects.filter(client=treasury_api.user, type="hold.extended").count() == 1


def test_expiry_releases_a_due_hold_and_announces_it(treasury_api, pair):
    source, destination = pair
    hold_id = place(treasury_api, source, destination, "40.00").json()["data"]["id"]
    Hold.objects.filter(pk=hold_id).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert holds.holds_expire() == 1
    assert Hold.objects.get(pk=hold_id).status == HoldStatus.EXPIRED
    assert amounts(source) == ("100.00", "0.00", "100.00")
    assert Event.objects.filter(client=treasury_api.user, type="hold.expired").count() == 1
    assert holds.holds_expire() == 0
    assert end(treasury_api, hold_id, "capture").json()["code"] == "hold_not_open"


def test_a_capture_after_the_expiry_time_expires_it_instead(treasury_api, pair):
    source, destination = pair
    hold_id = place(treasury_api, source, destination, "40.00").json()["data"]["id"]
    Hold.objects.filter(pk=hold_id).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = end(treasury_api, hold_id, "capture")
    assert response.status_code == 409 and response.json()["data"]["status"] == "EXPIRED"
    assert amounts(source) == ("100.00", "0.00", "100.00")
    assert amounts(destination) == ("0.00", "0.00", "0.00")


def test_a_replayed_placement_is_the_same_hold_and_another_payload_is_refused(treasury_api, pair):
    source, destination = pair
    first = place(treasury_api, source, destination, "40.00", key="same")
    again = place(treasury_api, source, destination, "40.00", key="same")
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["data"]["id"] == first.json()["data"]["id"]
    other = place(treasury_api, source, destination, "41.00", key="same")
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"
    assert amounts(source) == ("100.00", "40.00", "60.00")


def test_another_clients_hold_is_not_found(treasury_api, pair):
    source, destination = pair
    hold_id = place(treasury_api, source, destination).json()["data"]["id"]
    stranger = make_api_client("Treasury client")
    assert stranger.get(f"/api/holds/{hold_id}").json()["code"] == "hold_not_found"
    for action in ("capture", "void"):
        response = end(stranger, hold_id, action)
        assert response.status_code == 404 and response.json()["code"] == "hold_not_found"
    assert stranger.get(f"/api/holds/{uuid.uuid4()}").status_code == 404
    assert end(stranger, uuid.uuid4(), "capture").json()["code"] == "hold_not_found"
    # Another client's wallet as the source is not found, as an unknown one.
    response = place(stranger, source, destination)
    assert response.status_code == 404 and response.json()["code"] == "wallet_not_found"
    assert Hold.objects.get(pk=hold_id).status == HoldStatus.OPEN


def test_the_payee_hears_of_the_hold_without_the_payers_details(treasury_api, funded_wallet):
    payee = make_api_client("Treasury client")
    payee_api = make_api_client("Disbursement client", user=treasury_api.user)
    source, destination = funded_wallet("100.00"), funded_wallet("0", owner=payee.user)
    response = place(payee_api, source, destination, "10.00", metadata={"secret": "x"})
    assert response.status_code == 201, response.json()
    event = Event.objects.get(client=payee.user, type="hold.created")
    assert event.data["metadata"] is None and event.data["idempotencyKey"] is None
    assert event.data["amount"] == "10.00"
    hold_id = response.json()["data"]["id"]
    assert end(payee_api, hold_id, "extend", expiresInSeconds=3600).status_code == 200
    assert end(payee_api, hold_id, "void").status_code == 200
    for owner in (payee.user, treasury_api.user):
        got = set(Event.objects.filter(client=owner, data__id=hold_id).values_list("type", flat=True))
        assert got == {"hold.created", "hold.extended", "hold.voided"}, owner


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"amount": "0"}, "amount"),
        ({"amount": "1.001"}, "amount"),
        ({"expiresInSeconds": 0}, "expiresInSeconds"),
        ({"expiresInSeconds": 10**9}, "expiresInSeconds"),
        ({"expiresAt": "2001-01-01T00:00:00Z"}, "expiresAt"),
        ({"expiresAt": "2999-01-01T00:00:00Z", "expiresInSeconds": 60}, "expiresAt"),
        ({"unknown": 1}, "unknown"),
        ({"sourceWalletId": "nope"}, "sourceWalletId"),
    ],
)
def test_bad_input_is_a_400_and_stores_nothing(treasury_api, pair, change, field):
    source, destination = pair
    body = {"sourceWalletId": str(source.pk), "destinationWalletId": str(destination.pk), "amount": "5.00"}
    body.update({"expiresInSeconds": 60} if "expiresAt" not in change else {})
    body.update(change)
    response = treasury_api.post("/api/holds", body, format="json", headers={"Idempotency-Key": "bad"})
    assert response.status_code == 400, response.json()
    assert field in response.json()["errors"]
    assert not Hold.objects.exists()


def _without_offset(instant) -> str:
    return instant.replace(tzinfo=None).isoformat(timespec="seconds")


@pytest.mark.parametrize(
    "expires_at",
    [
        lambda: _without_offset(timezone.now() + timedelta(hours=2)),  # 2026-12-06T12:00:00: whose 12:00?
        lambda: (timezone.now() + timedelta(days=2)).date().isoformat(),  # 2026-12-08: a day, not an instant
        lambda: "9999-12-31T23:59:59-23:59",  # an instant in its offset, after the last one in UTC
    ],
    ids=["naive", "bare-date", "out-of-range"],
)
@pytest.mark.parametrize("action", ["place", "extend"])
def test_an_expiry_without_an_offset_is_a_400_naming_expires_at_and_changes_nothing(
    treasury_api, pair, expires_at, action
):
    source, destination = pair
    if action == "place":
        response = place(treasury_api, source, destination, expiresInSeconds=None, expiresAt=expires_at())
        assert not Hold.objects.exists()
    else:
        hold = Hold.objects.get(pk=place(treasury_api, source, destination).json()["data"]["id"])
        response = end(treasury_api, hold.pk, "extend", expiresAt=expires_at())
        assert Hold.objects.get(pk=hold.pk).expires_at == hold.expires_at
    body = assert_error_envelope(response, status=400, code="validation_error", field="expiresAt")
    assert list(body["errors"]) == ["expiresAt"]
    if "range" not in body["errors"]["expiresAt"][0]:
        assert "offset" in body["errors"]["expiresAt"][0]
    assert not Event.objects.filter(type="hold.extended").exists()


@pytest.mark.parametrize(
    "spelling",
    [
        lambda at: at.strftime("%Y%m%dT%H%M%SZ"),  # ISO 8601 basic
        lambda at: at.strftime("%G-W%V-%uT%H:%M:%SZ"),  # ISO week date
        lambda at: at.strftime("%Y-%m-%d %H:%M:%SZ"),
        lambda at: at.strftime("%Y-%m-%dT%H:%M:%S+0000"),
    ],
    ids=["basic", "week-date", "space", "offset-without-colon"],
)
def test_an_expiry_in_another_iso_8601_spelling_than_rfc_3339_is_a_400_naming_expires_at(treasury_api, pair, spelling):
    source, destination = pair
    expires_at = spelling((timezone.now() + timedelta(hours=2)).astimezone(UTC))
    response = place(treasury_api, source, destination, expiresInSeconds=None, expiresAt=expires_at)
    body = assert_error_envelope(response, status=400, code="validation_error", field="expiresAt")
    assert "RFC 3339" in body["errors"]["expiresAt"][0]
    assert not Hold.objects.exists()


def test_an_expiry_with_an_offset_other_than_utc_names_the_same_instant(treasury_api, pair):
    source, destination = pair
    lagos = timezone.now().astimezone(timezone.get_fixed_timezone(60)) + timedelta(hours=2)
    response = place(treasury_api, source, destination, expiresInSeconds=None, expiresAt=lagos.isoformat())
    assert response.status_code == 201, response.json()
    assert Hold.objects.get(pk=response.json()["data"]["id"]).expires_at == lagos


def test_an_end_without_a_key_is_a_400(treasury_api, pair):
    source, destination = pair
    hold_id = place(treasury_api, source, destination).json()["data"]["id"]
    response = treasury_api.post(f"/api/holds/{hold_id}/void", {}, format="json")
    assert response.status_code == 400 and "idempotencyKey" in response.json()["errors"]
    assert Hold.objects.get(pk=hold_id).status == HoldStatus.OPEN


def test_verify_ledger_finds_held_that_disagrees_with_open_holds(treasury_api, pair):
    source, destination = pair
    place(treasury_api, source, destination, "40.00")
    Wallet.objects.filter(pk=source.pk).update(held=Decimal("39.00"))
    found = [(d.invariant, d.subject) for d in ledger_discrepancies()]
    assert found == [("held_agreement", str(source.pk))]


@pytest.mark.django_db(transaction=True)
def test_many_threads_ending_one_hold_end_it_once(treasury_api, pair):
    source, destination = pair
    hold_id = place(treasury_api, source, destination, "40.00").json()["data"]["id"]
    client = treasury_api.user

    def capture():
        try:
            return holds.hold_capture(client=client, hold_id=hold_id, amount=None, idempotency_key=str(uuid.uuid4()))
        except Exception as exc:  # noqa: BLE001 (the refusals are counted)
            return type(exc).__name__

    def void():
        try:
            return holds.hold_void(client=client, hold_id=hold_id, idempotency_key=str(uuid.uuid4()))
        except Exception as exc:  # noqa: BLE001
            return type(exc).__name__

    def expire():
        return holds.holds_expire()

    def extend():
        try:
            expiry = holds.Expiry(in_seconds=3600)
            holds.hold_extend(client=client, hold_id=hold_id, expiry=expiry, idempotency_key=str(uuid.uuid4()))
        except Exception as exc:  # noqa: BLE001 (an extension after the end is refused)
            return type(exc).__name__
        return 0

    results = run_concurrently([capture, void, expire, extend] * 4, threads=16)
    ended = [r for r in results if isinstance(r, holds.HoldResult)]
    assert len(ended) == 1, results
    refusals = {"HoldNotOpen", "HoldExpiryNotLater", 0}
    assert all(r in refusals for r in results if not isinstance(r, holds.HoldResult)), results
    hold = Hold.objects.get(pk=hold_id)
    source.refresh_from_db()
    assert source.held == 0
    moved = Decimal("40.00") if hold.status == HoldStatus.CAPTURED else Decimal(0)
    assert source.balance == Decimal("100.00") - moved
    assert TransactionLog.objects.filter(idempotency_key=f"hold:{hold_id}").count() == (1 if moved else 0)
    assert ledger_discrepancies() == []


@pytest.mark.django_db(transaction=True)
def test_captures_racing_the_expiry_of_a_due_hold_all_find_it_expired(treasury_api, pair):
    source, destination = pair
    hold_id = place(treasury_api, source, destination, "40.00").json()["data"]["id"]
    Hold.objects.filter(pk=hold_id).update(expires_at=timezone.now() - timedelta(milliseconds=1))
    client = treasury_api.user

    def capture():
        try:
            holds.hold_capture(client=client, hold_id=hold_id, amount=None, idempotency_key=str(uuid.uuid4()))
        except Exception as exc:  # noqa: BLE001 (the refusals are counted)
            return type(exc).__name__
        return "captured"

    results = run_concurrently([capture, holds.holds_expire] * 6, threads=12)
    assert "captured" not in results
    assert Hold.objects.get(pk=hold_id).status == HoldStatus.EXPIRED
    assert Event.objects.filter(client=client, type="hold.expired").count() == 1
    assert amounts(source) == ("100.00", "0.00", "100.00")
    assert ledger_discrepancies() == []


@pytest.mark.django_db(transaction=True)
def test_a_hot_wallet_never_reserves_past_its_balance(funded_wallet, wallet_owner):
    source, destination = funded_wallet("100.00"), funded_wallet("0")
    client = make_api_client("Treasury client", user=wallet_owner).user

    def hold(i):
        return lambda: (
            holds.hold_place(
                client=client,
                source_wallet_id=source.pk,
                destination_wallet_id=destination.pk,
                amount=Decimal("0.70"),
                expiry=holds.Expiry(in_seconds=600),
                metadata={},
                idempotency_key=f"hot-{i}",
            ).hold.status
        )

    # 200 holds of 0.70 on 100.00, ten at a time: 142 fit (99.40), 58 do not.
    statuses = run_concurrently([hold(i) for i in range(200)], threads=10)
    assert statuses.count(HoldStatus.OPEN) == 142 and statuses.count(HoldStatus.FAILED) == 58
    source.refresh_from_db()
    assert source.held == Decimal("99.40") == held_of_open_holds(source)
    assert ledger_discrepancies() == []


def test_a_set_of_holds_is_captured_all_at_once(treasury_api, funded_wallet):
    source, destination = funded_wallet("100.00"), funded_wallet("0")
    ids = [place(treasury_api, source, destination, "20.00").json()["data"]["id"] for _ in range(3)]
    body = {"holds": [{"holdId": ids[0], "amount": "5.00"}, {"holdId": ids[1]}, {"holdId": ids[2]}]}
    response = treasury_api.post("/api/holds/capture", body, format="json", headers={"Idempotency-Key": "set-1"})
    assert response.status_code == 200, response.json()
    assert [h["capturedAmount"] for h in response.json()["data"]["holds"]] == ["5.00", "20.00", "20.00"]
    assert amounts(source) == ("55.00", "0.00", "55.00")
    again = treasury_api.post("/api/holds/capture", body, format="json", headers={"Idempotency-Key": "set-1"})
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert amounts(destination) == ("45.00", "0.00", "45.00")


def test_a_set_with_one_ended_hold_ends_none(treasury_api, funded_wallet):
    source, destination = funded_wallet("100.00"), funded_wallet("0")
    ids = [place(treasury_api, source, destination, "20.00").json()["data"]["id"] for _ in range(3)]
    end(treasury_api, ids[1], "void")
    body = {"holds": [{"holdId": hold_id} for hold_id in ids]}
    response = treasury_api.post("/api/holds/void", body, format="json", headers={"Idempotency-Key": "set-2"})
    assert response.status_code == 409 and response.json()["code"] == "hold_not_open"
    assert [h["id"] for h in response.json()["data"]["holds"]] == [ids[1]]
    assert amounts(source) == ("100.00", "40.00", "60.00")
    stranger = make_api_client("Treasury client")
    refused = stranger.post("/api/holds/void", body, format="json", headers={"Idempotency-Key": "set-3"})
    assert refused.status_code == 404 and len(refused.json()["data"]["holdIds"]) == 3


def test_a_set_capture_that_breaks_a_rule_moves_nothing(treasury_api, funded_wallet):
    source, destination = funded_wallet("100.00"), funded_wallet("0")
    ids = [place(treasury_api, source, destination, "20.00").json()["data"]["id"] for _ in range(2)]
    Wallet.objects.filter(pk=destination.pk).update(is_active=False)
    body = {"holds": [{"holdId": hold_id} for hold_id in ids]}
    response = treasury_api.post("/api/holds/capture", body, format="json", headers={"Idempotency-Key": "set-4"})
    assert response.status_code == 422 and response.json()["code"] == "wallet_inactive"
    assert amounts(source) == ("100.00", "40.00", "60.00")
    assert set(Hold.objects.filter(pk__in=ids).values_list("status", flat=True)) == {HoldStatus.OPEN}


# --- an end's or an extension's key is bound to its holds and its request ------------


def set_end(api, action, items, key):
    return api.post(f"/api/holds/{action}", {"holds": items}, format="json", headers={"Idempotency-Key": key})


def open_holds(api, source, destination, count, amount="10.00"):
    return [place(api, source, destination, amount).json()["data"]["id"] for _ in range(count)]


def statuses_of(hold_ids) -> list[str]:
    by_id = dict(Hold.objects.filter(pk__in=hold_ids).values_list("pk", "status"))
    return [by_id[uuid.UUID(hold_id)] for hold_id in hold_ids]


def reused(response) -> bool:
    body = response.json()
    return (response.status_code, body["success"], body["code"]) == (422, False, "idempotency_key_reused")


def test_a_capture_key_that_ended_one_hold_ends_no_other(treasury_api, pair):
    source, destination = pair
    first, second = open_holds(treasury_api, source, destination, 2)
    assert end(treasury_api, first, "capture", key="cap-k", amount="4.00").status_code == 200

    assert reused(end(treasury_api, second, "capture", key="cap-k", amount="4.00"))
    assert reused(end(treasury_api, second, "void", key="cap-k"))
    assert reused(end(treasury_api, second, "extend", key="cap-k", expiresInSeconds=3600))
    assert statuses_of([first, second]) == [HoldStatus.CAPTURED, HoldStatus.OPEN]
    assert amounts(source) == ("96.00", "10.00", "86.00")
    assert Hold.objects.get(pk=second).end_key == ""

    replay = end(treasury_api, first, "capture", key="cap-k", amount="4.00")
    assert (replay.status_code, replay.headers["Idempotent-Replayed"]) == (200, "true")
    assert reused(end(treasury_api, first, "capture", key="cap-k", amount="5.00"))
    assert end(treasury_api, second, "capture", key="cap-k2").status_code == 200
    assert amounts(source) == ("86.00", "0.00", "86.00")
    assert ledger_discrepancies() == []


def test_a_void_key_that_ended_one_hold_ends_no_other(treasury_api, pair):
    source, destination = pair
    first, second = open_holds(treasury_api, source, destination, 2)
    assert end(treasury_api, first, "void", key="void-k").status_code == 200

    assert reused(end(treasury_api, second, "void", key="void-k"))
    assert reused(end(treasury_api, second, "capture", key="void-k"))
    assert reused(end(treasury_api, first, "capture", key="void-k"))
    assert reused(set_end(treasury_api, "void", [{"holdId": second}], "void-k"))
    assert statuses_of([first, second]) == [HoldStatus.VOIDED, HoldStatus.OPEN]
    assert amounts(source) == ("100.00", "10.00", "90.00")

    replay = end(treasury_api, first, "void", key="void-k")
    assert (replay.status_code, replay.headers["Idempotent-Replayed"]) == (200, "true")


def test_a_set_capture_key_captures_no_other_set(treasury_api, pair):
    source, destination = pair
    a, b, c, d = open_holds(treasury_api, source, destination, 4)
    asked = [{"holdId": a, "amount": "3.00"}, {"holdId": b}]
    assert set_end(treasury_api, "capture", asked, "set-cap").status_code == 200

    for other in (
        [{"holdId": c}, {"holdId": d}],
        [*asked, {"holdId": c}],
        [{"holdId": a, "amount": "3.00"}],
        [{"holdId": a, "amount": "2.00"}, {"holdId": b}],
    ):
        assert reused(set_end(treasury_api, "capture", other, "set-cap")), other
    assert reused(set_end(treasury_api, "void", [{"holdId": c}], "set-cap"))
    assert reused(end(treasury_api, c, "capture", key="set-cap"))
    assert reused(end(treasury_api, a, "capture", key="set-cap", amount="3.00"))
    assert statuses_of([a, b, c, d]) == [HoldStatus.CAPTURED, HoldStatus.CAPTURED, HoldStatus.OPEN, HoldStatus.OPEN]
    assert amounts(source) == ("87.00", "20.00", "67.00")

    replay = set_end(treasury_api, "capture", list(reversed(asked)), "set-cap")
    assert (replay.status_code, replay.headers["Idempotent-Replayed"]) == (200, "true")
    assert [h["id"] for h in replay.json()["data"]["holds"]] == [b, a]
    assert ledger_discrepancies() == []


def test_a_set_void_key_voids_no_other_set(treasury_api, pair):
    source, destination = pair
    a, b, c = open_holds(treasury_api, source, destination, 3)
    assert end(treasury_api, c, "capture", key="single-cap").status_code == 200
    d = open_holds(treasury_api, source, destination, 1)[0]
    assert set_end(treasury_api, "void", [{"holdId": a}, {"holdId": b}], "set-void").status_code == 200

    assert reused(set_end(treasury_api, "void", [{"holdId": d}], "set-void"))
    assert reused(set_end(treasury_api, "capture", [{"holdId": a}, {"holdId": b}], "set-void"))
    assert reused(set_end(treasury_api, "void", [{"holdId": d}], "single-cap"))
    assert reused(set_end(treasury_api, "void", [{"holdId": a}], "single-cap"))
    assert statuses_of([a, b, c, d]) == [HoldStatus.VOIDED, HoldStatus.VOIDED, HoldStatus.CAPTURED, HoldStatus.OPEN]
    assert amounts(source) == ("90.00", "10.00", "80.00")

    replay = set_end(treasury_api, "void", [{"holdId": a}, {"holdId": b}], "set-void")
    assert (replay.status_code, replay.headers["Idempotent-Replayed"]) == (200, "true")


def test_an_extension_key_is_bound_to_its_hold_and_its_expiry(treasury_api, pair):
    source, destination = pair
    first, second = open_holds(treasury_api, source, destination, 2)
    assert end(treasury_api, first, "extend", key="ext-k", expiresInSeconds=3600).status_code == 200
    expiry = Hold.objects.get(pk=second).expires_at

    assert reused(end(treasury_api, second, "extend", key="ext-k", expiresInSeconds=3600))
    assert reused(end(treasury_api, first, "extend", key="ext-k", expiresInSeconds=7200))
    assert reused(end(treasury_api, first, "void", key="ext-k"))
    assert Hold.objects.get(pk=second).expires_at == expiry
    assert Event.objects.filter(client=treasury_api.user, type="hold.extended").count() == 1

    assert end(treasury_api, first, "extend", key="ext-k2", expiresInSeconds=7200).status_code == 200
    older = end(treasury_api, first, "extend", key="ext-k", expiresInSeconds=3600)
    assert (older.status_code, older.headers["Idempotent-Replayed"]) == (200, "true")


def test_two_clients_ending_holds_under_the_same_key_string_stay_independent(treasury_api, pair, funded_wallet):
    source, destination = pair
    mine = open_holds(treasury_api, source, destination, 2)
    stranger = make_api_client("Treasury client")
    theirs_source, theirs_destination = (
        funded_wallet("100.00", owner=stranger.user),
        funded_wallet("0", owner=stranger.user),
    )
    theirs = open_holds(stranger, theirs_source, theirs_destination, 2)

    assert end(treasury_api, mine[0], "capture", key="shared").status_code == 200
    assert end(stranger, theirs[0], "capture", key="shared").status_code == 200
    assert set_end(treasury_api, "void", [{"holdId": mine[1]}], "shared-set").status_code == 200
    assert set_end(stranger, "void", [{"holdId": theirs[1]}], "shared-set").status_code == 200
    assert statuses_of(mine + theirs) == [HoldStatus.CAPTURED, HoldStatus.VOIDED] * 2
    for api, hold_id in ((treasury_api, mine[0]), (stranger, theirs[0])):
        replay = end(api, hold_id, "capture", key="shared")
        assert (replay.status_code, replay.headers["Idempotent-Replayed"]) == (200, "true")
        assert replay.json()["data"]["id"] == hold_id


@pytest.mark.django_db(transaction=True)
def test_one_key_racing_to_end_two_holds_ends_one(treasury_api, pair):
    source, destination = pair
    hold_ids = open_holds(treasury_api, source, destination, 8)
    client = treasury_api.user

    def capture(hold_id):
        def call():
            try:
                return holds.hold_capture(client=client, hold_id=hold_id, amount=None, idempotency_key="raced")
            except Exception as exc:  # noqa: BLE001 (the refusals are counted)
                return type(exc).__name__

        return call

    results = run_concurrently([capture(hold_id) for hold_id in hold_ids], threads=8)
    ended = [r for r in results if isinstance(r, holds.HoldResult)]
    assert len(ended) == 1, results
    assert sorted(r for r in results if not isinstance(r, holds.HoldResult)) == ["IdempotencyKeyReused"] * 7
    assert statuses_of(hold_ids).count(HoldStatus.CAPTURED) == 1
    assert amounts(source) == ("90.00", "70.00", "20.00")
    assert ledger_discrepancies() == []


# --- the admin --------------------------------------------------------------------


@pytest.mark.usefixtures("migrated_groups")
def test_finance_voids_a_hold_in_the_admin_with_a_reason_and_support_may_not(treasury_api, pair):
    from django.urls import reverse

    from wallets.tests.test_admin import staff_client

    source, destination = pair
    hold_id = place(treasury_api, source, destination, "40.00").json()["data"]["id"]
    changelist = reverse("admin:transfers_hold_changelist")
    support, finance = staff_client("Support"), staff_client("Finance")
    assert support.get(changelist).status_code == 200
    refused = support.post(changelist, {"action": "void_holds", "_selected_action": [hold_id]})
    assert Hold.objects.get(pk=hold_id).status == HoldStatus.OPEN, refused.status_code
    asked = finance.post(changelist, {"action": "void_holds", "_selected_action": [hold_id]})
    assert asked.status_code == 200 and b"reason" in asked.content
    assert Hold.objects.get(pk=hold_id).status == HoldStatus.OPEN
    done = finance.post(
        changelist, {"action": "void_holds", "_selected_action": [hold_id], "apply": "Void", "reason": "fraud ticket 7"}
    )
    assert done.status_code == 302
    hold = Hold.objects.get(pk=hold_id)
    assert hold.status == HoldStatus.VOIDED and hold.end_note.endswith("fraud ticket 7")
    assert amounts(source) == ("100.00", "0.00", "100.00")
    page = support.get(reverse("admin:wallets_wallet_change", args=[source.pk]))
    assert page.status_code == 200 and b"All holds of this wallet" in page.content


# --- holds under tier limits (docs/limits.md) ------------------------------------------


def test_a_hold_past_the_sources_tier_cap_fails_and_its_capture_counts_in_the_day(treasury_api, funded_wallet):
    from transfers.tests.limit_helpers import put_in, tier_with

    source, destination = funded_wallet("5000.00"), funded_wallet("0")
    put_in(source, tier_with(max_daily_debits="1000.00"))

    refused = place(treasury_api, source, destination, "1000.01")
    assert refused.status_code == 422, refused.json()
    assert refused.json()["code"] == "limit_exceeded"
    assert amounts(source) == ("5000.00", "0.00", "5000.00")

    hold = place(treasury_api, source, destination, "800.00").json()["data"]
    captured = end(treasury_api, hold["id"], "capture", amount="800.00")
    assert captured.status_code == 200, captured.json()
    # The capture was a debit of today: a transfer past what is left is refused.
    transfer = treasury_api.post(
        "/api/transfer",
        {"sourceWalletId": str(source.pk), "destinationWalletId": str(destination.pk), "amount": "200.01"},
        format="json",
        headers={"Idempotency-Key": f"t-{uuid.uuid4()}"},
    )
    assert transfer.status_code == 422 and transfer.json()["code"] == "limit_exceeded", transfer.json()
    assert "room left: 200.00" in transfer.json()["message"]


def test_a_hold_from_a_post_no_debit_wallet_is_refused(treasury_api, pair):
    source, destination = pair
    Wallet.objects.filter(pk=source.pk).update(post_no_debit=True, restriction_reason="court order")
    refused = place(treasury_api, source, destination, "10.00")
    assert refused.status_code == 422, refused.json()
    assert refused.json()["code"] == "wallet_restricted"
    assert amounts(source) == ("100.00", "0.00", "100.00")


def test_a_hold_counts_against_the_daily_cap_when_placed_and_gives_back_what_it_did_not_move(
    treasury_api, funded_wallet
):
    from transfers.tests.limit_helpers import put_in, tier_with

    source, destination = funded_wallet("5000.00"), funded_wallet("0")
    put_in(source, tier_with(max_daily_debits="1000.00"))

    def transfer(amount):
        return treasury_api.post(
            "/api/transfer",
            {"sourceWalletId": str(source.pk), "destinationWalletId": str(destination.pk), "amount": amount},
            format="json",
            headers={"Idempotency-Key": f"t-{uuid.uuid4()}"},
        )

    first = place(treasury_api, source, destination, "800.00").json()["data"]
    # The reservation took 800.00 of today's room: a transfer of 200.01 no longer fits.
    refused = transfer("200.01")
    assert refused.status_code == 422 and "room left: 200.00" in refused.json()["message"], refused.json()
    # Its capture is not counted a second time.
    assert end(treasury_api, first["id"], "capture", amount="500.00").status_code == 200
    # The 300.00 it did not move is room again: 500.00 fits, 500.01 does not.
    assert transfer("500.01").status_code == 422
    assert transfer("500.00").status_code == 201

    second_source = funded_wallet("5000.00")
    put_in(second_source, tier_with(max_daily_debits="1000.00"))
    voided = place(treasury_api, second_source, destination, "1000.00").json()["data"]
    assert place(treasury_api, second_source, destination, "0.01").status_code == 422
    assert end(treasury_api, voided["id"], "void").status_code == 200
    assert place(treasury_api, second_source, destination, "1000.00").status_code == 201


# Sixty seconds written otherwise: DRF's IntegerField read each as 60 (int()
# after dropping a trailing ".0"). A JSON number whose value is whole, or its
# text in ASCII digits.
NOT_A_WHOLE_NUMBER = {
    "arabic_indic_digits": "\u0666\u0660",
    "fullwidth_digits": "\uff16\uff10",
    "trailing_point_zero_text": "60.0",
    "fraction": Decimal("60.5"),
    "leading_space": " 60",
    "plus_sign": "+60",
    "underscore": "6_0",
    "boolean": True,
}


@pytest.mark.parametrize("seconds", list(NOT_A_WHOLE_NUMBER.values()), ids=list(NOT_A_WHOLE_NUMBER))
def test_expires_in_seconds_written_as_anything_but_a_whole_number_places_no_hold(treasury_api, pair, seconds):
    source, destination = pair
    response = place(treasury_api, source, destination, expiresInSeconds=seconds)
    assert_error_envelope(response, status=400, code="validation_error", field="expiresInSeconds")
    assert not Hold.objects.exists()
    assert amounts(source) == ("100.00", "0.00", "100.00")


@pytest.mark.parametrize(
    "seconds", [60, "60", Decimal("60.0")], ids=["integer", "ascii_digits_text", "whole_number_with_a_point"]
)
def test_expires_in_seconds_as_an_integer_or_its_ascii_text_places_the_hold(treasury_api, pair, seconds):
    """60.0 is a whole number as JSON Schema's "integer" (the schema's type
    for the field) reads one: schemathesis sends it as valid."""
    source, destination = pair
    response = place(treasury_api, source, destination, expiresInSeconds=seconds)
    assert response.status_code == 201
    hold = Hold.objects.get()
    assert abs((hold.expires_at - hold.created_at) - timedelta(seconds=60)) < timedelta(seconds=5)


@pytest.mark.parametrize(
    "expires_at",
    [
        "\u0662\u0660\u0662\u0666-\u0661\u0662-\u0660\u0661T00:00:00Z",  # Arabic-Indic digits
        "\uff12\uff10\uff12\uff16-12-01T00:00:00Z",  # fullwidth digits
    ],
    ids=["arabic_indic_digits", "fullwidth_digits"],
)
def test_an_expiry_in_other_scripts_digits_is_not_an_instant(treasury_api, pair, expires_at):
    """Read as 2026-12-01 by parse_datetime's `\\d` (so "in the past"), it is no instant at all."""
    source, destination = pair
    response = place(treasury_api, source, destination, expiresInSeconds=None, expiresAt=expires_at)
    body = assert_error_envelope(response, status=400, code="validation_error", field="expiresAt")
    assert body["errors"]["expiresAt"] != ["Must be in the future."]
    assert not Hold.objects.exists()
