"""Amount settings (CLIENT_EXPOSURE_LIMIT, SETTLEMENT_ALERT_MAGNITUDE) are
read by one reader, which stops the start-up on anything but a plain amount:
a limit must never read as no limit (NaN compares false with everything)."""

from decimal import Decimal

import pytest

from wallet_project.settings import env_amount, env_amounts_by_currency
from wallets.models import MAX_AMOUNT


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", Decimal(0)),
        ("1000000.00", Decimal("1000000.00")),
        ("12.5", Decimal("12.5")),
        (str(MAX_AMOUNT), MAX_AMOUNT),
    ],
)
def test_a_plain_amount_is_read_exactly(monkeypatch, text, expected):
    monkeypatch.setenv("SOME_LIMIT", text)

    assert env_amount("SOME_LIMIT", default="1.00") == expected


def test_the_default_is_read_by_the_same_rules(monkeypatch):
    monkeypatch.delenv("SOME_LIMIT", raising=False)

    assert env_amount("SOME_LIMIT", default="250.00") == Decimal("250.00")
    with pytest.raises(SystemExit):
        env_amount("SOME_LIMIT", default="NaN")


@pytest.mark.parametrize(
    "text",
    ["NaN", "nan", "sNaN", "Infinity", "inf", "-Infinity", "-1", "-0.01", "+5", "1e20", "1E3", "1.001", "1_000",
     "", " ", "12,50", "١٢", "0x10", "1000000000000000000.00"],
)  # fmt: skip
def test_anything_else_stops_the_start_up_naming_the_setting(monkeypatch, text):
    monkeypatch.setenv("SOME_LIMIT", text)

    with pytest.raises(SystemExit, match="SOME_LIMIT"):
        env_amount("SOME_LIMIT", default="1.00")


# --- per currency: CORRECTION_SINGLE_APPROVAL_BELOW --------------------------------------


def test_a_per_currency_amount_setting_reads_each_currency_exactly(monkeypatch):
    monkeypatch.setenv("SOME_THRESHOLDS", " NGN:50000.00, USD:100 ,GBP:0.5")

    assert env_amounts_by_currency("SOME_THRESHOLDS") == {
        "NGN": Decimal("50000.00"),
        "USD": Decimal("100"),
        "GBP": Decimal("0.5"),
    }


def test_unset_or_empty_names_no_currency(monkeypatch):
    monkeypatch.delenv("SOME_THRESHOLDS", raising=False)
    assert env_amounts_by_currency("SOME_THRESHOLDS") == {}
    monkeypatch.setenv("SOME_THRESHOLDS", "  ")
    assert env_amounts_by_currency("SOME_THRESHOLDS") == {}


@pytest.mark.parametrize(
    "text",
    ["NGN", "NGN:", "NGN:NaN", "NGN:-1", "NGN:1e3", "NGN:1.001", "ngn:10", "XXX:10", "NGN:1,USD", "NGN:1,NGN:2",
     "NGN=10", "NGN:1000000000000000000.00", ":10"],
)  # fmt: skip
def test_anything_else_in_a_per_currency_setting_stops_the_start_up(monkeypatch, text):
    monkeypatch.setenv("SOME_THRESHOLDS", text)

    with pytest.raises(SystemExit, match="SOME_THRESHOLDS"):
        env_amounts_by_currency("SOME_THRESHOLDS")


def test_by_default_no_correction_is_applied_by_one_person():
    from django.conf import settings

    assert settings.CORRECTION_SINGLE_APPROVAL_BELOW == {}
