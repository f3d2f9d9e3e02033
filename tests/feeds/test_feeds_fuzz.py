"""Any bytes into the feed readers give rows and rejections or a clean invalid reason: never an
exception, never a crash. Bounded examples (seconds); the shapes that once crashed the server are
explicit examples."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st

import hostile_files
from stockhub.feeds import read_product_file, read_stock_file
from stockhub.feeds.decode import Limits
from stockhub.feeds.product_file import PRODUCT_SCHEMA
from stockhub.feeds.sandbox import WARM_CHILDREN, ReaderFailed, Sandbox, prestarted_pids, read_isolated
from stockhub.feeds.stock_file import REJECTION_SCHEMA, ROW_SCHEMA, SHOWN_VALUE_CHARS

# Small enough that whatever passes them is cheap to build in this process (the sandbox is
# what bounds a real upload): 64 columns by 20,000 rows.
SMALL = Limits(max_columns=64, max_rows=20_000, max_cell_chars=32_767)
CRASHERS = [
    hostile_files.XFD1048576,
    hostile_files.ZZZZZZ,
    hostile_files.SEMICOLONS_1MB,
    hostile_files.far_cell("E99999999", 99999999),
]


def assert_clean(parsed, schema: dict) -> None:
    assert parsed.invalid_reason is None or (isinstance(parsed.invalid_reason, str) and parsed.invalid_reason)
    assert dict(parsed.rows.schema) == schema
    assert dict(parsed.rejections.schema) == REJECTION_SCHEMA
    assert parsed.rows.height + parsed.rejections.height - parsed.superseded_count <= parsed.line_count
    assert parsed.rejections["value"].str.len_chars().max() in (None, *range(SHOWN_VALUE_CHARS + 1))


def read_both(data: bytes, limits: Limits = SMALL) -> None:
    assert_clean(read_stock_file(data, default_currency="GBP", limits=limits), ROW_SCHEMA)
    assert_clean(read_product_file(data, limits=limits), PRODUCT_SCHEMA)


FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@FUZZ
@given(st.binary(max_size=2048))
@example(b"PK\x03\x04" + b"\x00" * 100)
@example(b"\xd0\xcf\x11\xe0")
@example(b"\xff\xfe" + "barcode,price\n".encode("utf-16-le"))
@example(b"\x00")
def test_any_bytes(data):
    read_both(data)


CSV_CHARS = st.sampled_from(list('0123456789;,\t\n\r" =+-@.aé€') + ["9780141383743", "barcode", "price", "quantity", "qty"])


@FUZZ
@given(st.lists(CSV_CHARS, max_size=400).map(lambda parts: "".join(parts).encode()))
@example("barcode,price,quantity\n9780141383743,6.99,3\n".encode())
@example(b'"abc" ,1\n"unterminated')
@example(b"barcode;price\n" + b";" * 100_000)
def test_any_text(data):
    read_both(data)


CELL_REF = st.tuples(st.text("ABCDEFXZ", min_size=1, max_size=7), st.integers(1, 10**17))
CELL_VALUE = st.one_of(st.integers(-(10**20), 10**20).map(lambda n: f"<v>{n}</v>"), st.text("09a<&;= ", max_size=20).map(
    lambda t: f"<is><t>{t.replace('&', '&amp;').replace('<', '&lt;')}</t></is>"
))


@FUZZ
@given(st.lists(st.tuples(CELL_REF, CELL_VALUE), max_size=12))
def test_any_sheet(cells):
    inline = ' t="inlineStr"'
    sheet = hostile_files.HEADER + "".join(
        f'<row r="{row}"><c r="{col}{row}"{inline if value.startswith("<is>") else ""}>{value}</c></row>'
        for (col, row), value in cells
    )
    read_both(hostile_files.xlsx(sheet))


@pytest.mark.parametrize("data", CRASHERS, ids=["XFD1048576", "ZZZZZZ99999999999", "1MB-semicolons", "E99999999"])
def test_the_shapes_that_crashed_the_server_are_refused_with_default_limits(data):
    for parsed, schema in (
        (read_stock_file(data, default_currency="GBP"), ROW_SCHEMA),
        (read_product_file(data), PRODUCT_SCHEMA),
    ):
        assert_clean(parsed, schema)
        assert parsed.invalid_reason.startswith("the file is too")


def test_a_giant_shared_string_is_refused_before_it_is_read():
    parsed = read_stock_file(hostile_files.shared_string_500mb(), default_currency="GBP")
    assert parsed.invalid_reason == "the workbook holds a text longer than the 32,767 characters a cell may hold"


def test_the_sandbox_answers_what_the_reader_answers():
    body = b"barcode,price,quantity\n9780141383743,6.99,3\nnope,1,1\n"
    isolated = read_isolated("stock", body, {"default_currency": "GBP"})
    direct = read_stock_file(body, default_currency="GBP")
    assert isolated.rows.equals(direct.rows) and isolated.rejections.equals(direct.rejections)
    assert (isolated.line_count, isolated.warnings, isolated.invalid_reason) == (direct.line_count, direct.warnings, None)
    products = read_isolated("products", b"barcode,brand\n", {})
    assert products.invalid_reason.startswith("header has no title")


def test_a_reader_that_runs_out_of_memory_ends_only_its_child(tmp_path):
    """64 columns by a million rows passes the checks; the reader's dense sheet needs 2 GB."""
    path = tmp_path / "stock.xlsx"
    path.write_bytes(hostile_files.far_cell("BL1048576", 1048576))
    with pytest.raises(ReaderFailed, match=r"^the file could not be read: the reader ran out of memory \(limit 1024 MB\)$"):
        read_isolated("stock", path, {"default_currency": "GBP"}, Sandbox(memory_mb=1024))


def test_a_reader_that_takes_too_long_is_stopped():
    with pytest.raises(ReaderFailed, match=r"took longer than 0.001 s"):
        read_isolated("stock", b"barcode,price,quantity\n", {"default_currency": "GBP"}, Sandbox(timeout_seconds=0.001))


def test_a_file_is_read_by_a_child_started_ahead_and_the_next_one_starts_at_once():
    """A parse does not pay the child's start (importing polars): children are waiting, warm, before
    the file comes; one reads that one file and exits, and another is started in its place."""
    body = b"barcode,price,quantity\n9780141383743,6.99,3\n"
    read_isolated("stock", body, {"default_currency": "GBP"})
    waiting = prestarted_pids()
    assert len(waiting) == WARM_CHILDREN and all(Path(f"/proc/{pid}").exists() for pid in waiting)
    time.sleep(0.5)
    assert all(Path(f"/proc/{pid}").exists() for pid in waiting), "the waiting children must wait, not exit"
    assert read_isolated("stock", body, {"default_currency": "GBP"}).rows.height == 1
    assert not Path(f"/proc/{waiting[0]}").exists(), "the second file was read by the child that was waiting longest"
    following = prestarted_pids()
    assert following[0] == waiting[1] and following[-1] not in waiting and len(following) == WARM_CHILDREN
    # a hostile file ends only its own child: the others still wait
    with pytest.raises(ReaderFailed):
        read_isolated("stock", b"barcode,price,quantity\n", {"default_currency": "GBP"}, Sandbox(timeout_seconds=0.001))
    assert not Path(f"/proc/{following[0]}").exists()
    assert all(Path(f"/proc/{pid}").exists() for pid in prestarted_pids())


def test_a_rejected_value_is_kept_cut_to_200_characters():
    long = "A" * 5000
    parsed = read_stock_file(f"barcode,price,quantity\n{long},1,1\n".encode(), default_currency="GBP")
    assert parsed.rejections["value"].to_list() == ["A" * 199 + "…"]
