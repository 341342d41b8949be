"""One key is one key (transfers/serializers.py): however a client writes it,
in the header, as a structured-field string or in the body, a given key moves
money at most once; what is not one key is a 400 that stores nothing; and
every key that can be stored is found again by its own route."""

import string
import uuid
from decimal import Decimal
from urllib.parse import quote

import pytest
from rest_framework import serializers

from transfers.models import TransactionLog
from transfers.serializers import key_from_header
from transfers.tests import ledger_state
from wallet_project.tests import assert_error_envelope

pytestmark = pytest.mark.django_db

# Header values and the key each names; None: a 400.
HEADER_FORMS = [
    ("K", "K"),
    ("  K\t", "K"),  # optional whitespace around a field value is HTTP syntax
    ('"K"', "K"),
    (' "K" ', "K"),
    ('"a,b"', None),  # a comma, even quoted: "jo + in" sent twice arrives as "jo,in"
    ('"say \\"hi\\""', 'say "hi"'),
    ('"back\\\\slash"', "back\\slash"),
    ("with space", "with space"),
    ("K,K", None),  # the same header sent twice, as WSGI servers join it
    ("K, K", None),
    ("a,b", None),  # a list
    ('"K", "K"', None),
    ('"K";p=1', None),  # parameters
    ('"K', None),  # unterminated
    ('"\\n"', None),  # an escape RFC 8941 does not have
    ('" K "', None),  # whitespace at either end of the key itself
    ('""', None),
    ("", None),
    ("reference/TXN-20260101AAAAAAAAAA", None),
    ("k\u00e9y", None),  # header values are ASCII: such a key goes in the body
    ("k" * 256, None),
]


@pytest.mark.parametrize(("header", "key"), HEADER_FORMS, ids=[repr(h)[:40] for h, _ in HEADER_FORMS])
def test_a_header_names_one_key_or_is_refused(header, key):
    if key is None:
        with pytest.raises(serializers.ValidationError):
            key_from_header(header)
    else:
        assert key_from_header(header) == key


def transfer(api, source, destination, *, header=None, body_key=None, amount="10.00"):
    body = {"sourceWalletId": str(source.pk), "destinationWalletId": str(destination.pk), "amount": amount}
    if body_key is not None:
        body["idempotencyKey"] = body_key
    return api.post("/api/transfer", body, format="json", headers={"Idempotency-Key": header} if header else {})


def test_one_key_written_every_way_moves_money_once(treasury_api, funded_wallet):
    source, destination = funded_wallet("100.00"), funded_wallet("0")

    first = transfer(treasury_api, source, destination, header="order-7")
    again = [
        transfer(treasury_api, source, destination, header='"order-7"'),
        transfer(treasury_api, source, destination, header="  order-7 "),
        transfer(treasury_api, source, destination, body_key="order-7"),
        transfer(treasury_api, source, destination, header='"order-7"', body_key="order-7"),
    ]

    assert first.status_code == 201
    assert [answer.status_code for answer in again] == [200] * 4
    assert {answer.json()["data"]["transactionId"] for answer in again} == {first.json()["data"]["transactionId"]}
    source.refresh_from_db()
    assert source.balance == Decimal("90.00")


@pytest.mark.parametrize(
    ("header", "body_key"),
    [
        pytest.param("K2,K2", None, id="repeated_header"),
        pytest.param("K2, other", None, id="list_header"),
        pytest.param(None, " K2 ", id="body_key_with_surrounding_spaces"),
        pytest.param(None, "K2 ", id="body_key_with_a_trailing_space"),
        pytest.param('"K2 "', None, id="quoted_header_key_with_a_trailing_space"),
        pytest.param("K2", "K2 ", id="header_and_body_differ_by_a_space"),
        pytest.param(None, "reference/TXN-20260101AAAAAAAAAA", id="key_shadowing_a_reference"),
        # Dot segments: HTTP clients (curl among them) remove them from
        # GET /api/transfer/{key}'s path, so the key could not be found again
        # (a/../b found the transaction of key b).
        pytest.param(None, ".", id="dot"),
        pytest.param("..", None, id="dot_dot_in_the_header"),
        pytest.param(None, "K2/../K3", id="dot_dot_between_slashes"),
        pytest.param(None, "K2/./K3", id="dot_between_slashes"),
        pytest.param(None, "K3/..", id="dot_dot_at_the_end"),
        pytest.param(None, "./K3", id="dot_at_the_start"),
    ],
)
def test_what_is_not_one_key_is_a_400_and_moves_nothing(header, body_key, treasury_api, funded_wallet):
    source, destination = funded_wallet("100.00"), funded_wallet("0")
    assert transfer(treasury_api, source, destination, header="K2").status_code == 201
    before = ledger_state()

    response = transfer(treasury_api, source, destination, header=header, body_key=body_key)

    assert_error_envelope(response, status=400, code="validation_error", field="idempotencyKey")
    assert ledger_state() == before


def test_a_key_cannot_shadow_another_transactions_reference(treasury_api, funded_wallet):
    source, destination = funded_wallet("100.00"), funded_wallet("0")
    first = transfer(treasury_api, source, destination, header="T1").json()["data"]

    shadow = transfer(treasury_api, source, destination, body_key=f"reference/{first['reference']}")

    assert_error_envelope(shadow, status=400, code="validation_error", field="idempotencyKey")
    found = treasury_api.get(f"/api/transfer/{quote('reference/' + first['reference'], safe='')}").json()["data"]
    assert found["id"] == first["transactionId"]


# Every printable ASCII character, alone and inside a key, and some beyond ASCII
# (in the body: header values are ASCII).
ASCII_KEYS = (
    [f"k{c}k" for c in string.printable if c.isprintable()]
    + [c for c in string.printable if c.isprintable() and not c.isspace() and c != "."]
    + ["k/.k", "..k/k", "k/k.."]
)
NON_ASCII_KEYS = ["ключ-1", "клиент/заказ", "é", "注文#42", "emoji-\U0001f4b8"]


@pytest.mark.parametrize("key", ASCII_KEYS + NON_ASCII_KEYS, ids=lambda key: repr(key))
def test_every_storable_key_is_found_again_by_its_own_route(key, treasury_api, funded_wallet):
    source, destination = funded_wallet("100.00"), funded_wallet("0")
    made = transfer(treasury_api, source, destination, body_key=key, amount="1.00")
    assert made.status_code == 201, made.content
    made = made.json()["data"]

    by_key = treasury_api.get(f"/api/transfer/{quote(key, safe='')}")
    by_reference = treasury_api.get(f"/api/transfer/reference/{made['reference']}")

    assert by_key.status_code == 200, by_key.content
    assert (by_key.json()["data"]["id"], by_key.json()["data"]["idempotencyKey"]) == (made["transactionId"], key)
    assert by_reference.json()["data"]["id"] == made["transactionId"]
    assert TransactionLog.objects.get(pk=made["transactionId"]).idempotency_key == key


def test_an_ascii_key_in_the_header_is_the_same_key_in_the_body(treasury_api, funded_wallet):
    source, destination = funded_wallet("100.00"), funded_wallet("0")
    key = 'all "of" \\ these ;=?#%/'
    escaped = key.replace("\\", "\\\\").replace('"', '\\"')

    first = transfer(treasury_api, source, destination, header=f'"{escaped}"')
    again = transfer(treasury_api, source, destination, body_key=key)

    assert (first.status_code, again.status_code) == (201, 200)
    assert TransactionLog.objects.get(client=treasury_api.user, type="TRANSFER").idempotency_key == key
    assert uuid.UUID(again.json()["data"]["transactionId"]) == TransactionLog.objects.get(idempotency_key=key).pk


def test_a_batch_payout_key_with_a_dot_segment_is_a_400_naming_it(treasury_api, funded_wallet):
    source, destination = funded_wallet("100.00"), funded_wallet("0")
    body = {
        "sourceWalletId": str(source.pk),
        "atomic": False,
        "transfers": [{"destinationWalletId": str(destination.pk), "amount": "1.00", "idempotencyKey": "loan/../7"}],
    }
    before = ledger_state()

    response = treasury_api.post("/api/transfers/batch", body, format="json", HTTP_IDEMPOTENCY_KEY="b-1")

    refused = assert_error_envelope(response, status=400, code="validation_error", field="transfers")
    assert "between slashes" in str(refused["errors"]["transfers"])
    assert ledger_state() == before


@pytest.mark.parametrize("body_key", [5, ["K"], {"key": "K"}, True], ids=["number", "list", "object", "boolean"])
@pytest.mark.parametrize("endpoint", ["/api/transfer", "/api/holds", "/api/holds/void"])
def test_a_key_field_that_is_not_text_is_named_so_not_missing(endpoint, body_key, treasury_api, funded_wallet):
    # A key was sent: "Required" would send the client looking for a field it did send.
    source, destination = funded_wallet("100.00"), funded_wallet("0")
    body = {
        "/api/transfer": {"sourceWalletId": str(source.pk), "destinationWalletId": str(destination.pk), "amount": "1"},
        "/api/holds": {
            "sourceWalletId": str(source.pk),
            "destinationWalletId": str(destination.pk),
            "amount": "1",
            "expiresInSeconds": 60,
        },
        "/api/holds/void": {"holds": [{"holdId": str(uuid.uuid4())}]},
    }[endpoint]
    before = ledger_state()

    response = treasury_api.post(endpoint, {**body, "idempotencyKey": body_key}, format="json")

    body = assert_error_envelope(response, status=400, code="validation_error", field="idempotencyKey")
    assert body["errors"]["idempotencyKey"] == ["Not a valid string."]
    assert ledger_state() == before


@pytest.mark.parametrize("body_key", [5, True, ["K"]], ids=["number", "boolean", "list"])
@pytest.mark.parametrize(
    "endpoint",
    ["/api/transfer", "/api/wallets/{wallet}/deposit", "/api/transfers/batch", "/api/holds", "/api/holds/capture"],
)
def test_a_key_field_that_is_not_text_beside_an_unknown_field_is_a_400_naming_both(
    endpoint, body_key, treasury_api, funded_wallet
):
    # The unknown field stops the serializer before it reads the key field:
    # the key must still be read as what it is, never as text (it was a 500).
    wallet = funded_wallet("100.00")
    before = ledger_state()

    response = treasury_api.post(
        endpoint.format(wallet=wallet.pk), {"idempotencyKey": body_key, "bogus": 1}, format="json"
    )

    body = assert_error_envelope(response, status=400, code="validation_error", field="idempotencyKey")
    assert body["errors"]["idempotencyKey"] == ["Not a valid string."]
    assert body["errors"]["bogus"] == ["Unknown field."]
    assert ledger_state() == before
