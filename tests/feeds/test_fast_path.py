"""The parse's vectorised fast path (plain GTINs, two-decimal prices, plain counts) gives exactly
the answers of the detailed rules, which only the rows failing it go through."""

from __future__ import annotations

import polars as pl
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from stockhub.feeds.stock_file import checked_rows


def _gs1(body: str) -> str:
    total = sum(int(d) * (3 if k % 2 == 0 else 1) for k, d in enumerate(reversed(body)))
    return str((10 - total % 10) % 10)


@st.composite
def _gtins(draw) -> str:
    length = draw(st.sampled_from([7, 8, 9, 10, 11, 12, 13, 14, 15]))
    body = draw(st.text(alphabet="0123456789", min_size=length - 1, max_size=length - 1))
    check = _gs1(body) if draw(st.booleans()) else draw(st.sampled_from("0123456789"))
    value = body + check
    return draw(st.sampled_from([value, f" {value}", value[:4] + "-" + value[4:], value + "X"]))


_IDENTIFIERS = st.one_of(
    _gtins(), _gtins(), st.none(),
    st.sampled_from(["0141383747", "TEE-L", "tee l", "x" * 65, "", "+123456789012", "-12345678901", "+9780141383743", "97801413837٤",
                     "123456789012345678901234", "18446744073709551616", "0000000000000"]),
    st.text(alphabet="0123456789 -Xx+", max_size=16),
)
_PRICES = st.one_of(
    st.from_regex(r"-?[0-9]{0,14}([.,][0-9]{0,4})?", fullmatch=True),
    st.sampled_from(["6.99", "0.00", "0.01", "000000000000.50", "1e3", "£6.99", "6.9", "6.", ".99", "1,234.56", "999999999999.99",
                     "+6.99", "+6", "-6.99", "06.99", "6.999", "6.995", "6.990", "٦.٩٩", "6.9.9", "6..99", "1.+9", "1.-9", "99999999999999999999"]),
    st.none(),
)
_QUANTITIES = st.one_of(
    st.from_regex(r"[-+]?[0-9]{0,12}", fullmatch=True),
    st.sampled_from(["3", "-0", "+0", "+3", "0010", "1.5", "3 ", "1000000000", "-1000000000", "1000000001", "999999999", "00000000001000000000",
                     "99999999999999999999", "-9223372036854775808", "٣"]),
    st.none(),
)
_CURRENCIES = st.one_of(st.none(), st.sampled_from(["GBP", "gbp", "EUR", "JPY", "KWD", "XXX", "usd", "£"]))
_OPTIONAL = st.one_of(st.none(), st.none(), st.sampled_from(["1.00", "0", "3", "abc"]))
_ROWS = st.lists(st.tuples(_IDENTIFIERS, _PRICES, _QUANTITIES, _CURRENCIES, _OPTIONAL, _OPTIONAL), min_size=1, max_size=40)


def _fields(rows) -> pl.DataFrame:
    names = ("identifier_raw", "price_raw", "quantity_raw", "currency_raw", "promotion_raw", "safety_raw")
    frame = pl.DataFrame([dict(zip(names, row)) for row in rows], schema={name: pl.String for name in names})
    return frame.with_row_index("row", offset=2).with_columns(pl.col("row").cast(pl.Int64))


def _same(rows, default: str, decimal_comma: bool, custom: bool, spreadsheet: bool) -> None:
    fields = _fields(rows)
    options = dict(decimal_comma=decimal_comma, custom_identifiers=custom, spreadsheet=spreadsheet)
    fast = checked_rows(fields, default, **options)
    detailed = checked_rows(fields, default, **options, fast_path=False)
    assert_frame_equal(fast, detailed)


@pytest.mark.parametrize("decimal_comma", [False, True], ids=["dot", "comma"])
@pytest.mark.parametrize("custom", [False, True], ids=["standard", "custom"])
@settings(max_examples=150, deadline=None)
@given(rows=_ROWS, spreadsheet=st.booleans(), default=st.sampled_from(["GBP", "JPY"]))
@example(rows=[("9780141383743", "6.99", "3", None, None, None)], spreadsheet=False, default="GBP")
@example(rows=[("9780141383744", "6.99", "3", None, None, None)], spreadsheet=False, default="GBP")
@example(rows=[("96385074", "6", "-2", "eur", None, None), ("96385074", "7.00", "1", None, None, None)], spreadsheet=False, default="GBP")
def test_the_fast_path_agrees_with_the_detailed_rules(rows, spreadsheet, default, decimal_comma, custom):
    _same(rows, default, decimal_comma, custom, spreadsheet)


@pytest.mark.parametrize("decimal_comma", [False, True], ids=["dot", "comma"])
@settings(max_examples=100, deadline=None)
@given(rows=_ROWS, currency=_CURRENCIES, blanks=st.sampled_from([0.0, 0.3, 1.0]), default=st.sampled_from(["GBP", "JPY", "EUR"]), data=st.data())
def test_one_currency_throughout_a_file_agrees_with_the_detailed_rules(rows, currency, blanks, default, data, decimal_comma):
    """A file naming one currency in every row (the usual file, checked once for the whole file)."""
    rows = [(row[0], row[1], row[2], None if data.draw(st.floats(0, 1)) < blanks else currency, *row[4:]) for row in rows]
    _same(rows, default, decimal_comma, custom=False, spreadsheet=False)


_EDGES = {  # field index → values next to what the fast path takes, each in an otherwise plain row
    0: ["+9780141383743", "-9780141383743", "9780141383743 ", "97801413837٤", "978014138374", "09780141383743", "00000000", "0000000000000",
        "96385074", "036000291452", "10036000291459", "123456789012345678901234", "18446744073709551616"],
    1: ["+6.99", "+6", "-6.99", "-0", "06.99", "6.999", "6.995", "6.990", "6.9", "6,99", "6,999", "1,234.56", "٦.٩٩", "6.9.9", "6..99", "1.+9",
        "1.-9", "0.00", "0.01", "000.01", "999999999999.99", "1000000000000", "99999999999999999999", ".99", "6.", "1e3"],
    2: ["+3", "-3", "-0", "+0", "0010", "1000000000", "-1000000000", "1000000001", "00000000001000000000", "99999999999999999999",
        "-9223372036854775808", "٣", "3.0", ""],
    3: ["gbp", "Gbp", "GBP", "EUR", "JPY", "jpy", "XXX", "£", ""],
}


@pytest.mark.parametrize("decimal_comma", [False, True], ids=["dot", "comma"])
@pytest.mark.parametrize("field", sorted(_EDGES))
def test_values_next_to_the_fast_path_agree_with_the_detailed_rules(field, decimal_comma):
    plain = ["9780141383743", "6.99", "3", "GBP", None, None]
    for value in _EDGES[field]:
        edge = [*plain[:field], value or None, *plain[field + 1 :]]
        for rows in ([edge], [edge, plain], [edge] * 3):  # alone, beside a fast row, and throughout a file
            for default in ("GBP", "JPY"):
                _same([tuple(r) for r in rows], default, decimal_comma, custom=False, spreadsheet=False)


def test_a_feed_of_plain_gtins_takes_the_fast_path_for_every_row():
    rows = [("9780141383743", "6.99", "3", None, None, None), ("036000291452", "12", "0", "EUR", None, None)]
    checked = checked_rows(_fields(rows), "GBP", decimal_comma=False, custom_identifiers=False)
    assert checked.select("identifier", "price_minor", "quantity", "currency").rows() == [
        ("09780141383743", 699, 3, "GBP"), ("00036000291452", 1200, 0, "EUR"),
    ]
    assert checked["reject"].is_null().all()
