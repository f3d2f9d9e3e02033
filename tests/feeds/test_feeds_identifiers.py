"""Identifier canonicalisation, with python-stdnum as the oracle for the check-digit arithmetic."""

import polars as pl
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from stdnum import ean, isbn

from stockhub.feeds import InvalidIdentifier, canonical_identifier, canonical_identifiers

DIGITS = "0123456789"


def canonical(values: list[str]) -> list[tuple[str | None, str | None]]:
    return canonical_identifiers(pl.Series(values, dtype=pl.String)).rows()


def test_upc_a_ean13_gtin14_and_isbn10_spellings_are_one_identifier():
    assert {
        canonical_identifier("036000291452"),  # UPC-A
        canonical_identifier("0036000291452"),  # EAN-13
        canonical_identifier("00036000291452"),  # GTIN-14
    } == {"00036000291452"}
    assert canonical_identifier("0-14-044913-2") == canonical_identifier("978-0-14-044913-6") == "09780140449136"
    assert canonical_identifier("080442957X") == canonical_identifier("080442957x") == "09780804429573"


def test_gtin8_is_padded_to_14_digits():
    assert canonical_identifier("96385074") == "00000096385074"


def test_spaces_and_hyphens_are_ignored():
    assert canonical_identifier(" 978 0141 38374 3 ") == "09780141383743"


def test_bad_gtin_check_digit_is_rejected_with_the_expected_digit():
    with pytest.raises(InvalidIdentifier, match=r"invalid GTIN check digit \(expected 3\)"):
        canonical_identifier("9780141383744")


def test_invalid_identifier_is_a_value_error():
    with pytest.raises(ValueError):
        canonical_identifier("")


def test_sku_keeps_its_case_and_characters_up_to_64():
    assert canonical_identifier("AbC123") == "AbC123"
    assert canonical_identifier("X" * 64) == "X" * 64
    assert canonical_identifier(" TEE-L ") == "TEE-L"
    rows = canonical(["AB 12", "X" * 65, "ABC+123", "Café12", None, "  "])
    assert [identifier for identifier, _ in rows] == [None] * 6
    reasons = [reason for _, reason in rows]
    assert all("a SKU is 1–64 letters, digits and - _ . /" in r for r in reasons[:4])
    assert reasons[4:] == ["missing identifier", "missing identifier"]


def test_a_ten_character_value_failing_the_isbn_check_is_a_sku():
    assert canonical_identifier("014044913X") == "014044913X"


def test_digit_strings_of_other_lengths_are_skus():
    assert canonical_identifier("998010033") == "998010033"


# --- oracle: python-stdnum -----------------------------------------------------------------
# Each example checks a batch of values in one polars query: fewer, larger examples keep the
# tests fast while still covering thousands of values.
batch = settings(max_examples=25)


def digit_strings(length: int) -> st.SearchStrategy[str]:
    return st.text(alphabet=DIGITS, min_size=length, max_size=length)


def valid_gtin(length: int) -> st.SearchStrategy[str]:
    return digit_strings(length - 1).map(lambda body: body + ean.calc_check_digit(body))


gtin_candidates = st.sampled_from([8, 12, 13, 14]).flatmap(
    lambda n: st.one_of(valid_gtin(n), digit_strings(n))
)
def to_valid_isbn10(body: str) -> str:
    isbn13 = "978" + body
    return isbn.to_isbn10(isbn13 + ean.calc_check_digit(isbn13))


valid_isbn10 = digit_strings(9).map(to_valid_isbn10)
isbn10_candidates = st.one_of(
    valid_isbn10,
    st.tuples(digit_strings(9), st.sampled_from("0123456789Xx")).map("".join),
)


@batch
@given(st.lists(gtin_candidates, min_size=1, max_size=200))
def test_gtin_verdict_and_canonical_form_agree_with_stdnum(values):
    for value, (identifier, reason) in zip(values, canonical(values)):
        if ean.is_valid(value):
            assert (identifier, reason) == (value.zfill(14), None)
        else:
            assert identifier is None
            assert reason.startswith("invalid GTIN check digit")


@batch
@given(st.lists(isbn10_candidates, min_size=1, max_size=200))
def test_isbn10_verdict_and_conversion_agree_with_stdnum(values):
    for value, (identifier, reason) in zip(values, canonical(values)):
        assert reason is None
        if isbn.is_valid(value):
            assert identifier == "0" + isbn.compact(isbn.to_isbn13(value))
        else:  # falls through to the SKU rule
            assert identifier == value


@batch
@given(st.lists(valid_isbn10, min_size=1, max_size=200))
def test_hyphenated_isbn10_gives_the_same_identifier(values):
    assert canonical([isbn.format(v) for v in values]) == canonical(values)


@batch
@given(st.lists(st.sampled_from([8, 12, 13]).flatmap(valid_gtin), min_size=1, max_size=200))
def test_leading_zeros_do_not_change_a_gtin(values):
    assert canonical([v.zfill(14) for v in values]) == canonical(values)


_SAMPLES = st.one_of(
    st.text(alphabet="0123456789", min_size=0, max_size=16),
    st.text(alphabet="0123456789Xx -", min_size=8, max_size=16),
    st.text(alphabet="abcXYZ0123456789", min_size=4, max_size=36),
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=40),
    st.builds(lambda body: body + "X", st.text(alphabet="0123456789", min_size=9, max_size=9)),
)


@settings(max_examples=300)
@given(st.lists(_SAMPLES, min_size=1, max_size=40))
@example(["\x1f", "\x1c12345678", "abcde", "abcdef", "ab12" * 8, "ab12" * 8 + "c", "0141383747", "014138374X", "96385074", "96385075", " 978-0-14-138374-3 ", "", "é" * 8])
def test_one_value_at_a_time_gives_the_columnar_answer(values):
    columnar = canonical_identifiers(pl.Series(values, dtype=pl.String)).to_dicts()
    for value, expected in zip(values, columnar, strict=True):
        try:
            got = {"identifier": canonical_identifier(value), "reason": None}
        except InvalidIdentifier as error:
            got = {"identifier": None, "reason": str(error)}
        assert got == expected, value
