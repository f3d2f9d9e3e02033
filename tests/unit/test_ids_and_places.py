from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from stockhub import ids
from stockhub.domain import places


CODEC = ids.Codec(b"test-secret")


@given(st.integers(0, 2**40 - 1), st.sampled_from(list(ids.PREFIXES)))
def test_public_ids_round_trip_short_and_prefixed(number, kind):
    public_id = CODEC.encode(kind, number)
    prefix, body = public_id.split("_")
    assert prefix == ids.PREFIXES[kind] and len(body) == 11 and body.isalnum()
    assert CODEC.decode(kind, public_id) == number


@given(st.integers(0, 2**40 - 1))
def test_an_id_of_one_kind_is_no_id_of_another(number):
    store_id = CODEC.encode("store", number)
    assert CODEC.decode("upload", store_id) is None
    for kind, prefix in ids.PREFIXES.items():
        if kind != "store":
            assert CODEC.decode(kind, f"{prefix}_{store_id[4:]}") is None


def test_two_installs_hand_out_different_ids_for_the_same_row():
    other = ids.Codec(b"another install's secret")
    for kind in ("organization", "store"):
        assert {CODEC.encode(kind, n) for n in range(1, 50)}.isdisjoint(other.encode(kind, n) for n in range(1, 50))
        assert other.decode(kind, CODEC.encode(kind, 1)) != 1


def test_consecutive_rows_show_no_sequence():
    bodies = [CODEC.encode("organization", n)[4:] for n in range(1, 201)]
    for before, after in zip(bodies, bodies[1:]):
        assert before[:4] != after[:4] and sum(a != b for a, b in zip(before, after)) >= 6
    assert len({body[1] for body in bodies}) > 40  # a leading character is spread, not a counter


def test_ids_are_stable_for_one_secret():
    assert ids.Codec(b"test-secret").encode("store", 7) == CODEC.encode("store", 7)


def test_malformed_ids_decode_to_nothing():
    good = CODEC.encode("store", 5)
    for bad in ("", "str_", "str", "str_!!", "brd_abc", "str_a b", good + "0", good[:-1], "str_zzzzzzzzzzz", good.upper(), good.replace("_", "-")):
        assert CODEC.decode("store", bad) is None


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
