"""read_stock_file on CSV input: formats, headers, validation, duplicates and the whole-file verdict."""

import polars as pl
import pytest

from stockhub.feeds import StockFile, read_stock_file
from stockhub.feeds.decode import Limits

BOOK = "9780141383743"  # ISBN-13 / EAN-13, from NearSt's example file
BOOK_ID = "09780141383743"
OTHER_BOOK = "9781409162988"
UPC = "036000291452"


def read(text: str, **kwargs) -> StockFile:
    kwargs.setdefault("default_currency", "GBP")
    return read_stock_file(text.encode(), **kwargs)


def rows(result: StockFile) -> list[tuple]:
    """(row, identifier, quantity, price_minor, currency, promotion_minor) per valid row."""
    return result.rows.rows()


def rejections(result: StockFile) -> list[tuple]:
    """(row, field, value, reason) per rejection."""
    return result.rejections.rows()


def test_nearst_example_file():
    result = read(f"barcode,price,quantity,currency\n{BOOK},6.99,1,GBP\n{OTHER_BOOK},20,0,GBP\n")
    assert rows(result) == [
        (2, BOOK_ID, 1, 699, "GBP", None),
        (3, "09781409162988", 0, 2000, "GBP", None),
    ]
    assert (result.line_count, result.superseded_count, result.invalid_reason) == (2, 0, None)
    assert result.warnings == ()
    assert result.rows.schema == {
        "row": pl.Int64,
        "identifier": pl.String,
        "quantity": pl.Int64,
        "price_minor": pl.Int64,
        "currency": pl.String,
        "promotion_minor": pl.Int64,
    }
    assert result.rejections.schema == {
        "row": pl.Int64,
        "field": pl.String,
        "value": pl.String,
        "reason": pl.String,
    }


def test_aliased_headers_with_semicolons_and_decimal_commas():
    result = read(f"EAN;Qty;Retail Price\n{BOOK};3;6,99\n{UPC};12;10,5\n")
    assert rows(result) == [(2, BOOK_ID, 3, 699, "GBP", None), (3, "00036000291452", 12, 1050, "GBP", None)]


@pytest.mark.parametrize(
    "header",
    ["UPC Code,MSRP,Quantity On Hand", "upc,price,QOH", "gtin,price,available", "sku,price,stock"],
)
def test_header_matching_ignores_case_and_whitespace(header):
    identifier = "ABC12345" if header.startswith("sku") else UPC
    result = read(f"{header}\n{identifier},1.50,4\n")
    assert [(r[2], r[3]) for r in rows(result)] == [(4, 150)]


def test_tab_separated():
    result = read(f"barcode\tprice\tquantity\tcurrency\n{BOOK}\t6.99\t2\tEUR\n")
    assert rows(result) == [(2, BOOK_ID, 2, 699, "EUR", None)]


def test_decimal_comma_is_not_accepted_in_a_comma_separated_file():
    result = read(f'barcode,price,quantity\n{BOOK},"6,99",1\n')
    assert rejections(result)[0][:3] == (2, "price", "6,99")


def test_headerless_file_is_read_by_position_with_a_warning():
    result = read(f"{BOOK},6.99,1,GBP\n{OTHER_BOOK},20,0\n")
    assert rows(result) == [(1, BOOK_ID, 1, 699, "GBP", None), (2, "09781409162988", 0, 2000, "GBP", None)]
    assert result.warnings == (
        "no recognised header: columns read by position (barcode, price, quantity, currency, promotion_amount)",
    )
    assert result.invalid_reason is None


def test_headerless_file_with_columns_in_another_order_is_invalid():
    # A price such as 6.99 is a well-formed SKU now; the barcode read as a price is too large.
    result = read(f"6.99,{BOOK},1\n20.00,{OTHER_BOOK},0\n15,{BOOK},3\n")
    assert result.invalid_reason.startswith("3 of 3 rows were rejected")
    assert "no header was recognised" in result.invalid_reason
    assert "read by position" in result.invalid_reason
    assert [r[1] for r in rejections(result)] == ["price"] * 3


def test_windows_1252_file_reads_accented_text():
    data = f"barcode,price,quantity,Catégorie\n{BOOK},6.99,1,Café\nCafé123,1.00,1,Thé\n".encode("cp1252")
    result = read_stock_file(data, default_currency="GBP")
    assert result.warnings == ("unrecognised columns ignored: Catégorie",)
    assert rows(result) == [(2, BOOK_ID, 1, 699, "GBP", None)]
    assert rejections(result)[0][:3] == (3, "identifier", "Café123")


def test_utf8_bom_and_crlf_line_endings():
    data = b"\xef\xbb\xbfbarcode,price,quantity,currency\r\n" + f"{BOOK},6.99,1,GBP\r\n".encode()
    result = read_stock_file(data, default_currency="EUR")
    assert rows(result) == [(2, BOOK_ID, 1, 699, "GBP", None)]
    assert result.warnings == ()


def test_blank_lines_are_skipped_and_rows_keep_their_line_numbers():
    result = read(f"\nbarcode,price,quantity\n\n{BOOK},6.99,1\n  \n,,\n{UPC},1,1\n")
    assert [r[0] for r in rows(result)] == [4, 7]
    assert result.line_count == 2


def test_cells_are_trimmed_and_short_rows_get_defaults():
    result = read(f"barcode,price,quantity,currency,promotion_amount\n  {BOOK} , 6.99 , 1 \n")
    assert rows(result) == [(2, BOOK_ID, 1, 699, "GBP", None)]


def test_first_non_empty_identifier_column_wins_gtin_then_barcode_then_sku():
    result = read(
        "sku,barcode,gtin,price,quantity\n"
        f"SKU00001,{BOOK},{UPC},1,1\n"
        f"SKU00002,{OTHER_BOOK},,1,1\n"
        "SKU00003,,,1,1\n"
    )
    assert [r[1] for r in rows(result)] == ["00036000291452", "09781409162988", "SKU00003"]


def test_unknown_columns_are_ignored_with_a_warning():
    result = read(f"barcode,title,price,quantity,colour\n{BOOK},A book,6.99,1,red\n")
    assert result.warnings == ("unrecognised columns ignored: title, colour",)
    assert len(rows(result)) == 1


@pytest.mark.parametrize(
    ("header", "missing"),
    [
        ("barcode,price", "header has no quantity column (accepted names: quantity, qty, qoh, available, stock, quantityonhand)"),
        ("barcode,quantity", "header has no price column (accepted names: price, msrp, retailprice)"),
        ("price,quantity,title", "header has no identifier column"),
    ],
)
def test_header_without_a_required_column_is_invalid(header, missing):
    result = read(f"{header}\n1,2,3\n")
    assert missing in result.invalid_reason
    assert result.rows.is_empty()
    assert result.line_count == 1


def test_bad_check_digit_is_rejected():
    result = read(f"barcode,price,quantity\n9780141383744,6.99,1\n{BOOK},6.99,1\n")
    assert rejections(result) == [(2, "identifier", "9780141383744", "invalid GTIN check digit (expected 3)")]
    assert len(rows(result)) == 1


@pytest.mark.parametrize("price", ["", "0", "0.00", "0,0"])
def test_empty_or_zero_price_is_discarded(price):
    result = read(f"barcode;price;quantity\n{BOOK};{price};1\n{UPC};1;1\n")
    assert rejections(result)[0][1:] == ("price", price or None, "price is empty or zero: row discarded")


@pytest.mark.parametrize(
    ("price", "reason"),
    [
        ("-1.00", "price must not be negative"),
        ("£6.99", "price must be a number"),
        ("6.99 GBP", "price must be a number"),
        ("1.299.00", "price must be a number"),
        ("6.999", "price has more decimal places than GBP allows (2)"),
        ("1234567890123", "price is too large"),
    ],
)
def test_invalid_prices_are_rejected_with_a_reason(price, reason):
    result = read(f"barcode;price;quantity\n{BOOK};{price};1\n{UPC};1;1\n")
    assert rejections(result)[0][1] == "price"
    assert rejections(result)[0][3].startswith(reason)


def test_prices_use_the_minor_units_of_their_currency():
    result = read(
        "barcode,price,quantity,currency\n"
        f"{BOOK},500,1,JPY\n"
        f"{OTHER_BOOK},1.234,1,KWD\n"
        f"{UPC},6.990,1,gbp\n"
        "ABCDEF1,5.5,1,JPY\n"
        "ABCDEF2,0.005,1,KWD\n"
    )
    assert [(r[3], r[4]) for r in rows(result)] == [(500, "JPY"), (1234, "KWD"), (699, "GBP")]
    assert [(r[0], r[3]) for r in rejections(result)] == [
        (5, "price has more decimal places than JPY allows (0)"),
        (6, "price is below 0.01"),
    ]


@pytest.mark.parametrize("quantity", ["2.5", "2,0", "1,000", "1.000", "", "+3", "three"])
def test_quantity_must_be_a_whole_number(quantity):
    result = read(f'barcode,price,quantity\n{BOOK},1,"{quantity}"\n')
    assert rejections(result) == [(2, "quantity", quantity or None, "quantity must be a whole number")]


def test_zero_negative_and_large_quantities():
    result = read(
        f"barcode,price,quantity\n{BOOK},1,0\n{OTHER_BOOK},1,-3\n{UPC},1,1000000000\nABCDEF1,1,1000000001\n"
    )
    assert [r[2] for r in rows(result)] == [0, -3, 1_000_000_000]
    assert rejections(result)[0][:3] == (5, "quantity", "1000000001")


def test_currency_defaults_is_case_insensitive_and_unknown_codes_are_rejected():
    result = read(f"barcode,price,quantity,currency\n{BOOK},1,1,\n{OTHER_BOOK},1,1,eur\n{UPC},1,1,XYZ\n", default_currency="USD")
    assert [r[4] for r in rows(result)] == ["USD", "EUR"]
    assert rejections(result)[0][:3] == (4, "currency", "XYZ")


def test_unknown_default_currency_is_a_programming_error():
    with pytest.raises(ValueError):
        read("barcode,price,quantity\n", default_currency="XYZ")


def test_promotion_amount_must_be_positive_and_below_the_price():
    result = read(
        "barcode,price,quantity,currency,saleprice\n"
        f"{BOOK},6.99,1,GBP,5.99\n"
        f"{OTHER_BOOK},6.99,1,GBP,6.99\n"
        f"{UPC},6.99,1,GBP,7.50\n"
        "ABCDEF1,6.99,1,GBP,0\n"
        "ABCDEF2,6.99,1,GBP,\n"
    )
    assert [(r[1], r[5]) for r in rows(result)] == [(BOOK_ID, 599), ("ABCDEF2", None)]
    assert [(r[0], r[1], r[3]) for r in rejections(result)] == [
        (3, "promotion_amount", "promotion_amount must be below the price"),
        (4, "promotion_amount", "promotion_amount must be below the price"),
        (5, "promotion_amount", "promotion_amount must be greater than 0"),
    ]


def test_duplicates_in_a_file_of_only_valid_rows_are_found_whatever_their_spelling():
    result = read(f"barcode,price,quantity\n{UPC},1.00,1\n{BOOK},6.99,1\n0{UPC},2.00,2\n00{UPC},3.00,3\n{OTHER_BOOK},4.00,4\n")
    assert rows(result) == [(3, BOOK_ID, 1, 699, "GBP", None), (5, "00036000291452", 3, 300, "GBP", None), (6, "09781409162988", 4, 400, "GBP", None)]
    assert rejections(result) == [(2, "identifier", UPC, "superseded by row 5"), (4, "identifier", f"0{UPC}", "superseded by row 5")]
    assert result.superseded_count == 2


def test_a_rejected_row_reports_its_first_failing_field():
    result = read("barcode,price,quantity,currency\n12 3,abc,1.5,XYZ\nABCDEF1,abc,1.5,XYZ\nABCDEF2,1,1.5,XYZ\n")
    assert [r[1] for r in rejections(result)] == ["identifier", "price", "quantity"]


def test_duplicates_the_last_row_wins_and_earlier_ones_are_superseded():
    result = read(
        "barcode,price,quantity\n"
        f"{UPC},1.00,1\n"  # row 2
        f"{BOOK},6.99,1\n"  # row 3
        f"0{UPC},2.00,2\n"  # row 4: the same GTIN spelled as EAN-13
        f"{BOOK},0,5\n"  # row 5: rejected, so it supersedes nothing
        f"00{UPC},3.00,3\n"  # row 6: and as GTIN-14
    )
    assert rows(result) == [(3, BOOK_ID, 1, 699, "GBP", None), (6, "00036000291452", 3, 300, "GBP", None)]
    assert rejections(result) == [
        (2, "identifier", UPC, "superseded by row 6"),
        (4, "identifier", f"0{UPC}", "superseded by row 6"),
        (5, "price", "0", "price is empty or zero: row discarded"),
    ]
    assert result.superseded_count == 2
    assert result.invalid_reason is None  # 1 rejected of 5; superseded rows do not count


def test_more_than_the_threshold_of_rejected_rows_makes_the_file_invalid():
    half_bad = f"barcode,price,quantity\n{BOOK},1,1\n{UPC},0,1\n"
    assert read(half_bad).invalid_reason is None  # exactly 50% is still applied
    result = read(half_bad, invalid_threshold=0.4)
    assert result.invalid_reason == "1 of 2 rows were rejected (more than 40% of the file)"
    assert len(rows(result)) == 1  # still returned, for the caller to show
    assert len(rejections(result)) == 1


@pytest.mark.parametrize("data", [b"", b"\n\r\n  \n", b"barcode,price,quantity\n", b"barcode,price,quantity\n\n,,\n"])
def test_file_without_data_rows_is_invalid(data):
    result = read_stock_file(data, default_currency="GBP")
    assert result.invalid_reason == "the file has no data rows"
    assert result.line_count == 0
    assert result.rows.is_empty() and result.rejections.is_empty()


@pytest.mark.parametrize(
    "data",
    [bytes(range(256)) * 4, b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100],
)
def test_binary_garbage_is_invalid_without_raising(data):
    result = read_stock_file(data, default_currency="GBP")
    assert result.invalid_reason
    assert result.rows.is_empty()


def test_utf16_text_is_read():
    data = f"barcode\tprice\tquantity\n{BOOK}\t6.99\t1\n".encode("utf-16")
    assert rows(read_stock_file(data, default_currency="GBP")) == [(2, BOOK_ID, 1, 699, "GBP", None)]


def test_a_badly_quoted_cell_does_not_lose_the_file():
    result = read(f'barcode,price,quantity,title\n{BOOK},6.99,1,"A book" \n{UPC},1,1,plain\n')
    assert [r[1] for r in rows(result)] == [BOOK_ID, "00036000291452"]
    assert any("quote" in w for w in result.warnings)


@pytest.mark.parametrize(
    ("text", "refused"),
    [
        (f"barcode,price,quantity\n{BOOK},6.99,1\n{BOOK},6.99,2\n{BOOK},6.99,3\n{BOOK},6.99,4", False),  # 5 lines
        (f"barcode,price,quantity\n{BOOK},6.99,1\n{BOOK},6.99,2\n{BOOK},6.99,3\n{BOOK},6.99,4\n", True),  # a 6th, empty
        (f"barcode,price,quantity\n{BOOK},6.99,1\n\n\n\n\n\n\n", True),  # blank lines count
        (f"barcode,price,quantity\n{BOOK},6.99,1" + "\n" * 1000, True),
        (f'barcode,price,quantity\n"{BOOK}",6.99,1\n', False),
        (f'barcode,price,quantity\n{BOOK},6.99,"1\n\n\n\n\n"\n', True),  # line breaks in a quoted cell count
        (f'barcode,price,quantity\n{BOOK},6.99,"1\n\n\n\n\n', True),  # and in a malformed one
    ],
)
def test_a_file_of_more_lines_than_the_limit_is_refused_whole(text, refused):
    result = read(text, limits=Limits(max_rows=5))
    lines = text.count("\n") + 1
    if refused:
        assert result.invalid_reason == f"the file is too long: it has {lines:,} rows, more than the 5 a file may have"
        assert result.rows.is_empty()
    else:
        assert result.invalid_reason is None
        assert result.rows.height == 1
