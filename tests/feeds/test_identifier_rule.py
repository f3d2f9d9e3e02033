"""One identifier rule per kind of store, in two forms (columnar for files, one value for orders,
stock writes and lookups), held to the same answers by one table of cases and generated values."""

from __future__ import annotations

import polars as pl
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from stockhub.feeds import InvalidIdentifier, rule_for
from stockhub.feeds.identifiers import restore_lost_zeros, restore_lost_zeros_one

BAD = object()  # refused (the reason is compared between the two forms)

# value, standard store, store with custom product data
CASES = [
    ("9780141383743", "09780141383743", "09780141383743"),  # EAN-13 / ISBN-13
    ("0141383747", "09780141383743", "09780141383743"),  # ISBN-10 of the same book
    (" 978-0-14-138374-3 ", "09780141383743", "09780141383743"),  # GTIN/ISBN-shaped: spaces and hyphens go
    ("0-14-138374-7", "09780141383743", "09780141383743"),
    ("036000291452", "00036000291452", "00036000291452"),  # UPC-A
    ("96385074", "00000096385074", "00000096385074"),  # GTIN-8
    ("9780141383744", BAD, "9780141383744"),  # a bad check digit: a custom identifier may be any digits
    ("978 0141 38374 4", BAD, BAD),  # ... but not with spaces
    ("1400000041", "09781400000043", "09781400000043"),  # a valid ISBN-10, and a valid GTIN-12 once padded: ISBN wins
    ("SKU001234", "SKU001234", "SKU001234"),
    # SKUs keep their characters and case (trimmed): letters, digits and - _ . /, 1 to 64
    ("TEE-L", "TEE-L", "TEE-L"),
    ("tee-l", "tee-l", "tee-l"),
    ("MUG.BLUE_01", "MUG.BLUE_01", "MUG.BLUE_01"),
    ("A/1", "A/1", "A/1"),
    ("ab-12", "ab-12", "ab-12"),
    ("  ab-12-cd ", "ab-12-cd", "ab-12-cd"),
    ("A", "A", "A"),
    ("x" * 64, "x" * 64, "x" * 64),
    ("x" * 65, BAD, BAD),
    ("AB 12", BAD, BAD),
    ("AB+12", BAD, BAD),
    ("é" * 8, BAD, BAD),
    ("", BAD, BAD),
    ("  ", BAD, BAD),
]

# A spreadsheet's numeric cell, and what is read: lost leading zeros restored
RESTORE_CASES = [
    ("36000291452", "036000291452"),  # UPC-A that lost its zero
    ("3600029143", "003600029143"),  # a GTIN-12 that lost two zeros (not a valid ISBN-10)
    ("123457", "00123457"),  # a GTIN-8 that lost two zeros
    ("141383747", "0141383747"),  # an ISBN-10 that lost its zero
    ("141383895", "0141383895"),  # ... also a valid GTIN-12 once padded: the ISBN wins
    ("1400000041", "1400000041"),  # 10 digits, a valid ISBN-10 as it is (and a GTIN-12 padded): the ISBN
    ("96385074", "96385074"),  # exact GTIN lengths are left alone
    ("6385074", "6385074"),  # not valid padded: left alone
    ("123456", "123456"),
    ("012345", "012345"),
    ("TEE-L", "TEE-L"),
]


@pytest.mark.parametrize("value, restored", RESTORE_CASES)
def test_lost_leading_zeros_are_restored_the_same_way_in_both_forms(value, restored):
    columnar = pl.DataFrame({"v": [value]}).select(restore_lost_zeros(pl.col("v"))).item()
    assert restore_lost_zeros_one(value) == columnar == restored


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
@example(["9780141383744", "AB12", "x" * 64, "x" * 65, " ab-12 ", "A/1", "978 0141 38374 4"])
def test_the_custom_rule_gives_the_same_answer_one_value_at_a_time(values):
    assert [_one(True, v) for v in values] == _column(True, values)


@settings(max_examples=100, deadline=None)
@given(st.lists(_SAMPLES, min_size=1, max_size=30))
@example(["TEE-L", "A/1", "978 0141 38374 4", "x" * 65, "AB+12"])
def test_the_standard_rule_gives_the_same_answer_one_value_at_a_time(values):
    assert [_one(False, v) for v in values] == _column(False, values)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text(alphabet="0123456789", min_size=1, max_size=15), min_size=1, max_size=30))
def test_restoring_lost_zeros_gives_the_same_answer_one_value_at_a_time(values):
    columnar = pl.DataFrame({"v": values}, schema={"v": pl.String}).select(restore_lost_zeros(pl.col("v")))["v"].to_list()
    assert [restore_lost_zeros_one(v) for v in values] == columnar


def test_a_value_fitting_an_isbn10_and_a_gtin_is_the_same_product_in_files_and_lookups():
    import io

    import xlsxwriter

    from stockhub.feeds import lookup_identifier, read_stock_file

    buffer = io.BytesIO()
    with xlsxwriter.Workbook(buffer) as book:
        sheet = book.add_worksheet()
        sheet.write_row(0, 0, ["barcode", "price", "quantity"])
        sheet.write_row(1, 0, [141383895, 6.99, 1])  # ISBN-10 0141383895 typed as a number (also a GTIN-12 padded)
        sheet.write_row(2, 0, [1400000041, 5, 2])  # a valid ISBN-10 as it is, and a GTIN-12 padded
    parsed = read_stock_file(buffer.getvalue(), default_currency="GBP")
    csv = read_stock_file(b"barcode,price,quantity\n1400000041,5,2\n", default_currency="GBP")
    assert parsed.rows["identifier"].to_list() == [lookup_identifier("0141383895"), lookup_identifier("1400000041")]
    assert csv.rows["identifier"].to_list() == [lookup_identifier("1400000041")] == [lookup_identifier("978-1-4000-0004-3")]
