"""read_stock_file on XLSX workbooks built in the test with xlsxwriter."""

import io

import pytest
import xlsxwriter
from stdnum import ean

from stockhub.feeds import StockFile, read_stock_file


def xlsx(*rows: list, first_row: int = 0, sheets: int = 1) -> bytes:
    buffer = io.BytesIO()
    with xlsxwriter.Workbook(buffer) as workbook:
        sheet = workbook.add_worksheet()
        for i, row in enumerate(rows):
            for j, cell in enumerate(row):
                if cell is not None:
                    sheet.write(first_row + i, j, cell)
        for _ in range(sheets - 1):
            workbook.add_worksheet().write_row(0, 0, ["not", "this", "sheet"])
    return buffer.getvalue()


def read(data: bytes) -> StockFile:
    return read_stock_file(data, default_currency="GBP")


def test_numeric_cells_are_read_as_the_text_a_person_typed():
    result = read(xlsx(["barcode", "price", "quantity"], [9780141383743, 6.99, 3], [9781409162988, 20, 0.0]))
    assert result.rows.rows() == [
        (2, "09780141383743", 3, 699, "GBP", None),
        (3, "09781409162988", 0, 2000, "GBP", None),
    ]


def test_barcodes_that_lost_leading_zeros_are_restored():
    ean8 = "0123456" + ean.calc_check_digit("0123456")
    result = read(
        xlsx(
            ["gtin", "price", "quantity"],
            [36000291452, 1, 1],  # UPC-A 036000291452 stored as a number: 11 digits
            [int(ean8), 1, 1],  # GTIN-8 stored as a number: 7 digits
            ["036000291452", 2, 1],  # the same UPC-A as text: supersedes the first row
            [3600029145, 1, 1],  # 10 digits: not a GTIN length, kept as a SKU
        )
    )
    assert [(r[0], r[1]) for r in result.rows.rows()] == [(3, ean8.zfill(14)), (4, "00036000291452"), (5, "3600029145")]
    assert result.superseded_count == 1


def test_restoring_zeros_needs_a_valid_check_digit():
    result = read(xlsx(["barcode", "price", "quantity"], [36000291453, 1, 1]))
    assert result.rows.rows()[0][1] == "36000291453"  # a valid SKU, not a padded GTIN


def test_only_the_identifier_column_is_padded():
    result = read(xlsx(["barcode", "price", "quantity"], ["ABCDEF1", 36000291452, 1]))
    assert result.rows.rows()[0][3] == 3600029145200


def test_float_noise_from_formulas_is_rounded_away():
    noisy = 1.1 + 2.2  # 3.3000000000000003, as a formula such as =A1+B1 would store it
    result = read(xlsx(["barcode", "price", "quantity"], [9780141383743, noisy, 1]))
    assert result.rows.rows()[0][3] == 330


def test_fractional_quantity_cell_is_rejected():
    result = read(xlsx(["barcode", "price", "quantity"], [9780141383743, 1, 2.5]))
    assert result.rejections.rows() == [(2, "quantity", "2.5", "quantity must be a whole number")]


def test_only_the_first_sheet_is_read_and_rows_are_sheet_row_numbers():
    result = read(xlsx(["barcode", "price", "quantity"], [None], ["ABCDEF1", "6.99", "1"], first_row=2, sheets=2))
    assert result.rows.rows() == [(5, "ABCDEF1", 1, 699, "GBP", None)]
    assert result.line_count == 1


def test_headerless_workbook_is_read_by_position():
    result = read(xlsx([9780141383743, 6.99, 1, "EUR", 5]))
    assert result.rows.rows() == [(1, "09780141383743", 1, 699, "EUR", 500)]
    assert result.warnings[0].startswith("no recognised header")


def test_empty_workbook_has_no_data_rows():
    assert read(xlsx()).invalid_reason == "the file has no data rows"


@pytest.mark.parametrize("data", [b"PK\x03\x04" + b"\x00" * 200, xlsx(["a"])[:300]])
def test_corrupt_zip_is_invalid_without_raising(data):
    result = read(data)
    assert "not a readable XLSX workbook" in result.invalid_reason
    assert result.rows.is_empty()
