"""Tenancy (docs/api.md): a client's key never moves or reveals another
client's money. Another client's wallet answers exactly as an unknown one.

The matrix: six callers against one wallet that the owner opened, each action
answered with the status the contract gives, and nothing changed wherever the
answer is not a 2xx.
"""

import uuid
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command

from conftest import make_api_client
from events.models import Event
from transfers import services
from transfers.models import Hold, TransactionLog, TransactionStatus
from transfers.tests import ledger_state
from transfers.tests.concurrency import post_transfer, post_withdrawal, run_concurrently, token_of
from wallet_project.tests import assert_error_envelope
from wallets.exceptions import WalletNotFound
from wallets.models import Wallet

pytestmark = pytest.mark.django_db

# What each caller may do with the owner's wallet. "listed": the wallet is in
# GET /api/wallets?userId=; "hidden": the list answers 200 without it.
MATRIX = {
    "owner": {
        "read": 200, "list": "listed", "history": 200, "deposit": 201, "withdraw": 201,
        "transfer_out": 201, "transfer_in": 201, "lookup_by_key": 200, "lookup_by_reference": 200,
        "hold_out": 201, "hold_in": 201, "hold_read": 200, "hold_void": 200,
    },
    "other_client": {
        "read": 404, "list": "hidden", "history": 404, "deposit": 404, "withdraw": 404,
        "transfer_out": 404, "transfer_in": 404, "lookup_by_key": 404, "lookup_by_reference": 404,
        "hold_out": 404, "hold_in": 404, "hold_read": 404, "hold_void": 404,
    },
    "payer": {  # another client, with the permission to pay into other clients' wallets
        "read": 404, "list": "hidden", "history": 404, "deposit": 403, "withdraw": 403,
        "transfer_out": 404, "transfer_in": 201, "lookup_by_key": 404, "lookup_by_reference": 404,
        "hold_out": 404, "hold_in": 201, "hold_read": 404, "hold_void": 404,
    },
    "auditor": {
        "read": 200, "list": "listed", "history": 200, "deposit": 403, "withdraw": 403,
        "transfer_out": 403, "transfer_in": 403, "lookup_by_key": 404, "lookup_by_reference": 200,
        "hold_out": 403, "hold_in": 403, "hold_read": 200, "hold_void": 403,
    },
    "transfer_only": {  # another client that may only transfer
        "read": 404, "list": "hidden", "history": 404, "deposit": 403, "withdraw": 403,
        "transfer_out": 404, "transfer_in": 404, "lookup_by_key": 404, "lookup_by_reference": 404,
        "hold_out": 404, "hold_in": 404, "hold_read": 404, "hold_void": 404,
    },
    "no_group": {
        "read": 403, "list": 403, "history": 403, "deposit": 403, "withdraw": 403,
        "transfer_out": 403, "transfer_in": 403, "lookup_by_key": 404, "lookup_by_reference": 404,
        "hold_out": 403, "hold_in": 403, "hold_read": 404, "hold_void": 403,
    },
}  # fmt: skip
GROUPS = {
    "other_client": ["Treasury client"],
    "payer": ["Disbursement client"],
    "auditor": ["Auditor"],
    "transfer_only": ["Transfer client"],
    "no_group": [],
}
CELLS = [(caller, action) for caller, row in MATRIX.items() for action in row]


@pytest.fixture
def scene(treasury_api, funded_wallet):
    """The owner's wallet (100.00, with one transfer out of it under the key
    "owner-key"), the owner's second wallet, and a funded wallet of every
    caller's own to pay in from (made in process: some callers may not deposit)."""
    wallet, spare = funded_wallet("100.00"), funded_wallet("0")
    paid = treasury_api.post(
        "/api/transfer",
        {"sourceWalletId": str(wallet.pk), "destinationWalletId": str(spare.pk), "amount": "1.00"},
        format="json",
        headers={"Idempotency-Key": "owner-key"},
    )
    assert paid.status_code == 201, paid.content
    held = treasury_api.post(
        "/api/holds",
        {
            "sourceWalletId": str(wallet.pk),
            "destinationWalletId": str(spare.pk),
            "amount": "1.00",
            "expiresInSeconds": 600,
        },
        format="json",
        headers={"Idempotency-Key": "owner-hold"},
    )
    assert held.status_code == 201, held.content
    callers = {"owner": treasury_api}
    own_wallets = {"owner": funded_wallet("50.00")}
    for name, groups in GROUPS.items():
        callers[name] = make_api_client(*groups)
        own_wallets[name] = funded_wallet("50.00", owner=callers[name].user)
    wallet.refresh_from_db()
    return wallet, spare, paid.json()["data"]["reference"], callers, own_wallets


def act(action: str, api, wallet: Wallet, spare: Wallet, own: Wallet, reference: str):
    """One action of the matrix; returns the response."""
    key = {"Idempotency-Key": f"{action}-{uuid.uuid4()}"}
    money = {"amount": "1.00"}
    if action == "read":
        return api.get(f"/api/wallets/{wallet.pk}")
    if action == "list":
        return api.get("/api/wallets", {"userId": str(wallet.user_id)})
    if action == "history":
        return api.get(f"/api/wallets/{wallet.pk}/transactions")
    if action in ("deposit", "withdraw"):
        return api.post(f"/api/wallets/{wallet.pk}/{action}", money, format="json", headers=key)
    if action == "transfer_out":
        # Out of the owner's wallet into the caller's own (the owner: its second wallet).
        destination = spare if own.owner_id == wallet.owner_id else own
        body = {"sourceWalletId": str(wallet.pk), "destinationWalletId": str(destination.pk), **money}
        return api.post("/api/transfer", body, format="json", headers=key)
    if action == "transfer_in":
        body = {"sourceWalletId": str(own.pk), "destinationWalletId": str(wallet.pk), **money}
        return api.post("/api/transfer", body, format="json", headers=key)
    if action in ("hold_out", "hold_in"):
        # A hold on the owner's wallet toward the caller's own, or from the caller's own into it.
        destination = spare if own.owner_id == wallet.owner_id else own
        source, destination = (wallet, destination) if action == "hold_out" else (own, wallet)
        body = {"sourceWalletId": str(source.pk), "destinationWalletId": str(destination.pk), "expiresInSeconds": 60}
        return api.post("/api/holds", {**body, **money}, format="json", headers=key)
    if action in ("hold_read", "hold_void"):
        hold = Hold.objects.get(idempotency_key="owner-hold")
        if action == "hold_read":
            return api.get(f"/api/holds/{hold.pk}")
        return api.post(f"/api/holds/{hold.pk}/void", {}, format="json", headers=key)
    if action == "lookup_by_key":
        return api.get("/api/transfer/owner-key")
    if action == "lookup_by_reference":
        return api.get(f"/api/transfer/reference/{reference}")
    raise AssertionError(action)


@pytest.mark.parametrize(("caller", "action"), CELLS, ids=[f"{c}-{a}" for c, a in CELLS])
def test_each_caller_gets_what_tenancy_allows_and_nothing_else_changes(scene, caller, action):
    wallet, spare, reference, callers, own_wallets = scene
    expected = MATRIX[caller][action]
    before = ledger_state()

    response = act(action, callers[caller], wallet, spare, own_wallets[caller], reference)

    if expected in ("listed", "hidden"):
        assert response.status_code == 200, response.content
        listed = str(wallet.pk) in {w["id"] for w in response.json()["data"]}
        assert listed == (expected == "listed")
    else:
        assert response.status_code == expected, response.content
    if response.status_code == 404:
        # Exactly as an unknown one: the same code, nothing about the wallet.
        code = "transaction_not_found" if action.startswith("lookup") else "wallet_not_found"
        code = "hold_not_found" if action in ("hold_read", "hold_void") else code
        body = assert_error_envelope(response, status=404, code=code)
        assert str(wallet.pk) not in response.content.decode() and "balance" not in body
    if response.status_code >= 300:
        assert ledger_state() == before


def test_another_clients_wallet_answers_exactly_as_an_unknown_one(scene):
    wallet, _, _, callers, own_wallets = scene
    other, own = callers["other_client"], own_wallets["other_client"]
    unknown = uuid.uuid4()

    for path in ("/api/wallets/{}", "/api/wallets/{}/transactions"):
        theirs, nobodys = other.get(path.format(wallet.pk)), other.get(path.format(unknown))
        assert (theirs.status_code, theirs.json()) == (nobodys.status_code, nobodys.json())
    for target in (wallet.pk, unknown):
        body = {"sourceWalletId": str(target), "destinationWalletId": str(own.pk), "amount": "1.00"}
        answer = other.post("/api/transfer", body, format="json", headers={"Idempotency-Key": f"k-{target}"})
        assert answer.json() == {"success": False, "message": "Source wallet not found.", "code": "wallet_not_found"}
    # A refused key stays free: nothing was stored under it.
    assert not TransactionLog.objects.filter(client=other.user).exclude(idempotency_key__startswith="fund-").exists()


def test_the_owner_sees_a_credit_from_another_client_without_the_payers_key_or_metadata(scene):
    wallet, _, _, callers, own_wallets = scene
    payer = callers["payer"]
    body = {
        "sourceWalletId": str(own_wallets["payer"].pk),
        "destinationWalletId": str(wallet.pk),
        "amount": "7.00",
        "metadata": {"loanId": "L-1", "borrower": "Ada"},
    }
    paid = payer.post("/api/transfer", body, format="json", headers={"Idempotency-Key": "loan-L-1"})
    assert paid.status_code == 201

    history = callers["owner"].get(f"/api/wallets/{wallet.pk}/transactions").json()["data"]["results"]
    (credit,) = [log for log in history if log["id"] == paid.json()["data"]["transactionId"]]
    assert (credit["amount"], credit["idempotencyKey"], credit["metadata"]) == ("7.00", None, None)
    by_reference = callers["owner"].get(f"/api/transfer/reference/{credit['reference']}").json()["data"]
    assert (by_reference["idempotencyKey"], by_reference["metadata"]) == (None, None)
    # The payer still sees its own request in full, and cannot read the wallet.
    mine = payer.get("/api/transfer/loan-L-1").json()["data"]
    assert (mine["idempotencyKey"], mine["metadata"]) == ("loan-L-1", {"loanId": "L-1", "borrower": "Ada"})
    assert payer.get(f"/api/wallets/{wallet.pk}").status_code == 404


def test_the_owner_sees_a_failed_payment_into_its_wallet_without_the_payers_reason(scene):
    """Why a payment failed is the payer's business: "insufficient_balance"
    would tell the payee about the payer's balance."""
    wallet, _, _, callers, own_wallets = scene
    payer = callers["payer"]
    body = {
        "sourceWalletId": str(own_wallets["payer"].pk),
        "destinationWalletId": str(wallet.pk),
        "amount": "999999.00",
    }
    failed = payer.post("/api/transfer", body, format="json", headers={"Idempotency-Key": "too-much"})
    assert failed.status_code == 422 and failed.json()["code"] == "insufficient_balance"
    log = TransactionLog.objects.get(client=payer.user, idempotency_key="too-much")

    history = callers["owner"].get(f"/api/wallets/{wallet.pk}/transactions").json()["data"]["results"]
    (seen,) = [row for row in history if row["id"] == str(log.pk)]
    by_reference = callers["owner"].get(f"/api/transfer/reference/{log.reference}").json()["data"]
    (event,) = Event.objects.filter(client=callers["owner"].user, data__id=str(log.pk))
    for shown in (seen, by_reference, event.data):
        assert (shown["status"], shown["errorCode"], shown["errorMessage"]) == ("FAILED", None, None)
    mine = payer.get("/api/transfer/too-much").json()["data"]
    assert (mine["errorCode"], mine["errorMessage"]) == ("insufficient_balance", log.error_message)


def test_two_clients_using_the_same_user_id_each_open_their_own_wallet(treasury_api):
    other = make_api_client("Treasury client")
    user_id = str(uuid.uuid4())

    mine = treasury_api.post("/api/wallets", {"userId": user_id, "currency": "NGN"}, format="json")
    theirs = other.post("/api/wallets", {"userId": user_id, "currency": "NGN"}, format="json")
    again = other.post("/api/wallets", {"userId": user_id, "currency": "NGN"}, format="json")

    assert (mine.status_code, theirs.status_code) == (201, 201)
    assert mine.json()["data"]["id"] != theirs.json()["data"]["id"]
    assert_error_envelope(again, status=409, code="wallet_exists")
    for api, opened in ((treasury_api, mine), (other, theirs)):
        listed = api.get("/api/wallets", {"userId": user_id}).json()["data"]
        assert [w["id"] for w in listed] == [opened.json()["data"]["id"]]
    assert Wallet.objects.get(pk=mine.json()["data"]["id"]).owner == treasury_api.user


def test_the_service_refuses_another_clients_wallet_where_it_records_the_transaction(funded_wallet):
    """The PENDING insert's own WHERE clause, without the API in front."""
    wallet = funded_wallet("100.00")
    intruder = make_api_client("Treasury client").user
    theirs = funded_wallet("0", owner=intruder)
    before = ledger_state()

    with pytest.raises(WalletNotFound):
        services.transfer_create(
            client=intruder,
            source_wallet_id=wallet.pk,
            destination_wallet_id=theirs.pk,
            amount=Decimal("5.00"),
            idempotency_key="steal",
            metadata={},
        )
    with pytest.raises(WalletNotFound):
        services.withdrawal_create(
            client=intruder, wallet_id=wallet.pk, amount=Decimal("5.00"), idempotency_key="out", metadata={}
        )

    assert ledger_state() == before
    assert not TransactionLog.objects.filter(client=intruder, idempotency_key__in=["steal", "out"]).exists()


@pytest.mark.django_db(transaction=True)
def test_two_clients_hammering_each_others_wallets_move_no_money_across(funded_wallet):
    """Under load, each client sends transfers and withdrawals out of the
    other's wallets and into its own: every one is a 404, its own traffic
    goes through, and the books balance."""
    a, b = make_api_client("Treasury client"), make_api_client("Treasury client")
    a_wallets = [funded_wallet("500.00", owner=a.user) for _ in range(2)]
    b_wallets = [funded_wallet("500.00", owner=b.user) for _ in range(2)]
    tokens = {"a": token_of(a), "b": token_of(b)}
    calls, expected = [], []
    for i in range(60):
        me, mine, theirs = ("a", a_wallets, b_wallets) if i % 2 else ("b", b_wallets, a_wallets)
        if i % 3 == 0:
            calls.append(lambda t=tokens[me], s=theirs[0], d=mine[0], i=i: post_transfer(t, s, d, "3.00", f"x-{i}"))
            expected.append(404)
        elif i % 3 == 1:
            calls.append(lambda t=tokens[me], w=theirs[1], i=i: post_withdrawal(t, w, "2.00", f"w-{i}"))
            expected.append(404)
        else:
            calls.append(lambda t=tokens[me], s=mine[0], d=mine[1], i=i: post_transfer(t, s, d, "1.00", f"own-{i}"))
            expected.append(201)

    answers = run_concurrently(calls, threads=8)

    assert [answer.status_code for answer in answers] == expected
    totals = {
        name: sum(Wallet.objects.filter(owner=client.user).values_list("balance", flat=True))
        for name, client in (("a", a), ("b", b))
    }
    assert totals == {"a": Decimal("1000.00"), "b": Decimal("1000.00")}
    assert not TransactionLog.objects.exclude(status=TransactionStatus.COMPLETED).exists()
    out = StringIO()
    call_command("verify_ledger", stdout=out)  # exits 1 on any discrepancy
    assert "The books balance" in out.getvalue()
