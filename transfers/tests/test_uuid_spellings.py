"""An id is read in one spelling only (wallet_project.api.uuid_from_text,
docs/api.md "Ids"): 36 characters, 8-4-4-4-12 hex digits, either case.

Python's uuid.UUID reads the same id from many other texts (whitespace,
braces, `urn:uuid:`, no hyphens, Arabic-Indic or fullwidth digits), so a
string that is not the id a client wrote named its wallet. Each spelling is
refused in a body (400 validation_error naming the field), a path (404
not_found) and a query (400 naming the parameter), and changes nothing.
"""

import uuid
from urllib.parse import quote

import pytest

from transfers.models import Hold, TransactionLog, TransferBatch
from wallet_project.api import uuid_from_text
from wallet_project.tests import assert_error_envelope
from wallets.models import Wallet

pytestmark = pytest.mark.django_db

ARABIC_INDIC = str.maketrans("0123456789", "".join(chr(0x0660 + d) for d in range(10)))
FULLWIDTH = str.maketrans("0123456789", "".join(chr(0xFF10 + d) for d in range(10)))


def _hex(u: str) -> str:
    return u.replace("-", "")


# name -> how the canonical text is respelled. Every id has a digit (the
# version nibble, "4"), so the digit respellings always change the text. The
# whitespace, sign and underscore ones stand in for leading zeros (int(..., 16)
# reads " 0ab" and "0_ab" as 0xab): the same id for one that begins "00",
# which the wallets and users here do (zero_led).
SPELLINGS = {
    "leading_space": lambda u: " " + _hex(u)[1:],
    "leading_newline": lambda u: "\n" + _hex(u)[1:],
    "surrounding_tabs": lambda u: "\t" + _hex(u)[2:] + "\t",
    "trailing_space_hyphenated": lambda u: u + " ",
    "plus_sign": lambda u: "+" + _hex(u)[1:],
    "underscore": lambda u: _hex(u)[0] + "_" + _hex(u)[2:],
    "braces": lambda u: "{" + u + "}",
    "urn_prefix": lambda u: "urn:uuid:" + u,
    "urn_inside": lambda u: u[:9] + "urn:" + u[9:],
    "no_hyphens": lambda u: _hex(u),
    "no_hyphens_in_braces": lambda u: "{" + _hex(u) + "}",
    "arabic_indic_digits": lambda u: u.translate(ARABIC_INDIC),
    "fullwidth_digits": lambda u: u.translate(FULLWIDTH),
    "one_character_too_long": lambda u: u + "0",
    "one_character_too_short": lambda u: u[:-1],
    "hyphens_moved": lambda u: _hex(u)[:8] + "-" + _hex(u)[8:12] + _hex(u)[12:],
}
# Those Python's uuid.UUID takes as the same id (of one that begins "00"):
# the reason for this file.
NOT_THE_SAME_FOR_PYTHON = {
    "trailing_space_hyphenated",
    "one_character_too_long",
    "one_character_too_short",
    "hyphens_moved",
}
SAME_ID_FOR_PYTHON = [name for name in SPELLINGS if name not in NOT_THE_SAME_FOR_PYTHON]
spellings = pytest.mark.parametrize("spelling", list(SPELLINGS))


def respell(wallet_id, spelling: str) -> str:
    return SPELLINGS[spelling](str(wallet_id))


def in_path(text: str) -> str:
    return quote(text, safe="")


def test_python_reads_each_of_these_spellings_as_the_same_id():
    """What makes the spellings dangerous (a guard on the table itself)."""
    an_id = uuid.UUID("0023abcd-4567-489a-bcde-f0123456789a")
    for name in SAME_ID_FOR_PYTHON:
        assert uuid.UUID(SPELLINGS[name](str(an_id))) == an_id, name


@pytest.mark.parametrize("text", ["0123abcd-4567-489a-bcde-f0123456789a", "0123ABCD-4567-489A-BCDE-F0123456789A"])
def test_the_canonical_text_in_either_case_is_read(text):
    assert uuid_from_text(text) == uuid.UUID("0123abcd-4567-489a-bcde-f0123456789a")


@spellings
def test_every_other_spelling_is_refused(spelling):
    with pytest.raises(ValueError):
        uuid_from_text(SPELLINGS[spelling]("0123abcd-4567-489a-bcde-f0123456789a"))


@pytest.mark.parametrize("value", [None, 1, True, 0x0123ABCD4567489ABCDEF0123456789A, ["x"], {"id": "x"}])
def test_a_value_that_is_not_text_is_refused(value):
    with pytest.raises(ValueError):
        uuid_from_text(value)


def zero_led() -> uuid.UUID:
    """A new id that begins "00": every spelling in SAME_ID_FOR_PYTHON names it for Python."""
    return uuid.UUID("00" + uuid.uuid4().hex[2:])


@pytest.fixture
def pair(funded_wallet):
    return (
        funded_wallet("100.00", id=zero_led(), user_id=zero_led()),
        funded_wallet("0", id=zero_led(), user_id=zero_led()),
    )


def books(*wallets) -> tuple:
    """What a refused request must leave as it was."""
    balances = tuple(
        Wallet.objects.filter(pk__in=[w.pk for w in wallets]).order_by("pk").values_list("balance", "held")
    )
    return TransactionLog.objects.count(), Hold.objects.count(), TransferBatch.objects.count(), balances


# --- bodies ---------------------------------------------------------------------------


def transfer_body(source, destination):
    return {"sourceWalletId": str(source.pk), "destinationWalletId": str(destination.pk), "amount": "10.00"}


def hold_body(source, destination):
    return {**transfer_body(source, destination), "expiresInSeconds": 600}


def batch_body(source, destination):
    return {
        "sourceWalletId": str(source.pk),
        "atomic": True,
        "transfers": [{"destinationWalletId": str(destination.pk), "amount": "10.00", "idempotencyKey": "p-1"}],
    }


BODIES = {
    # (url, valid body, the field respelled: (path to it in the body, errors key))
    "transfer_source": ("/api/transfer", transfer_body, ("sourceWalletId",), "sourceWalletId"),
    "transfer_destination": ("/api/transfer", transfer_body, ("destinationWalletId",), "destinationWalletId"),
    "hold_source": ("/api/holds", hold_body, ("sourceWalletId",), "sourceWalletId"),
    "hold_destination": ("/api/holds", hold_body, ("destinationWalletId",), "destinationWalletId"),
    "batch_source": ("/api/transfers/batch", batch_body, ("sourceWalletId",), "sourceWalletId"),
    "batch_payout_destination": (
        "/api/transfers/batch",
        batch_body,
        ("transfers", 0, "destinationWalletId"),
        "transfers",
    ),
}


@pytest.mark.parametrize("where", list(BODIES))
@spellings
def test_a_respelled_wallet_id_in_a_body_is_refused_and_moves_nothing(treasury_api, pair, where, spelling):
    url, build, path, field = BODIES[where]
    body = build(*pair)
    container = body
    for step in path[:-1]:
        container = container[step]
    container[path[-1]] = respell(container[path[-1]], spelling)
    before = books(*pair)
    response = treasury_api.post(url, body, format="json", headers={"Idempotency-Key": f"k-{uuid.uuid4()}"})
    assert_error_envelope(response, status=400, code="validation_error", field=field)
    assert books(*pair) == before


@pytest.mark.parametrize("where", list(BODIES))
def test_an_id_in_capitals_in_a_body_is_the_same_id(treasury_api, pair, where):
    url, build, path, _ = BODIES[where]
    body = build(*pair)
    container = body
    for step in path[:-1]:
        container = container[step]
    container[path[-1]] = container[path[-1]].upper()
    response = treasury_api.post(url, body, format="json", headers={"Idempotency-Key": f"k-{uuid.uuid4()}"})
    assert response.status_code in (200, 201), response.content


@spellings
def test_a_respelled_user_id_opens_no_wallet(treasury_api, spelling):
    user_id = str(zero_led())
    response = treasury_api.post("/api/wallets", {"userId": respell(user_id, spelling)}, format="json")
    assert_error_envelope(response, status=400, code="validation_error", field="userId")
    assert not Wallet.objects.filter(user_id=user_id).exists()


@spellings
def test_a_respelled_hold_id_in_a_set_is_refused_and_the_hold_stays_open(treasury_api, pair, spelling):
    placed = treasury_api.post(
        "/api/holds", hold_body(*pair), format="json", headers={"Idempotency-Key": f"h-{uuid.uuid4()}"}
    )
    assert placed.status_code == 201, placed.content
    hold_id = placed.json()["data"]["id"]
    before = books(*pair)
    response = treasury_api.post(
        "/api/holds/void",
        {"holds": [{"holdId": respell(hold_id, spelling)}]},
        format="json",
        headers={"Idempotency-Key": f"v-{uuid.uuid4()}"},
    )
    assert_error_envelope(response, status=400, code="validation_error", field="holds")
    assert books(*pair) == before


# --- paths ----------------------------------------------------------------------------


@spellings
def test_a_respelled_wallet_id_in_a_path_is_not_found(treasury_api, pair, spelling):
    source, _ = pair
    text = in_path(respell(source.pk, spelling))
    assert_error_envelope(treasury_api.get(f"/api/wallets/{text}"), status=404, code="not_found")
    assert_error_envelope(treasury_api.get(f"/api/wallets/{text}/balance"), status=404, code="not_found")
    before = books(*pair)
    response = treasury_api.post(
        f"/api/wallets/{text}/withdraw",
        {"amount": "10.00"},
        format="json",
        headers={"Idempotency-Key": f"w-{uuid.uuid4()}"},
    )
    assert_error_envelope(response, status=404, code="not_found")
    assert books(*pair) == before


@spellings
def test_a_respelled_hold_or_batch_id_in_a_path_is_not_found(treasury_api, pair, spelling):
    placed = treasury_api.post(
        "/api/holds", hold_body(*pair), format="json", headers={"Idempotency-Key": f"h-{uuid.uuid4()}"}
    )
    hold_id = placed.json()["data"]["id"]
    batch = treasury_api.post(
        "/api/transfers/batch", batch_body(*pair), format="json", headers={"Idempotency-Key": f"b-{uuid.uuid4()}"}
    )
    assert batch.status_code in (200, 201, 202), batch.content
    batch_id = batch.json()["data"]["batchId"]
    before = books(*pair)
    assert_error_envelope(
        treasury_api.get(f"/api/holds/{in_path(respell(hold_id, spelling))}"), status=404, code="not_found"
    )
    response = treasury_api.post(
        f"/api/holds/{in_path(respell(hold_id, spelling))}/void",
        {},
        format="json",
        headers={"Idempotency-Key": f"v-{uuid.uuid4()}"},
    )
    assert_error_envelope(response, status=404, code="not_found")
    assert_error_envelope(
        treasury_api.get(f"/api/transfers/batch/{in_path(respell(batch_id, spelling))}"), status=404, code="not_found"
    )
    assert books(*pair) == before


def test_ids_in_capitals_in_a_path_name_the_same_things(treasury_api, pair):
    """Either case, as in a body (Django's own `uuid` converter took lower case only)."""
    source, _ = pair
    assert treasury_api.get(f"/api/wallets/{str(source.pk).upper()}").json()["data"]["id"] == str(source.pk)
    placed = treasury_api.post(
        "/api/holds", hold_body(*pair), format="json", headers={"Idempotency-Key": f"h-{uuid.uuid4()}"}
    )
    hold_id = placed.json()["data"]["id"]
    assert treasury_api.get(f"/api/holds/{hold_id.upper()}").json()["data"]["id"] == hold_id
    endpoint = treasury_api.post(
        "/api/webhook-endpoints", {"url": "https://hooks.example.com/w", "eventTypes": ["wallet.frozen"]}, format="json"
    )
    if endpoint.status_code == 201:  # a host the test machine cannot resolve is refused first
        endpoint_id = endpoint.json()["data"]["id"]
        assert treasury_api.delete(f"/api/webhook-endpoints/{endpoint_id.upper()}").status_code == 200


# --- queries --------------------------------------------------------------------------


@spellings
def test_a_respelled_user_id_in_a_query_is_refused(treasury_api, pair, spelling):
    source, _ = pair
    response = treasury_api.get("/api/wallets", {"userId": respell(source.user_id, spelling)})
    assert_error_envelope(response, status=400, code="validation_error", field="userId")


def test_a_user_id_in_capitals_in_a_query_lists_its_wallets(treasury_api, pair):
    source, _ = pair
    response = treasury_api.get("/api/wallets", {"userId": str(source.user_id).upper()})
    assert response.status_code == 200, response.content
    assert str(source.pk) in response.content.decode()
