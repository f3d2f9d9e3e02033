from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from stockhub import ids
from stockhub.domain import places


@given(st.integers(1, 2**53))
def test_public_ids_round_trip_and_belong_to_one_kind(number):
    store_id = ids.encode("store", number)
    assert store_id.startswith("str_") and ids.decode("store", store_id) == number
    assert ids.decode("upload", store_id) is None
    assert ids.decode("upload", "upl_" + store_id[4:]) != number


def test_malformed_ids_decode_to_nothing():
    for bad in ("", "str_", "str", "str_!!", "brd_abc", "str_a b"):
        assert ids.decode("store", bad) is None


def test_countries_bring_their_currency_and_timezone():
    assert places.default_currency("GB") == "GBP" and places.default_timezone("GB") == "Europe/London"
    assert places.default_currency("DE") == "EUR" and places.default_timezone("DE") == "Europe/Berlin"
    assert places.default_timezone("US") is None  # several clocks: the store must say
    assert not places.is_country("ZZ") and not places.is_country("XX")


def test_currencies_and_their_minor_units():
    assert [places.currency_exponent(c) for c in ("JPY", "GBP", "EUR", "KWD")] == [0, 2, 2, 3]
    assert places.is_currency("GBP") and not places.is_currency("XYZ") and not places.is_currency("GB")
    try:
        places.currency_exponent("XYZ")
    except ValueError as error:
        assert "XYZ" in str(error)
    else:
        raise AssertionError("an unknown currency has no exponent")
