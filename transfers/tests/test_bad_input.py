"""Malformed requests to POST /api/transfer, /api/wallets/{id}/deposit,
/api/wallets/{id}/withdraw and POST /api/wallets.

Each one is refused with the right 4xx in the error envelope and changes
nothing: no log is stored, no balance moves, no wallet appears, and the
idempotency key stays free for the valid request that follows. The last tests
prove the other half of the money contract: what is accepted is exact.
"""

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

import pytest
from django.conf import settings
from django.test.client import BOUNDARY, MULTIPART_CONTENT, encode_multipart

from transfers.models import TransactionLog, TransactionStatus
from transfers.tests import ledger_state
from wallet_project.tests import assert_error_envelope
from wallets.models import MAX_AMOUNT, Wallet, WalletKind

pytestmark = pytest.mark.django_db

MONEY_ENDPOINTS = ["transfer", "deposit", "withdraw"]
JSON = "application/json"


# --- building requests ---------------------------------------------------------------


@dataclass(frozen=True)
class Raw:
    """A JSON literal written into the body as is (10.001, 1e20, NaN): what a
    client's own encoder sends, and what json.dumps would never write."""

    literal: str


def to_json(body) -> str:
    literals: list[str] = []

    def placeholder(value):
        if not isinstance(value, Raw):
            raise TypeError(f"not JSON serializable: {value!r}")
        literals.append(value.literal)
        return f"@raw{len(literals) - 1}@"

    text = json.dumps(body, default=placeholder)
    for index, literal in enumerate(literals):
        text = text.replace(f'"@raw{index}@"', literal)
    return text


def with_fields(**fields) -> Callable[[dict], dict]:
    return lambda body: {**body, **fields}


def without(*names: str) -> Callable[[dict], dict]:
    return lambda body: {name: value for name, value in body.items() if name not in names}


@dataclass(frozen=True)
class Bad:
    """One malformed request: how to spoil a valid body, and the answer the API owes."""

    spoil: Callable[[dict], dict] = lambda body: body
    # The whole body, for what a dict cannot say (broken JSON, bytes, forms).
    raw: Callable[[dict], bytes | str] | None = None
    content_type: str = JSON
    headers: dict | None = None
    status: int = 400
    code: str = "validation_error"
    # The field named in `errors` (validation_error only).
    field: str | None = None

    def __post_init__(self):
        # Only a validation error names fields; each case must say which one.
        assert (self.code == "validation_error") == (self.field is not None), self

    def send(self, api, url: str, body: dict):
        content = self.raw(body) if self.raw else to_json(self.spoil(body))
        return api.generic("POST", url, content, content_type=self.content_type, headers=self.headers)


@pytest.fixture
def wallets(funded_wallet):
    """A funded source (100.00) and an empty destination, in NGN."""
    return funded_wallet("100.00"), funded_wallet("0")


def money_request(endpoint: str, *, source, destination, key: str, amount="10.00") -> tuple[str, dict]:
    """A valid request: a transfer source → destination, a deposit into the
    destination, a withdrawal from the source."""
    body = {"amount": amount, "idempotencyKey": key, "metadata": {"orderId": "A-1"}}
    if endpoint == "transfer":
        return "/api/transfer", {"sourceWalletId": str(source), "destinationWalletId": str(destination), **body}
    target = destination if endpoint == "deposit" else source
    return f"/api/wallets/{target}/{endpoint}", body


def post_json(api, url: str, body: dict):
    return api.generic("POST", url, to_json(body), content_type=JSON)


# --- the table -----------------------------------------------------------------------


def amount(value, code: str = "validation_error") -> Bad:
    return Bad(spoil=with_fields(amount=value), code=code, field="amount" if code == "validation_error" else None)


def key(value, **kwargs) -> Bad:
    return Bad(spoil=with_fields(idempotencyKey=value), field="idempotencyKey", **kwargs)


def metadata(value) -> Bad:
    return Bad(spoil=with_fields(metadata=value), field="metadata")


MONEY_CASES = [
    # amount: missing, wrong type
    pytest.param(Bad(spoil=without("amount"), field="amount"), id="amount_missing"),
    pytest.param(amount(None), id="amount_null"),
    pytest.param(amount(True), id="amount_true_is_not_one"),
    pytest.param(amount(False), id="amount_false_is_not_zero"),
    pytest.param(amount([10]), id="amount_list"),
    pytest.param(amount({"value": "10.00"}), id="amount_object"),
    pytest.param(amount(""), id="amount_empty_string"),
    pytest.param(amount("ten"), id="amount_words"),
    pytest.param(amount("10,00"), id="amount_decimal_comma"),
    pytest.param(amount("0x10"), id="amount_hexadecimal"),
    # amount: precision, sign, size
    pytest.param(amount("10.001"), id="amount_string_with_3_decimal_places"),
    pytest.param(amount(Raw("10.001")), id="amount_number_with_3_decimal_places"),
    pytest.param(amount("0.001"), id="amount_below_one_cent"),
    pytest.param(amount("-5.00"), id="amount_negative_string"),
    pytest.param(amount(Raw("-5")), id="amount_negative_number"),
    pytest.param(amount("0"), id="amount_zero_string"),
    pytest.param(amount(Raw("0.00")), id="amount_zero_number"),
    pytest.param(amount("-0"), id="amount_negative_zero"),
    pytest.param(amount(Raw("1e20")), id="amount_number_1e20_beyond_numeric_20_2"),
    pytest.param(amount(Raw("1E+20")), id="amount_number_1E+20_beyond_numeric_20_2"),
    pytest.param(amount("10000000000000000000.00"), id="amount_string_beyond_numeric_20_2"),
    pytest.param(amount(Raw("1000000000000000000")), id="amount_one_above_the_largest_numeric_20_2"),
    # amount: NaN and Infinity. As JSON literals they are not JSON at all.
    pytest.param(amount(Raw("NaN"), code="parse_error"), id="amount_NaN_literal"),
    pytest.param(amount(Raw("Infinity"), code="parse_error"), id="amount_Infinity_literal"),
    pytest.param(amount(Raw("-Infinity"), code="parse_error"), id="amount_minus_Infinity_literal"),
    pytest.param(amount("NaN"), id="amount_NaN_string"),
    pytest.param(amount("sNaN"), id="amount_signalling_NaN_string"),
    pytest.param(amount("Infinity"), id="amount_Infinity_string"),
    pytest.param(amount("-Infinity"), id="amount_minus_Infinity_string"),
    pytest.param(amount("inf"), id="amount_inf_string"),
    # amount: strings that are not decimal strings
    pytest.param(amount("1e-3"), id="amount_exponent_string_with_3_places"),
    pytest.param(amount("1e2"), id="amount_exponent_string"),
    pytest.param(amount("1E+2"), id="amount_signed_exponent_string"),
    pytest.param(amount("5e-1"), id="amount_negative_exponent_string"),
    pytest.param(amount("1_000"), id="amount_string_with_underscores"),
    pytest.param(amount("\u0661\u0660\u0660"), id="amount_string_in_arabic_indic_digits"),
    pytest.param(amount(" 10.00"), id="amount_string_with_a_leading_space"),
    pytest.param(amount("10.00\n"), id="amount_string_with_a_trailing_newline"),
    # A decimal string in range but longer than DRF's 1,000 characters: DRF's max_string_length.
    pytest.param(amount("0" * 1000 + "1"), id="amount_string_of_1001_characters"),
    pytest.param(amount("0" * 2000 + "1.50"), id="amount_string_of_2004_characters"),
    # idempotency key: missing, blank, too long, not printable, wrong type
    pytest.param(Bad(spoil=without("idempotencyKey"), field="idempotencyKey"), id="key_missing"),
    pytest.param(key(None), id="key_null"),
    pytest.param(key(""), id="key_empty"),
    pytest.param(key("   "), id="key_blank"),
    pytest.param(key("k" * 256), id="key_256_characters"),
    pytest.param(Bad(spoil=with_fields(idempotencyKey="order\x00"), code="parse_error"), id="key_with_nul"),
    pytest.param(key("order\n1"), id="key_with_newline"),
    pytest.param(key("order\t1"), id="key_with_tab"),
    pytest.param(key("order\u200b1"), id="key_with_zero_width_space"),
    pytest.param(key(True), id="key_boolean"),
    # A number is not its text: 123 and "123" would be one key.
    pytest.param(key(Raw("123")), id="key_number"),
    pytest.param(key(Raw("1.5")), id="key_fractional_number"),
    pytest.param(key(["k"]), id="key_list"),
    pytest.param(
        Bad(spoil=without("idempotencyKey"), headers={"Idempotency-Key": ""}, field="idempotencyKey"),
        id="key_header_empty",
    ),
    pytest.param(
        Bad(spoil=without("idempotencyKey"), headers={"Idempotency-Key": "k" * 256}, field="idempotencyKey"),
        id="key_header_256_characters",
    ),
    pytest.param(
        Bad(spoil=without("idempotencyKey"), headers={"Idempotency-Key": "order\x7f"}, field="idempotencyKey"),
        id="key_header_with_delete_character",
    ),
    pytest.param(key("from-body", headers={"Idempotency-Key": "from-header"}), id="key_header_and_body_different"),
    # metadata
    pytest.param(metadata(None), id="metadata_null"),
    pytest.param(metadata(["orderId", "A-1"]), id="metadata_list"),
    pytest.param(metadata("orderId=A-1"), id="metadata_string"),
    pytest.param(metadata(Raw("5")), id="metadata_number"),
    pytest.param(metadata(True), id="metadata_boolean"),
    pytest.param(metadata({"note": "x" * settings.TRANSFER_METADATA_MAX_BYTES}), id="metadata_oversized"),
    # NUL and numbers past JSON_MAX_NUMBER_DIGITS: the parser's (test_hostile_json.py).
    pytest.param(
        Bad(spoil=with_fields(metadata={"note": "line\x00break"}), code="parse_error"),
        id="metadata_string_with_nul",
    ),
    pytest.param(
        Bad(spoil=with_fields(metadata={"rate": Raw("1" + "0" * 400 + ".5")}), code="parse_error"),
        id="metadata_number_beyond_float",
    ),
    # the body itself
    pytest.param(Bad(raw=lambda body: to_json(body)[:-1], code="parse_error"), id="json_truncated"),
    pytest.param(Bad(raw=lambda body: to_json(body) + " x", code="parse_error"), id="json_trailing_garbage"),
    pytest.param(Bad(raw=lambda body: "{'amount': '10.00'}", code="parse_error"), id="json_single_quoted"),
    pytest.param(
        Bad(raw=lambda body: to_json(body)[:-1] + ', "amount": "1000.00"}', code="parse_error"),
        id="json_duplicate_amount_key",
    ),
    pytest.param(Bad(raw=lambda body: to_json(body).encode() + b' "\xff"', code="parse_error"), id="json_invalid_utf8"),
    pytest.param(
        Bad(raw=lambda body: to_json([body]), field=settings.REST_FRAMEWORK["NON_FIELD_ERRORS_KEY"]),
        id="json_array_instead_of_object",
    ),
    pytest.param(
        Bad(raw=lambda body: '"10.00"', field=settings.REST_FRAMEWORK["NON_FIELD_ERRORS_KEY"]),
        id="json_string_instead_of_object",
    ),
    pytest.param(Bad(raw=lambda body: "", field="amount"), id="empty_body"),
    pytest.param(
        Bad(
            raw=lambda body: to_json(body)[:-1] + ', "deep": ' + "[" * 100_000 + "]" * 100_000 + "}",
            status=413,
            code="payload_too_large",
        ),
        id="deeply_nested_json_over_the_body_limit",
    ),
    pytest.param(
        Bad(raw=lambda body: to_json(body)[:-1] + ', "deep": ' + "[" * 5_000 + "]" * 5_000 + "}", code="parse_error"),
        id="deeply_nested_json_under_the_body_limit",
    ),
    pytest.param(
        Bad(
            spoil=with_fields(metadata={"note": "x" * settings.API_MAX_BODY_BYTES}),
            status=413,
            code="payload_too_large",
        ),
        id="body_over_API_MAX_BODY_BYTES",
    ),
    pytest.param(
        Bad(
            raw=lambda body: "&".join(f"{k}={v}" for k, v in body.items() if isinstance(v, str)),
            content_type="application/x-www-form-urlencoded",
            status=415,
            code="unsupported_media_type",
        ),
        id="form_encoded_body",
    ),
    pytest.param(
        Bad(
            raw=lambda body: encode_multipart(BOUNDARY, {k: v for k, v in body.items() if isinstance(v, str)}),
            content_type=MULTIPART_CONTENT,
            status=415,
            code="unsupported_media_type",
        ),
        id="multipart_body",
    ),
    pytest.param(
        Bad(raw=to_json, content_type="text/plain", status=415, code="unsupported_media_type"),
        id="json_sent_as_text_plain",
    ),
    pytest.param(
        Bad(raw=to_json, content_type=f"{JSON}; charset=bogus", status=415, code="unsupported_media_type"),
        id="charset_nobody_knows",
    ),
    pytest.param(
        Bad(raw=to_json, content_type=f"{JSON}; charset=", status=415, code="unsupported_media_type"),
        id="charset_empty",
    ),
]


@pytest.mark.parametrize("bad", MONEY_CASES)
@pytest.mark.parametrize("endpoint", MONEY_ENDPOINTS)
def test_malformed_money_request_is_refused_and_moves_nothing(endpoint, bad, treasury_api, wallets):
    source, destination = wallets
    url, body = money_request(endpoint, source=source.pk, destination=destination.pk, key=f"bad-{uuid.uuid4()}")
    before = ledger_state()

    assert_error_envelope(bad.send(treasury_api, url, body), status=bad.status, code=bad.code, field=bad.field)

    assert ledger_state() == before


@pytest.mark.parametrize("endpoint", MONEY_ENDPOINTS)
def test_the_valid_request_the_table_spoils_is_accepted(endpoint, treasury_api, wallets):
    """The control: each refusal above is caused by the spoiled part alone."""
    source, destination = wallets
    url, body = money_request(endpoint, source=source.pk, destination=destination.pk, key="valid")

    response = post_json(treasury_api, url, body)

    assert response.status_code == 201, response.content
    assert TransactionLog.objects.get(client=treasury_api.user, idempotency_key="valid").amount == Decimal("10.00")


TRANSFER_CASES = [
    pytest.param(Bad(spoil=without("sourceWalletId"), field="sourceWalletId"), id="source_missing"),
    pytest.param(Bad(spoil=without("destinationWalletId"), field="destinationWalletId"), id="destination_missing"),
    pytest.param(Bad(spoil=with_fields(sourceWalletId=None), field="sourceWalletId"), id="source_null"),
    pytest.param(Bad(spoil=with_fields(sourceWalletId="wallet-1"), field="sourceWalletId"), id="source_not_a_uuid"),
    pytest.param(
        Bad(spoil=with_fields(destinationWalletId="1234"), field="destinationWalletId"), id="destination_not_a_uuid"
    ),
    pytest.param(Bad(spoil=with_fields(sourceWalletId=["x"]), field="sourceWalletId"), id="source_list"),
    pytest.param(
        Bad(spoil=lambda body: {**body, "destinationWalletId": body["sourceWalletId"]}, field="destinationWalletId"),
        id="source_equals_destination",
    ),
    pytest.param(
        Bad(
            spoil=lambda body: {**body, "destinationWalletId": body["sourceWalletId"].upper()},
            field="destinationWalletId",
        ),
        id="source_equals_destination_in_upper_case",
    ),
    pytest.param(
        Bad(spoil=with_fields(sourceWalletId=Raw("12345")), field="sourceWalletId"),
        id="source_as_number",
    ),
    pytest.param(
        Bad(spoil=with_fields(destinationWalletId=True), field="destinationWalletId"),
        id="destination_as_boolean",
    ),
]


@pytest.mark.parametrize("bad", TRANSFER_CASES)
def test_malformed_transfer_is_refused_and_moves_nothing(bad, treasury_api, wallets):
    source, destination = wallets
    url, body = money_request("transfer", source=source.pk, destination=destination.pk, key=f"bad-{uuid.uuid4()}")
    before = ledger_state()

    assert_error_envelope(bad.send(treasury_api, url, body), status=bad.status, code=bad.code, field=bad.field)

    assert ledger_state() == before


def settlement_id() -> uuid.UUID:
    return Wallet.objects.get(kind=WalletKind.SETTLEMENT, currency="NGN").pk


@pytest.mark.parametrize(
    ("endpoint", "role", "stranger"),
    [
        pytest.param("transfer", "source", uuid.uuid4, id="transfer_from_unknown_wallet"),
        pytest.param("transfer", "destination", uuid.uuid4, id="transfer_to_unknown_wallet"),
        pytest.param("transfer", "source", settlement_id, id="transfer_from_settlement_wallet"),
        pytest.param("transfer", "destination", settlement_id, id="transfer_to_settlement_wallet"),
        pytest.param("deposit", "destination", uuid.uuid4, id="deposit_into_unknown_wallet"),
        pytest.param("deposit", "destination", settlement_id, id="deposit_into_settlement_wallet"),
        pytest.param("withdraw", "source", uuid.uuid4, id="withdraw_from_unknown_wallet"),
        pytest.param("withdraw", "source", settlement_id, id="withdraw_from_settlement_wallet"),
    ],
)
def test_unknown_wallet_is_404_stores_nothing_and_leaves_the_key_free(endpoint, role, stranger, treasury_api, wallets):
    source, destination = wallets
    ids = {"source": source.pk, "destination": destination.pk}
    before = ledger_state()

    url, body = money_request(endpoint, **{**ids, role: stranger()}, key="free-key")
    assert_error_envelope(post_json(treasury_api, url, body), status=404, code="wallet_not_found")
    assert ledger_state() == before

    url, body = money_request(endpoint, **ids, key="free-key")
    response = post_json(treasury_api, url, body)
    assert response.status_code == 201, response.content
    assert TransactionLog.objects.get(client=treasury_api.user, idempotency_key="free-key").status == "COMPLETED"


@pytest.mark.parametrize("endpoint", MONEY_ENDPOINTS)
def test_refused_input_leaves_the_key_free(endpoint, treasury_api, wallets):
    source, destination = wallets
    url, body = money_request(endpoint, source=source.pk, destination=destination.pk, key="retry-me")

    assert_error_envelope(
        post_json(treasury_api, url, {**body, "amount": "10.001"}), status=400, code="validation_error", field="amount"
    )
    response = post_json(treasury_api, url, body)

    assert response.status_code == 201, response.content
    assert response.json()["data"]["status"] == "COMPLETED"


def body_of_exactly_the_limit(body: dict) -> str:
    # Whitespace before the closing brace pads the body (an unknown field
    # would be refused).
    compact = to_json(body)
    text = compact[:-1] + " " * (settings.API_MAX_BODY_BYTES - len(compact.encode())) + "}"
    assert len(text.encode()) == settings.API_MAX_BODY_BYTES
    return text


def test_body_of_exactly_the_limit_is_read(treasury_api, wallets):
    source, destination = wallets
    url, body = money_request("deposit", source=source.pk, destination=destination.pk, key="at-the-limit")

    response = treasury_api.generic("POST", url, body_of_exactly_the_limit(body), content_type=JSON)

    assert response.status_code == 201, response.content


def test_body_one_byte_over_the_limit_is_413_and_moves_nothing(treasury_api, wallets):
    source, destination = wallets
    url, body = money_request("deposit", source=source.pk, destination=destination.pk, key="over-the-limit")
    before = ledger_state()

    over = body_of_exactly_the_limit(body)[:-1] + " }"
    response = treasury_api.generic("POST", url, over, content_type=JSON)

    assert_error_envelope(response, status=413, code="payload_too_large")
    assert ledger_state() == before


# --- POST /api/wallets ------------------------------------------------------------------


def user_id(value, **kwargs) -> Bad:
    return Bad(spoil=with_fields(userId=value), field="userId", **kwargs)


def currency(value) -> Bad:
    return Bad(spoil=with_fields(currency=value), field="currency")


WALLET_CASES = [
    pytest.param(Bad(spoil=without("userId"), field="userId"), id="user_id_missing"),
    pytest.param(user_id(None), id="user_id_null"),
    pytest.param(user_id(""), id="user_id_empty"),
    pytest.param(user_id("user-42"), id="user_id_not_a_uuid"),
    pytest.param(user_id(str(uuid.uuid4()) + "0"), id="user_id_uuid_with_an_extra_digit"),
    pytest.param(user_id({"id": str(uuid.uuid4())}), id="user_id_object"),
    pytest.param(
        user_id(Raw("42")),
        id="user_id_as_number",
    ),
    pytest.param(
        user_id(True),
        id="user_id_as_boolean",
    ),
    pytest.param(currency("XYZ"), id="currency_unknown"),
    pytest.param(currency(Raw("566")), id="currency_as_its_iso_number"),
    pytest.param(currency("JPY"), id="currency_without_two_minor_units"),
    pytest.param(currency("US"), id="currency_too_short"),
    pytest.param(currency("USDX"), id="currency_too_long"),
    pytest.param(currency(""), id="currency_empty"),
    pytest.param(currency(None), id="currency_null"),
    pytest.param(currency(Raw("566")), id="currency_numeric_code"),
    pytest.param(currency(["NGN"]), id="currency_list"),
    pytest.param(Bad(raw=lambda body: to_json(body)[:-1], code="parse_error"), id="json_truncated"),
    pytest.param(
        Bad(raw=lambda body: to_json(body)[:-1] + f', "userId": "{uuid.uuid4()}"}}', code="parse_error"),
        id="json_duplicate_user_id_key",
    ),
    pytest.param(
        Bad(spoil=with_fields(padding="x" * settings.API_MAX_BODY_BYTES), status=413, code="payload_too_large"),
        id="body_over_API_MAX_BODY_BYTES",
    ),
    pytest.param(
        Bad(
            raw=lambda body: f"userId={body['userId']}&currency=NGN",
            content_type="application/x-www-form-urlencoded",
            status=415,
            code="unsupported_media_type",
        ),
        id="form_encoded_body",
    ),
]


@pytest.mark.parametrize("bad", WALLET_CASES)
def test_malformed_wallet_creation_is_refused_and_opens_nothing(bad, treasury_api):
    before = sorted(Wallet.objects.values_list("pk", flat=True))

    response = bad.send(treasury_api, "/api/wallets", {"userId": str(uuid.uuid4()), "currency": "USD"})

    assert_error_envelope(response, status=bad.status, code=bad.code, field=bad.field)
    assert sorted(Wallet.objects.values_list("pk", flat=True)) == before


# --- what is accepted is exact ------------------------------------------------------------


def test_largest_two_place_amount_below_1e16_survives_the_round_trip_exactly(settings, treasury_api, funded_wallet):
    settings.CLIENT_EXPOSURE_LIMIT = MAX_AMOUNT  # one client's deposit this large: past the default
    wallet = funded_wallet("0")
    # Through a binary float this would come back as 10000000000000000.00.
    assert f"{float('9999999999999999.99'):.2f}" != "9999999999999999.99"
    body = '{"amount": 9999999999999999.99, "idempotencyKey": "exact"}'

    response = treasury_api.generic("POST", f"/api/wallets/{wallet.pk}/deposit", body, content_type=JSON)

    assert response.status_code == 201, response.content
    assert treasury_api.get(f"/api/wallets/{wallet.pk}").json()["data"]["balance"] == "9999999999999999.99"
    assert treasury_api.get("/api/transfer/exact").json()["data"]["amount"] == "9999999999999999.99"
    wallet.refresh_from_db()
    assert wallet.balance == Decimal("9999999999999999.99")


@pytest.mark.parametrize(
    ("first", "second"),
    [pytest.param("0.1", "0.2", id="as_strings"), pytest.param(Raw("0.1"), Raw("0.2"), id="as_json_numbers")],
)
def test_point_one_plus_point_two_is_exactly_point_three(first, second, treasury_api, funded_wallet):
    source, destination = funded_wallet("1.00"), funded_wallet("0")
    assert 0.1 + 0.2 != 0.3  # the float trap this test is about

    for index, amount_sent in enumerate((first, second)):
        url, body = money_request(
            "transfer", source=source.pk, destination=destination.pk, key=f"tenth-{index}", amount=amount_sent
        )
        assert post_json(treasury_api, url, body).status_code == 201

    assert treasury_api.get(f"/api/wallets/{destination.pk}").json()["data"]["balance"] == "0.30"
    assert treasury_api.get(f"/api/wallets/{source.pk}").json()["data"]["balance"] == "0.70"


def test_largest_numeric_20_2_amount_is_accepted(settings, treasury_api, funded_wallet):
    settings.CLIENT_EXPOSURE_LIMIT = MAX_AMOUNT  # one client's deposit this large: past the default
    # USD: its settlement wallet starts at zero, so it can take the full amount too.
    wallet = funded_wallet("0", currency="USD")
    body = to_json({"amount": Raw(str(MAX_AMOUNT)), "idempotencyKey": "largest"})

    response = treasury_api.generic("POST", f"/api/wallets/{wallet.pk}/deposit", body, content_type=JSON)

    assert response.status_code == 201, response.content
    assert treasury_api.get(f"/api/wallets/{wallet.pk}").json()["data"]["balance"] == "999999999999999999.99"


def test_deposit_that_would_overflow_a_balance_is_refused_and_leaves_no_pending_log(
    settings, treasury_api, funded_wallet
):
    settings.CLIENT_EXPOSURE_LIMIT = MAX_AMOUNT  # the ledger's own bound, not the client's, is under test
    wallet = funded_wallet("0", currency="USD")
    url = f"/api/wallets/{wallet.pk}/deposit"
    assert post_json(treasury_api, url, {"amount": str(MAX_AMOUNT), "idempotencyKey": "fill"}).status_code == 201
    before = sorted(Wallet.objects.values_list("pk", "balance"))

    response = post_json(treasury_api, url, {"amount": "0.01", "idempotencyKey": "overflow"})

    assert 400 <= response.status_code < 500, response.content
    assert response.json()["success"] is False
    assert sorted(Wallet.objects.values_list("pk", "balance")) == before
    assert not TransactionLog.objects.filter(status=TransactionStatus.PENDING).exists()


@pytest.mark.parametrize(
    "path",
    ["/api/transfer", "/api/wallets/{wallet}/deposit", "/api/wallets/{wallet}/withdraw", "/api/wallets"],
)
def test_an_unknown_body_field_is_a_400_naming_it_and_changes_nothing(path, treasury_api, funded_wallet):
    # A typo ("ammount") must not read as a request without the field.
    source, destination = funded_wallet("100.00"), funded_wallet("0")
    body = {"sourceWalletId": str(source.pk), "destinationWalletId": str(destination.pk), "amount": "1.00"}
    if "wallets" in path:
        body = {"userId": str(uuid.uuid4())} if path == "/api/wallets" else {"amount": "1.00"}
    before = ledger_state()

    response = treasury_api.post(
        path.format(wallet=source.pk), {**body, "ammount": "1.00"}, format="json", headers={"Idempotency-Key": "k"}
    )

    assert_error_envelope(response, status=400, code="validation_error", field="ammount")
    assert ledger_state() == before


@pytest.mark.parametrize("name", ["status", "type"])
def test_a_blank_history_filter_is_a_400_naming_it(name, treasury_api, funded_wallet):
    wallet = funded_wallet("10.00")

    response = treasury_api.get(f"/api/wallets/{wallet.pk}/transactions", {name: ""})

    assert_error_envelope(response, status=400, code="validation_error", field=name)
