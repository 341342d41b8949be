"""The wallet endpoints, who may call what, and what one API client may see of
another's transactions."""

import base64
import urllib.parse
import uuid
from decimal import Decimal
from urllib.parse import quote

import pytest
from rest_framework.test import APIClient

from conftest import make_api_client
from transfers.models import TransactionLog
from transfers.tests import ledger_state
from wallet_project.tests import assert_error_envelope
from wallets.models import Wallet, WalletKind
from wallets.tests.factories import WalletFactory

# The contract holds straight to PostgreSQL and through PgBouncer alike.
pytestmark = [pytest.mark.django_db, pytest.mark.through_pgbouncer]


def data_of(response, status: int = 200):
    assert response.status_code == status, response.content
    body = response.json()
    assert body["success"] is True
    return body["data"]


def settlement_wallet(currency: str = "NGN") -> Wallet:
    return Wallet.objects.get(kind=WalletKind.SETTLEMENT, currency=currency)


# --- POST /api/wallets ------------------------------------------------------------------


def test_new_wallet_defaults_to_ngn_with_a_zero_balance(treasury_api):
    user_id = uuid.uuid4()

    wallet = data_of(treasury_api.post("/api/wallets", {"userId": str(user_id)}, format="json"), 201)

    assert wallet["userId"] == str(user_id)
    assert (wallet["currency"], wallet["balance"], wallet["isActive"]) == ("NGN", "0.00", True)
    stored = Wallet.objects.get(pk=wallet["id"])
    assert (stored.user_id, stored.kind, stored.balance) == (user_id, WalletKind.CUSTOMER, Decimal("0"))


@pytest.mark.parametrize("second_currency", ["NGN", "ngn"], ids=["same_code", "same_code_in_lower_case"])
def test_second_wallet_in_the_same_currency_is_409_wallet_exists(second_currency, treasury_api):
    user_id = str(uuid.uuid4())
    data_of(treasury_api.post("/api/wallets", {"userId": user_id, "currency": "NGN"}, format="json"), 201)

    response = treasury_api.post("/api/wallets", {"userId": user_id, "currency": second_currency}, format="json")

    assert_error_envelope(response, status=409, code="wallet_exists")
    assert Wallet.objects.filter(user_id=user_id).count() == 1


def test_same_user_may_open_a_wallet_in_another_currency(treasury_api):
    user_id = str(uuid.uuid4())
    data_of(treasury_api.post("/api/wallets", {"userId": user_id}, format="json"), 201)

    wallet = data_of(treasury_api.post("/api/wallets", {"userId": user_id, "currency": "USD"}, format="json"), 201)

    assert wallet["currency"] == "USD"
    assert sorted(Wallet.objects.filter(user_id=user_id).values_list("currency", flat=True)) == ["NGN", "USD"]


def test_unsupported_currency_is_400_naming_the_field(treasury_api):
    response = treasury_api.post("/api/wallets", {"userId": str(uuid.uuid4()), "currency": "XYZ"}, format="json")

    body = assert_error_envelope(response, status=400, code="validation_error")
    assert list(body["errors"]) == ["currency"]
    assert not Wallet.objects.filter(currency="XYZ").exists()


# A currency is three ASCII letters as written: str.upper() would make the
# long s (U+017F) an S and the dotless i (U+0131) an I, and DRF's CharField
# trims whitespace, so each of these opened a wallet in USD, KES, GBP, GHS.
NOT_A_CURRENCY_CODE = {
    "long_s": "u\u017fd",
    "long_s_in_kes": "ke\u017f",
    "surrounding_spaces": " gbp ",
    "trailing_newline": "ghs\n",
    "leading_tab": "\teur",
    "fullwidth_letters": "\uff55\uff53\uff44",
    "dotless_i_and_two_letters": "\u0131ls",
}


@pytest.mark.parametrize("currency", list(NOT_A_CURRENCY_CODE.values()), ids=list(NOT_A_CURRENCY_CODE))
def test_a_currency_not_written_as_three_ascii_letters_opens_no_wallet(currency, treasury_api):
    user_id = str(uuid.uuid4())
    response = treasury_api.post("/api/wallets", {"userId": user_id, "currency": currency}, format="json")

    assert_error_envelope(response, status=400, code="validation_error", field="currency")
    assert not Wallet.objects.filter(user_id=user_id).exists()


@pytest.mark.parametrize("currency", list(NOT_A_CURRENCY_CODE.values()), ids=list(NOT_A_CURRENCY_CODE))
def test_a_currency_not_written_as_three_ascii_letters_is_refused_as_a_tier_filter(currency, treasury_api):
    response = treasury_api.get("/api/tiers", {"currency": currency})

    assert_error_envelope(response, status=400, code="validation_error", field="currency")


# --- GET /api/wallets/{id} and ?userId= ------------------------------------------------------


def test_wallet_is_read_by_id_with_its_balance(treasury_api, funded_wallet):
    wallet = funded_wallet("1234.56")

    data = data_of(treasury_api.get(f"/api/wallets/{wallet.pk}"))

    assert data["id"] == str(wallet.pk)
    assert data["userId"] == str(wallet.user_id)
    assert data["balance"] == "1234.56"
    assert set(data) == {
        "id", "userId", "currency", "balance", "held", "available", "isActive", "tier", "postNoDebit",
        "postNoCredit", "restrictionReason", "createdAt", "updatedAt", "today",
    }  # fmt: skip


@pytest.mark.parametrize(
    "wallet_id",
    [
        pytest.param(lambda: uuid.uuid4(), id="unknown_id"),
        pytest.param(lambda: settlement_wallet().pk, id="settlement"),
    ],
)
def test_wallet_that_a_client_may_not_address_is_404(wallet_id, treasury_api, funded_wallet):
    funded_wallet("1.00")  # so that the NGN settlement wallet exists

    assert_error_envelope(treasury_api.get(f"/api/wallets/{wallet_id()}"), status=404, code="wallet_not_found")


def test_wallets_of_a_user_are_listed_and_nobody_elses(treasury_api):
    user_id, mine = uuid.uuid4(), treasury_api.user
    usd = WalletFactory(owner=mine, user_id=user_id, currency="USD")
    ngn = WalletFactory(owner=mine, user_id=user_id, currency="NGN")
    WalletFactory(owner=mine, currency="NGN")  # another user's
    WalletFactory(user_id=user_id, currency="EUR")  # another client's user with the same id

    data = data_of(treasury_api.get("/api/wallets", {"userId": str(user_id)}))

    assert [(w["id"], w["currency"]) for w in data] == [(str(ngn.pk), "NGN"), (str(usd.pk), "USD")]


def test_user_without_wallets_gets_an_empty_list(treasury_api):
    assert data_of(treasury_api.get("/api/wallets", {"userId": str(uuid.uuid4())})) == []


@pytest.mark.parametrize(
    "query",
    [
        pytest.param({}, id="missing"),
        pytest.param({"userId": ""}, id="empty"),
        pytest.param({"userId": "user-42"}, id="not_a_uuid"),
    ],
)
def test_listing_wallets_needs_a_valid_user_id(query, treasury_api):
    body = assert_error_envelope(treasury_api.get("/api/wallets", query), status=400, code="validation_error")

    assert list(body["errors"]) == ["userId"]


# --- GET /api/wallets/{id}/transactions ---------------------------------------------------


def deposit(api, wallet, amount: str, key: str):
    return api.post(f"/api/wallets/{wallet.pk}/deposit", {"amount": amount, "idempotencyKey": key}, format="json")


def withdraw(api, wallet, amount: str, key: str):
    return api.post(f"/api/wallets/{wallet.pk}/withdraw", {"amount": amount, "idempotencyKey": key}, format="json")


def transfer(api, source, destination, amount: str, key: str):
    body = {"sourceWalletId": str(source.pk), "destinationWalletId": str(destination.pk), "amount": amount}
    return api.post("/api/transfer", {**body, "idempotencyKey": key}, format="json")


def history(api, wallet, **query) -> dict:
    return data_of(api.get(f"/api/wallets/{wallet.pk}/transactions", query))


@pytest.fixture
def busy_wallet(treasury_api, funded_wallet):
    """A wallet with, oldest first: deposit d1 (10.00), deposit d2 (20.00), a
    withdrawal w-failed refused for want of money, a transfer t1 (5.00) out."""
    wallet, other = funded_wallet("0"), funded_wallet("0")
    assert deposit(treasury_api, wallet, "10.00", "d1").status_code == 201
    assert deposit(treasury_api, wallet, "20.00", "d2").status_code == 201
    assert withdraw(treasury_api, wallet, "1000.00", "w-failed").status_code == 422
    assert transfer(treasury_api, wallet, other, "5.00", "t1").status_code == 201
    return wallet


def test_history_is_newest_first(treasury_api, busy_wallet):
    results = history(treasury_api, busy_wallet)["results"]

    assert [log["idempotencyKey"] for log in results] == ["t1", "w-failed", "d2", "d1"]
    assert [(log["type"], log["status"], log["amount"]) for log in results] == [
        ("TRANSFER", "COMPLETED", "5.00"),
        ("WITHDRAWAL", "FAILED", "1000.00"),
        ("DEPOSIT", "COMPLETED", "20.00"),
        ("DEPOSIT", "COMPLETED", "10.00"),
    ]


def test_history_says_credit_or_debit_as_seen_from_its_wallet(treasury_api, busy_wallet):
    results = history(treasury_api, busy_wallet)["results"]
    payee = results[0]["destinationWalletId"]

    assert [(log["idempotencyKey"], log["direction"]) for log in results] == [
        ("t1", "DEBIT"),
        ("w-failed", "DEBIT"),
        ("d2", "CREDIT"),
        ("d1", "CREDIT"),
    ]
    # The same transfer in the payee's history is its credit.
    assert [log["direction"] for log in data_of(treasury_api.get(f"/api/wallets/{payee}/transactions"))["results"]] == [
        "CREDIT"
    ]


def test_history_pages_follow_the_next_link_to_the_end(treasury_api, busy_wallet):
    page = history(treasury_api, busy_wallet, limit=3)
    seen = [log["idempotencyKey"] for log in page["results"]]
    assert len(seen) == 3 and page["next"]

    page = data_of(treasury_api.get(page["next"]))
    seen += [log["idempotencyKey"] for log in page["results"]]

    assert seen == ["t1", "w-failed", "d2", "d1"]
    assert page["next"] is None
    assert page["previous"]


def test_history_previous_link_leads_back_and_an_altered_cursor_is_400(treasury_api, busy_wallet, settings):
    first = history(treasury_api, busy_wallet, limit=2)
    second = data_of(treasury_api.get(first["next"]))

    back = data_of(treasury_api.get(second["previous"]))
    assert [log["idempotencyKey"] for log in back["results"]] == ["t1", "w-failed"]

    cursor = urllib.parse.parse_qs(urllib.parse.urlsplit(first["next"]).query)["cursor"][0]
    altered = cursor[:-1] + ("A" if cursor[-1] != "A" else "B")
    for bad in (altered, cursor.split(":")[0]):
        response = treasury_api.get(f"/api/wallets/{busy_wallet.pk}/transactions", {"cursor": bad})
        assert_error_envelope(response, status=400, code="validation_error", field="cursor")
    # Signed with the service's key: one written under a key since rotated is refused too.
    settings.SECRET_KEY = "another-" + settings.SECRET_KEY
    response = treasury_api.get(first["next"])
    assert_error_envelope(response, status=400, code="validation_error", field="cursor")


def test_history_cursor_is_stable_when_a_new_log_arrives_between_pages(treasury_api, busy_wallet):
    first = history(treasury_api, busy_wallet, limit=2)
    assert deposit(treasury_api, busy_wallet, "1.00", "d-late").status_code == 201

    rest = data_of(treasury_api.get(first["next"]))["results"]

    assert [log["idempotencyKey"] for log in first["results"] + rest] == ["t1", "w-failed", "d2", "d1"]


@pytest.mark.parametrize(
    ("query", "keys"),
    [
        pytest.param({"status": "FAILED"}, ["w-failed"], id="status_failed"),
        pytest.param({"status": "COMPLETED"}, ["t1", "d2", "d1"], id="status_completed"),
        pytest.param({"status": "PENDING"}, [], id="status_pending"),
        pytest.param({"type": "DEPOSIT"}, ["d2", "d1"], id="type_deposit"),
        pytest.param({"type": "TRANSFER"}, ["t1"], id="type_transfer"),
        pytest.param({"type": "WITHDRAWAL", "status": "COMPLETED"}, [], id="type_and_status_together"),
    ],
)
def test_history_is_filtered_by_status_and_type(query, keys, treasury_api, busy_wallet):
    results = history(treasury_api, busy_wallet, **query)["results"]

    assert [log["idempotencyKey"] for log in results] == keys


@pytest.mark.parametrize(
    ("query", "field"),
    [
        pytest.param({"status": "DONE"}, "status", id="unknown_status"),
        pytest.param({"status": "completed"}, "status", id="status_in_lower_case"),
        pytest.param({"type": "REFUND"}, "type", id="unknown_type"),
    ],
)
def test_history_filter_with_an_invalid_value_is_400(query, field, treasury_api, busy_wallet):
    response = treasury_api.get(f"/api/wallets/{busy_wallet.pk}/transactions", query)

    body = assert_error_envelope(response, status=400, code="validation_error")
    assert list(body["errors"]) == [field]


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize(
    "cursor",
    [
        pytest.param("not-a-cursor", id="not_base64"),
        pytest.param(b64("o=abc"), id="offset_not_a_number"),
        pytest.param(b64("o=-1"), id="negative_offset"),
        pytest.param(b64("r=x"), id="reverse_not_a_number"),
        pytest.param(b64("p=not-a-timestamp"), id="position_not_a_timestamp"),
        pytest.param(b64("p=2026-13-45 99:99"), id="position_an_impossible_date"),
        pytest.param(b64("p=\x00"), id="position_nul"),
        pytest.param(b64("\xff\xfe"), id="not_a_query_string"),
        pytest.param([b64("o=1"), b64("o=2")], id="given_twice"),
        # Each decodes to a query string DRF reads: they answered 200, a first
        # or an empty page, though the API never wrote them.
        pytest.param("", id="empty"),
        pytest.param(b64("x=1"), id="no_known_part"),
        pytest.param("A" * 6000, id="long_run_of_one_letter"),
        pytest.param(b64("p=2026-12-05"), id="a_position_the_api_never_gave_out"),
        pytest.param(b64("o=99999999"), id="a_huge_offset"),
    ],
)
def test_history_with_a_malformed_cursor_is_400_naming_cursor(cursor, treasury_api, busy_wallet):
    response = treasury_api.get(f"/api/wallets/{busy_wallet.pk}/transactions", {"cursor": cursor})

    body = assert_error_envelope(response, status=400, code="validation_error", field="cursor")
    assert list(body["errors"]) == ["cursor"]


@pytest.mark.parametrize(
    "limit",
    [
        pytest.param("abc", id="words"),
        pytest.param("0", id="zero"),
        pytest.param("-1", id="negative"),
        pytest.param("null", id="null"),
        pytest.param("", id="empty"),
        pytest.param("2.5", id="fraction"),
        pytest.param("1e2", id="exponent"),
        pytest.param("+5", id="plus_sign"),
        pytest.param(" 5", id="leading_space"),
        pytest.param("\u0665", id="arabic_indic_digit"),
        pytest.param("201", id="above_the_maximum"),
        pytest.param("9" * 5000, id="five_thousand_digits"),
        pytest.param(["2", "3"], id="given_twice"),
    ],
)
def test_history_with_a_malformed_limit_is_400_naming_limit(limit, treasury_api, busy_wallet):
    response = treasury_api.get(f"/api/wallets/{busy_wallet.pk}/transactions", {"limit": limit})

    body = assert_error_envelope(response, status=400, code="validation_error", field="limit")
    assert list(body["errors"]) == ["limit"]


@pytest.mark.parametrize(("limit", "count"), [("1", 1), ("200", 4), ("004", 4)])
def test_history_limit_from_1_to_200_sets_the_page_size(limit, count, treasury_api, busy_wallet):
    assert len(history(treasury_api, busy_wallet, limit=limit)["results"]) == count


@pytest.mark.parametrize(
    "wallet_id",
    [
        pytest.param(lambda: uuid.uuid4(), id="unknown_id"),
        pytest.param(lambda: settlement_wallet().pk, id="settlement"),
    ],
)
def test_history_of_a_wallet_a_client_may_not_address_is_404(wallet_id, treasury_api, funded_wallet):
    funded_wallet("1.00")

    response = treasury_api.get(f"/api/wallets/{wallet_id()}/transactions")

    assert_error_envelope(response, status=404, code="wallet_not_found")


# --- permissions ------------------------------------------------------------------------


def request_for(api, action: str, wallet, other):
    """One call of each endpoint, valid in every way but permission."""
    key = f"perm-{uuid.uuid4()}"
    return {
        "create_wallet": lambda: api.post("/api/wallets", {"userId": str(uuid.uuid4())}, format="json"),
        "get_wallet": lambda: api.get(f"/api/wallets/{wallet.pk}"),
        "list_wallets": lambda: api.get("/api/wallets", {"userId": str(wallet.user_id)}),
        "history": lambda: api.get(f"/api/wallets/{wallet.pk}/transactions"),
        "transfer": lambda: transfer(api, wallet, other, "1.00", key),
        "deposit": lambda: deposit(api, wallet, "1.00", key),
        "withdraw": lambda: withdraw(api, wallet, "1.00", key),
    }[action]()


@pytest.mark.parametrize(
    ("groups", "action"),
    [
        pytest.param(["Transfer client"], "deposit", id="transfer_client_may_not_deposit"),
        pytest.param(["Transfer client"], "withdraw", id="transfer_client_may_not_withdraw"),
        pytest.param(["Auditor"], "create_wallet", id="auditor_may_not_open_wallets"),
        pytest.param(["Auditor"], "transfer", id="auditor_may_not_transfer"),
        pytest.param(["Auditor"], "deposit", id="auditor_may_not_deposit"),
        *(
            pytest.param([], action, id=f"client_without_group_may_not_{action}")
            for action in ("create_wallet", "get_wallet", "list_wallets", "history", "transfer", "deposit", "withdraw")
        ),
    ],
)
def test_client_without_the_permission_gets_403_and_changes_nothing(groups, action, funded_wallet):
    wallet, other = funded_wallet("100.00"), funded_wallet("0")
    api = make_api_client(*groups)
    before = ledger_state()

    assert_error_envelope(request_for(api, action, wallet, other), status=403, code="permission_denied")

    assert ledger_state() == before


@pytest.mark.parametrize(
    ("groups", "action", "status"),
    [
        pytest.param(["Transfer client"], "create_wallet", 201, id="transfer_client_opens_wallets"),
        pytest.param(["Transfer client"], "transfer", 201, id="transfer_client_transfers"),
        pytest.param(["Transfer client"], "history", 200, id="transfer_client_reads_history"),
        pytest.param(["Treasury client"], "deposit", 201, id="treasury_client_deposits"),
        pytest.param(["Treasury client"], "withdraw", 201, id="treasury_client_withdraws"),
        pytest.param(["Auditor"], "get_wallet", 200, id="auditor_reads_wallets"),
        pytest.param(["Auditor"], "history", 200, id="auditor_reads_history"),
    ],
)
def test_client_with_the_permission_is_served(groups, action, status, funded_wallet):
    api = make_api_client(*groups)
    # A client acts on its own wallets; an auditor reads another client's.
    owner = None if groups == ["Auditor"] else api.user
    wallet, other = funded_wallet("100.00", owner=owner), funded_wallet("0", owner=owner)

    response = request_for(api, action, wallet, other)

    assert response.status_code == status, response.content


def anonymous() -> APIClient:
    return APIClient()


def bad_token() -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token 0000000000000000000000000000000000000000")
    return client


def wrong_scheme() -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer 0000000000000000000000000000000000000000")
    return client


@pytest.mark.parametrize(
    ("make_client", "code"),
    [
        pytest.param(anonymous, "not_authenticated", id="no_token"),
        pytest.param(wrong_scheme, "authentication_failed", id="bearer_instead_of_token_is_named"),
        pytest.param(bad_token, "authentication_failed", id="unknown_token"),
    ],
)
@pytest.mark.parametrize(
    "action", ["create_wallet", "get_wallet", "list_wallets", "history", "transfer", "deposit", "withdraw"]
)
def test_request_without_a_valid_token_is_401_and_changes_nothing(make_client, code, action, funded_wallet):
    wallet, other = funded_wallet("100.00"), funded_wallet("0")
    before = ledger_state()

    response = request_for(make_client(), action, wallet, other)

    assert_error_envelope(response, status=401, code=code)
    assert response["WWW-Authenticate"] == "Token"
    assert ledger_state() == before


# --- one client never sees another's idempotency keys ---------------------------------------


@pytest.fixture
def first_client_transfer(treasury_api, funded_wallet):
    """A transfer made by treasury_api with the key "order-1"."""
    source, destination = funded_wallet("100.00"), funded_wallet("0")
    data = data_of(transfer(treasury_api, source, destination, "10.00", "order-1"), 201)
    return TransactionLog.objects.get(pk=data["transactionId"])


def test_client_reads_its_own_log_by_key(treasury_api, first_client_transfer):
    data = data_of(treasury_api.get("/api/transfer/order-1"))

    assert (data["id"], data["idempotencyKey"]) == (str(first_client_transfer.pk), "order-1")
    assert (data["amount"], data["status"], data["reference"]) == (
        "10.00",
        "COMPLETED",
        first_client_transfer.reference,
    )


@pytest.mark.parametrize("groups", [["Transfer client"], ["Auditor"]], ids=["other_client", "auditor"])
def test_another_clients_key_is_not_found(groups, first_client_transfer):
    response = make_api_client(*groups).get("/api/transfer/order-1")

    assert_error_envelope(response, status=404, code="transaction_not_found")


def test_the_same_key_from_another_client_is_a_new_transfer_not_a_replay(funded_wallet, first_client_transfer):
    other_api = make_api_client("Transfer client")
    source, destination = funded_wallet("100.00", owner=other_api.user), funded_wallet("0", owner=other_api.user)

    response = transfer(other_api, source, destination, "10.00", "order-1")

    data = data_of(response, 201)
    assert "Idempotent-Replayed" not in response
    assert data["transactionId"] != str(first_client_transfer.pk)
    assert TransactionLog.objects.filter(idempotency_key="order-1").count() == 2


@pytest.mark.parametrize(
    ("groups", "visible"),
    [
        pytest.param(["Transfer client"], False, id="other_client_does_not_find_it"),
        pytest.param([], False, id="client_without_group_does_not_find_it"),
        pytest.param(["Auditor"], True, id="auditor_finds_it_key_included"),
    ],
)
def test_log_by_reference_is_visible_to_its_client_and_auditors_only(groups, visible, first_client_transfer):
    response = make_api_client(*groups).get(f"/api/transfer/reference/{first_client_transfer.reference}")

    if visible:
        assert data_of(response)["idempotencyKey"] == "order-1"
    else:
        assert_error_envelope(response, status=404, code="transaction_not_found")


def test_client_reads_its_own_log_by_reference(treasury_api, first_client_transfer):
    data = data_of(treasury_api.get(f"/api/transfer/reference/{first_client_transfer.reference}"))

    assert (data["id"], data["idempotencyKey"]) == (str(first_client_transfer.pk), "order-1")


def test_unknown_reference_is_404(treasury_api):
    assert_error_envelope(
        treasury_api.get("/api/transfer/reference/TXN-20260101AAAAAAAAAA"), status=404, code="transaction_not_found"
    )


def test_history_shows_the_key_to_its_client_and_to_an_auditor(treasury_api, first_client_transfer):
    wallet = first_client_transfer.source_wallet

    own = history(treasury_api, wallet)["results"][0]
    audited = history(make_api_client("Auditor"), wallet)["results"][0]

    assert own["id"] == audited["id"] == str(first_client_transfer.pk)
    assert own["idempotencyKey"] == audited["idempotencyKey"] == "order-1"


def test_another_clients_history_is_not_found(first_client_transfer):
    # Tenancy: not even the list; transfers/tests/test_tenancy.py has the whole matrix.
    response = make_api_client("Treasury client").get(
        f"/api/wallets/{first_client_transfer.source_wallet_id}/transactions"
    )

    assert_error_envelope(response, status=404, code="wallet_not_found")


@pytest.mark.parametrize(
    "key",
    [
        pytest.param("order/42", id="with_a_slash"),
        pytest.param("a?b#c%d&e", id="with_url_delimiters"),
        pytest.param("with space", id="with_a_space"),
        pytest.param("\u043a\u043b\u044e\u0447-\u00e9", id="non_ascii"),
        pytest.param("k" * 255, id="255_characters"),
        pytest.param("referenced/ABC", id="like_the_reference_route"),
    ],
)
def test_any_printable_key_can_be_read_back(key, treasury_api, funded_wallet):
    source, destination = funded_wallet("100.00"), funded_wallet("0")
    data_of(transfer(treasury_api, source, destination, "1.00", key), 201)

    data = data_of(treasury_api.get(f"/api/transfer/{quote(key, safe='')}"))

    assert data["idempotencyKey"] == key


@pytest.mark.parametrize(
    ("route", "query", "named"),
    [
        pytest.param("history", "status=COMPLETED&status=FAILED", ["status"], id="history_status"),
        pytest.param("history", "type=TRANSFER&type=DEPOSIT", ["type"], id="history_type"),
        pytest.param("history", "status=FAILED&type=DEPOSIT&status=FAILED", ["status"], id="history_same_value_twice"),
        pytest.param("wallets", "userId={user}&userId={user}", ["userId"], id="wallet_list_user_id"),
        pytest.param("events", "after=x&after=y&limit=1&limit=2", ["after", "limit"], id="events_after_and_limit"),
    ],
)
def test_a_query_parameter_given_twice_is_a_400_naming_it(route, query, named, treasury_api, busy_wallet):
    """QueryDict.get() reads the last of several: `status=COMPLETED&status=FAILED`
    answered FAILED logs only. One place refuses it (wallet_project/api.py)."""
    path = {
        "history": f"/api/wallets/{busy_wallet.pk}/transactions",
        "wallets": "/api/wallets",
        "events": "/api/events",
    }[route]

    response = treasury_api.get(f"{path}?{query.format(user=busy_wallet.user_id)}")

    body = assert_error_envelope(response, status=400, code="validation_error")
    assert sorted(body["errors"]) == named


def test_a_list_parameter_may_repeat(treasury_api, busy_wallet):
    response = treasury_api.get("/api/events?type=transfer.completed&type=wallet.frozen")

    assert response.status_code == 200, response.json()
