"""Pathological JSON, posted to every endpoint that reads a body.

Each body of the corpus is answered with a 4xx in the envelope, quickly (a
number the client chose never sets the decoder's cost), stores nothing, and
logs no error. The decoder is wallet_project/policies.py; the metadata size
rule is transfers/serializers.py's MetadataField.
"""

import json
import logging
import time
import uuid
import zlib

import pytest
from django.conf import settings
from django.test import override_settings

from transfers.models import TransactionLog
from transfers.tests import ledger_state
from transfers.tests.test_bad_input import JSON, MONEY_ENDPOINTS, money_request
from wallet_project.tests import assert_error_envelope

pytestmark = pytest.mark.django_db

# A DoS guard, not a benchmark: a body that cost a worker seconds (33 s for
# 1e1000000 once) fails this by orders of magnitude. The bound is a ratio to
# an ordinary refusal timed in the same test (the best of a few sends each),
# with a floor, so that a loaded machine slows both sides alike and a quiet
# one is not held to microseconds.
ATTEMPTS = 3
SLOWER_THAN_ORDINARY = 10
FAST_SECONDS = 0.050
# Sixteen times the body limit: tens of milliseconds on a quiet machine.
MEGABYTE_SECONDS = 0.250


def splice(valid: str, field: str, literal: str) -> str:
    """The JSON body `valid` with `field` set to `literal`, written as is:
    what no JSON encoder would write."""
    body = json.loads(valid)
    marker = f"@{uuid.uuid4().hex}@"
    body[field] = marker
    return json.dumps(body).replace(f'"{marker}"', literal)


def deep(levels: int, leaf: str = "1") -> str:
    return "[" * levels + leaf + "]" * levels


def metadata_of(**values: str) -> str:
    return "{" + ", ".join(f'"{key}": {literal}' for key, literal in values.items()) + "}"


HUGE_NUMBERS = {
    "exponent_1e1000000": "1e1000000",
    "exponent_1e200000": "1e200000",
    "exponent_1E+4000": "1E+4000",
    "negative_exponent_1e-1000000": "1e-1000000",
    "zero_with_negative_exponent": "0e-100000",
    "exponent_with_25_digits": "1e9999999999999999999999999",
    "negative_number_with_huge_exponent": "-9.99e999999",
    "60000_digit_integer": "9" * 60_000,
    "integer_past_pythons_4300_digit_limit": "1" + "0" * 4_300,
    "60000_digit_fraction": "0." + "0" * 60_000 + "1",
    "41_digit_integer": "1" + "0" * 40,
}

SURROGATES = {
    "lone_high_surrogate": r'"\ud800"',
    "lone_low_surrogate": r'"\udc00"',
    "surrogate_pair_reversed": r'"\ude00\ud83d"',
    "high_surrogate_then_text": r'"\ud83dx"',
}

# (id, how to spoil a valid body's JSON text, the code owed)
CORPUS: list[tuple[str, object, str]] = []
for name, literal in HUGE_NUMBERS.items():
    CORPUS += [
        (f"amount_{name}", lambda body, n=literal: splice(body, "amount", n), "parse_error"),
        (f"metadata_value_{name}", lambda body, n=literal: splice(body, "metadata", metadata_of(a=n)), "parse_error"),
        (
            f"metadata_nested_{name}",
            lambda body, n=literal: splice(body, "metadata", metadata_of(a=metadata_of(b=f"[1, {n}]"))),
            "parse_error",
        ),
        (f"idempotency_key_{name}", lambda body, n=literal: splice(body, "idempotencyKey", n), "parse_error"),
        (f"unknown_field_{name}", lambda body, n=literal: splice(body, "extra", n), "parse_error"),
        (f"whole_body_{name}", lambda body, n=literal: n, "parse_error"),
    ]
CORPUS += [
    (
        "metadata_250_times_1e4000",
        lambda body: splice(body, "metadata", "{" + ", ".join(f'"k{i}": 1e4000' for i in range(250)) + "}"),
        "parse_error",
    ),
    (
        "metadata_short_when_sent_but_too_large_once_stored",
        # 250 × 1e39: 2.5 KB sent, ~11 KB once written out as jsonb keeps it.
        lambda body: splice(body, "metadata", "{" + ", ".join(f'"k{i}": 1e39' for i in range(250)) + "}"),
        "validation_error",
    ),
    (
        "metadata_floats_short_when_sent_but_too_large_once_stored",
        lambda body: splice(body, "metadata", "{" + ", ".join(f'"k{i}": 1.5e-38' for i in range(250)) + "}"),
        "validation_error",
    ),
    (
        "metadata_nested_past_the_depth_bound",
        lambda body: splice(body, "metadata", metadata_of(a=deep(32))),
        "parse_error",
    ),
    ("metadata_nested_5000_deep", lambda body: splice(body, "metadata", metadata_of(a=deep(5_000))), "parse_error"),
    ("body_nested_30000_deep", lambda body: deep(30_000), "parse_error"),
    ("objects_nested_8000_deep", lambda body: '{"a": ' * 8_000 + "1" + "}" * 8_000, "parse_error"),
    ("NaN_in_metadata", lambda body: splice(body, "metadata", metadata_of(a="NaN")), "parse_error"),
    ("minus_Infinity_in_metadata", lambda body: splice(body, "metadata", metadata_of(a="-Infinity")), "parse_error"),
    ("NUL_in_metadata_value", lambda body: splice(body, "metadata", metadata_of(a=r'"x\u0000y"')), "parse_error"),
    ("NUL_in_metadata_key", lambda body: splice(body, "metadata", r'{"a\u0000": 1}'), "parse_error"),
    ("NUL_in_idempotency_key", lambda body: splice(body, "idempotencyKey", r'"k\u0000"'), "parse_error"),
    ("NUL_as_top_level_key", lambda body: body[:-1] + r', "\u0000": 1}', "parse_error"),
    ("duplicate_amount", lambda body: body[:-1] + ', "amount": "999.00"}', "parse_error"),
    ("duplicate_key_in_metadata", lambda body: splice(body, "metadata", '{"a": 1, "a": 2}'), "parse_error"),
    (
        "duplicate_key_nested_in_metadata",
        lambda body: splice(body, "metadata", '{"a": [{"b": 1, "b": 1}]}'),
        "parse_error",
    ),
    (
        "60_kb_of_duplicate_keys",
        lambda body: splice(body, "metadata", "{" + ", ".join(['"a": 1'] * 7_000) + "}"),
        "parse_error",
    ),
    (
        "60_kb_array_of_huge_exponents",
        lambda body: splice(body, "metadata", metadata_of(a="[" + ", ".join(["1e999999"] * 6_000) + "]")),
        "parse_error",
    ),
]
for name, literal in SURROGATES.items():
    CORPUS += [
        (
            f"{name}_as_metadata_value",
            lambda body, s=literal: splice(body, "metadata", metadata_of(a=s)),
            "parse_error",
        ),
        (f"{name}_as_metadata_key", lambda body, s=literal: splice(body, "metadata", f"{{{s}: 1}}"), "parse_error"),
        (f"{name}_as_idempotency_key", lambda body, s=literal: splice(body, "idempotencyKey", s), "parse_error"),
        (f"{name}_as_amount", lambda body, s=literal: splice(body, "amount", s), "parse_error"),
        (
            f"{name}_in_a_list",
            lambda body, s=literal: splice(body, "metadata", metadata_of(a=f'["ok", {s}]')),
            "parse_error",
        ),
    ]

CORPUS_PARAMS = [pytest.param(spoil, code, id=name) for name, spoil, code in CORPUS]


def send_timed(api, url: str, content: str, content_type: str = JSON):
    """Sends the body ATTEMPTS times; the last response and the fastest time."""
    fastest = float("inf")
    for _ in range(ATTEMPTS):
        started = time.perf_counter()
        response = api.generic("POST", url, content, content_type=content_type)
        fastest = min(fastest, time.perf_counter() - started)
    return response, fastest


def time_allowed(api, url: str, ordinary: str, floor: float) -> float:
    """Seconds a pathological body may take at `url`: SLOWER_THAN_ORDINARY
    times the fastest refusal of the `ordinary` body, and never less than
    `floor`."""
    _, baseline = send_timed(api, url, ordinary)
    return max(floor, SLOWER_THAN_ORDINARY * baseline)


# An ordinary refusal: JSON cut short.
ORDINARY = '{"amount": '
# An ordinary megabyte: one long plain string, decoded in linear time.
ORDINARY_MEGABYTE = '"' + "a" * 999_998 + '"'


def assert_refused(response, code: str, caplog) -> None:
    field = "metadata" if code == "validation_error" else None
    status = 400
    assert_error_envelope(response, status=status, code=code, field=field)
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]


@pytest.fixture
def wallets(funded_wallet):
    return funded_wallet("100.00"), funded_wallet("0")


@pytest.mark.parametrize(("spoil", "code"), CORPUS_PARAMS)
@pytest.mark.parametrize("endpoint", MONEY_ENDPOINTS)
def test_pathological_json_to_a_money_endpoint_is_refused_quickly_and_stores_nothing(
    endpoint, spoil, code, treasury_api, wallets, caplog
):
    source, destination = wallets
    url, body = money_request(endpoint, source=source.pk, destination=destination.pk, key=f"k-{uuid.uuid4()}")
    content = spoil(json.dumps(body))
    assert len(content.encode()) <= settings.API_MAX_BODY_BYTES, "the corpus stays under the body limit"
    before = ledger_state()

    allowed = time_allowed(treasury_api, url, ORDINARY, FAST_SECONDS)
    response, fastest = send_timed(treasury_api, url, content)

    assert_refused(response, code, caplog)
    assert fastest < allowed, f"{fastest * 1000:.1f} ms, allowed {allowed * 1000:.1f} ms"
    assert ledger_state() == before
    assert not TransactionLog.objects.filter(client=treasury_api.user).exclude(type="DEPOSIT").exists()


@pytest.mark.parametrize(("spoil", "code"), [p for p in CORPUS_PARAMS if p.values[1] == "parse_error"])
def test_pathological_json_to_wallet_creation_is_refused_quickly_and_opens_nothing(spoil, code, treasury_api, caplog):
    content = spoil(json.dumps({"userId": str(uuid.uuid4()), "currency": "USD", "metadata": {}, "amount": "1"}))
    before = ledger_state()

    allowed = time_allowed(treasury_api, "/api/wallets", ORDINARY, FAST_SECONDS)
    response, fastest = send_timed(treasury_api, "/api/wallets", content)

    assert_refused(response, code, caplog)
    assert fastest < allowed, f"{fastest * 1000:.1f} ms, allowed {allowed * 1000:.1f} ms"
    assert ledger_state() == before


MEGABYTE_BODIES = {
    "one_number_of_a_million_digits": lambda: "9" * 1_000_000,
    "a_million_levels_of_nesting": lambda: "[" * 500_000 + "]" * 500_000,
    "an_object_of_duplicate_keys": lambda: "{" + ", ".join(['"a": 1'] * 125_000) + "}",
    "an_array_of_huge_exponents": lambda: "[" + ", ".join(["1e999999"] * 100_000) + "]",
    "an_array_ending_in_a_lone_surrogate": lambda: "[" + '"abcdefgh", ' * 83_000 + r'"\ud800"]',
}


@pytest.mark.parametrize("make_body", [pytest.param(make, id=name) for name, make in MEGABYTE_BODIES.items()])
def test_a_megabyte_of_pathological_json_is_a_400_in_milliseconds(make_body, treasury_api, wallets, caplog):
    """With the body limit raised to let a whole megabyte through, decoding
    it still costs milliseconds: the cost follows the size, not the content."""
    source, destination = wallets
    content = make_body()
    assert len(content) >= 990_000
    before = ledger_state()

    with override_settings(API_MAX_BODY_BYTES=2**21, DATA_UPLOAD_MAX_MEMORY_SIZE=2**21):
        allowed = time_allowed(treasury_api, "/api/transfer", ORDINARY_MEGABYTE, MEGABYTE_SECONDS)
        response, fastest = send_timed(treasury_api, "/api/transfer", content)

    assert_refused(response, "parse_error", caplog)
    assert fastest < allowed, f"{fastest * 1000:.1f} ms, allowed {allowed * 1000:.1f} ms"
    assert ledger_state() == before


def test_a_megabyte_body_is_a_413_at_the_default_limit(treasury_api, wallets):
    response = treasury_api.generic("POST", "/api/transfer", "9" * 1_000_000, content_type=JSON)

    assert_error_envelope(response, status=413, code="payload_too_large")


# --- what the bounds still let through ---------------------------------------------------


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        pytest.param("12.5", 12.5, id="a_fraction"),
        pytest.param("1E+39", 10**39, id="a_40_digit_integer_written_with_an_exponent"),
        pytest.param("9" * 40, int("9" * 40), id="a_40_digit_integer"),
        pytest.param(r'"caf\u00e9 \ud83d\ude00"', "café 😀", id="escaped_text_with_a_surrogate_pair"),
        pytest.param(deep(30, '"leaf"'), [[["leaf"]]], id="nesting_within_the_bound"),
    ],
)
def test_metadata_within_the_bounds_is_stored(sent, stored, treasury_api, wallets):
    source, destination = wallets
    url, body = money_request("deposit", source=source.pk, destination=destination.pk, key=f"ok-{uuid.uuid4()}")
    content = splice(json.dumps(body), "metadata", metadata_of(value=sent))

    response = treasury_api.generic("POST", url, content, content_type=JSON)

    assert response.status_code == 201, response.content
    log = TransactionLog.objects.get(pk=response.json()["data"]["transactionId"])
    value = log.metadata["value"]
    if isinstance(stored, list):  # 30 levels: compare the innermost three
        for _ in range(27):
            value = value[0]
    assert value == stored


def zlib_bomb() -> bytes:
    """40 MB of JSON whitespace, deflated to about 40 KB."""
    return zlib.compress(b'{"amount": "1.00"' + b" " * 40_000_000 + b"}", 9)


@pytest.mark.parametrize(
    ("charset", "content"),
    [
        pytest.param("zlib", zlib_bomb(), id="zlib_bomb"),
        pytest.param("rot13", b'{"nzbhag": "1.00"}', id="rot13"),
        pytest.param("hex", b"7b7d", id="hex"),
        pytest.param("utf-16", '{"amount": "1.00"}'.encode("utf-16"), id="utf_16"),
        pytest.param("utf-7", b'{"amount": "1.00"}', id="utf_7"),
        pytest.param("latin-1", '{"amount": "1.00", "note": "caf\xe9"}'.encode("latin-1"), id="latin_1"),
    ],
)
def test_a_body_in_another_charset_than_utf_8_is_415_quickly(charset, content, treasury_api, wallets, caplog):
    """Python's codecs also name decompressors and transforms: the charset a
    client names is never used to decode its body."""
    source, destination = wallets
    url = f"/api/wallets/{destination.pk}/deposit"
    before = ledger_state()

    allowed = time_allowed(treasury_api, url, ORDINARY, FAST_SECONDS)
    response, fastest = send_timed(treasury_api, url, content, f"application/json; charset={charset}")

    assert_error_envelope(response, status=415, code="unsupported_media_type")
    assert fastest < allowed, f"{fastest * 1000:.1f} ms, allowed {allowed * 1000:.1f} ms"
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert ledger_state() == before


@pytest.mark.parametrize("charset", ["utf-8", "UTF-8", "utf8", "utf_8", '"utf-8"'])
def test_a_body_declared_utf_8_is_read(charset, treasury_api, wallets):
    source, destination = wallets
    url, body = money_request("deposit", source=source.pk, destination=destination.pk, key=f"ok-{uuid.uuid4()}")

    response = treasury_api.generic(
        "POST", url, json.dumps(body).encode(), content_type=f"application/json; charset={charset}"
    )

    assert response.status_code == 201, response.content
