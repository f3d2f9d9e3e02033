"""One identifier rule per kind of store, in two forms (columnar for files, one value for orders,
stock writes and lookups), held to the same answers by one table of cases and generated values."""

from __future__ import annotations

import polars as pl
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from stockhub.feeds import InvalidIdentifier, rule_for

BAD = object()  # refused (the reason is compared between the two forms)

# value, standard store, store with custom product data
CASES = [
    ("9780141383743", "09780141383743", "09780141383743"),  # EAN-13 / ISBN-13
    ("0141383747", "09780141383743", "09780141383743"),  # ISBN-10 of the same book
    (" 978-0-14-138374-3 ", "09780141383743", "09780141383743"),
    ("036000291452", "00036000291452", "00036000291452"),  # UPC-A
    ("96385074", "00000096385074", "00000096385074"),  # GTIN-8
    ("9780141383744", BAD, "9780141383744"),  # a bad check digit: a custom identifier may be any digits
    ("SKU001234", "SKU001234", "SKU001234"),
    ("ab-12-cd", "ab12cd", "ab12cd"),
    ("AB12", BAD, "AB12"),  # too short for a standard SKU
    ("A", BAD, "A"),
    ("x" * 32, "x" * 32, "x" * 32),
    ("x" * 33, BAD, "x" * 33),
    ("x" * 36, BAD, "x" * 36),
    ("x" * 37, BAD, BAD),
    ("AB_123", BAD, BAD),
    ("é" * 8, BAD, BAD),
    ("", BAD, BAD),
    ("  ", BAD, BAD),
]


def _one(custom: bool, value: str) -> dict:
    try:
        return {"identifier": rule_for(custom).one(value), "reason": None}
    except InvalidIdentifier as error:
        return {"identifier": None, "reason": str(error)}


def _column(custom: bool, values: list[str]) -> list[dict]:
    frame = pl.LazyFrame({"value": pl.Series(values, dtype=pl.String).str.strip_chars()})
    return rule_for(custom).column(frame, "value").select("identifier", "reason").collect().to_dicts()


@pytest.mark.parametrize("custom", [False, True], ids=["standard", "custom"])
def test_each_rule_answers_the_table_of_cases_in_both_forms(custom):
    values = [case[0] for case in CASES]
    columnar = _column(custom, values)
    for (value, *expected), got_column in zip(CASES, columnar, strict=True):
        want = expected[custom]
        got_one = _one(custom, value)
        assert got_one == got_column, value
        if want is BAD:
            assert got_one["identifier"] is None and got_one["reason"], value
        else:
            assert got_one == {"identifier": want, "reason": None}, value


_SAMPLES = st.one_of(
    st.text(alphabet="0123456789", min_size=0, max_size=16),
    st.text(alphabet="0123456789Xx -", min_size=8, max_size=16),
    st.text(alphabet="abcXYZ0123456789-", min_size=1, max_size=40),
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=40),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_SAMPLES, min_size=1, max_size=30))
@example(["9780141383744", "AB12", "x" * 36, "x" * 37, " ab-12 "])
def test_the_custom_rule_gives_the_same_answer_one_value_at_a_time(values):
    assert [_one(True, v) for v in values] == _column(True, values)
