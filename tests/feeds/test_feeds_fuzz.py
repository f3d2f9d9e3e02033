"""Any bytes into the feed readers give rows and rejections or a clean invalid reason: never an
exception, never a crash. Bounded examples (seconds); the shapes that once crashed the server are
explicit examples."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st

import hostile_files
from stockhub.feeds import read_product_file, read_stock_file
from stockhub.feeds.decode import Limits
from stockhub.feeds.product_file import PRODUCT_SCHEMA
from stockhub.feeds.sandbox import ReaderFailed, Sandbox, read_isolated, reader_process_pid
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


def _threads_of(pid: int) -> list[str]:
    return sorted(Path(f"/proc/{pid}/task/{task}/comm").read_text().strip() for task in os.listdir(f"/proc/{pid}/task"))


def _children_of(pid: int) -> list[str]:
    """The reader process's children, once those ending now (an earlier test's) have ended."""
    deadline = time.monotonic() + 10
    while (children := Path(f"/proc/{pid}/task/{pid}/children").read_text().split()) and time.monotonic() < deadline:
        time.sleep(0.01)
    return children


def test_each_file_is_read_by_its_own_child_forked_from_one_reader_process():
    """A parse does not pay polars' import: one reader process per server process imported the
    readers ahead, and forks a child for each file. A file that takes too long ends only its child."""
    body = b"barcode,price,quantity\n9780141383743,6.99,3\n"
    assert read_isolated("stock", body, {"default_currency": "GBP"}).rows.height == 1
    reader = reader_process_pid()
    assert reader is not None and reader != os.getpid()
    # it forks with no thread that could hold a lock but polars' idle spill cleaner: jemalloc's
    # background threads are off, and polars' thread pool starts in each child
    assert len([name for name in _threads_of(reader) if not name.startswith("polars-ooc")]) == 1  # its main thread
    assert _children_of(reader) == []  # no child outlives its file

    slow = b"barcode,price,quantity\n" + b"".join(b"%d,1.00,3\n" % (9780000000000 + n) for n in range(2_000_000))
    with pytest.raises(ReaderFailed, match=r"took longer than 0.05 s"):
        read_isolated("stock", slow, {"default_currency": "GBP"}, Sandbox(timeout_seconds=0.05))
    assert _children_of(reader) == []  # killed, and reaped by the reader process
    assert reader_process_pid() == reader and Path(f"/proc/{reader}").exists()
    assert read_isolated("stock", body, {"default_currency": "GBP"}).rows.height == 1


def test_a_file_is_not_held_up_by_a_slow_one_forked_beside_it():
    """Each child holds only its own sockets: a file's answer comes as soon as its child ends,
    though a child forked after it for a slower file is still reading."""
    def rows(count: int) -> bytes:
        return b"barcode,price,quantity\n" + b"".join(b"%d,1.00,3\n" % (9780000000000 + n) for n in range(count))

    assert read_isolated("stock", rows(1), {"default_currency": "GBP"}).line_count == 1
    reader = reader_process_pid()
    forked = lambda: Path(f"/proc/{reader}/task/{reader}/children").read_text().split()  # noqa: E731
    first, slow, seen = rows(300_000), rows(1_500_000), {}

    def read_first():
        seen["first"] = read_isolated("stock", first, {"default_currency": "GBP"}).line_count
        seen["children when it was answered"] = forked()

    def read_slow():
        seen["slow"] = read_isolated("stock", slow, {"default_currency": "GBP"}).line_count

    threads = [threading.Thread(target=read_first), threading.Thread(target=read_slow)]
    threads[0].start()
    while not forked():
        time.sleep(0.001)
    threads[1].start()  # its child is forked while the first file's child is reading
    for thread in threads:
        thread.join(60)
    assert (seen["first"], seen["slow"]) == (300_000, 1_500_000)
    assert seen["children when it was answered"], "the first file's answer waited for the slow file's child to end"


def test_a_killed_reader_process_is_started_again():
    body = b"barcode,price,quantity\n9780141383743,6.99,3\n"
    assert read_isolated("stock", body, {"default_currency": "GBP"}).rows.height == 1
    reader = reader_process_pid()
    os.kill(reader, signal.SIGKILL)  # the next file may find it dying: reaped only once its threads have ended
    assert read_isolated("stock", body, {"default_currency": "GBP"}).rows.height == 1
    assert reader_process_pid() not in (None, reader)


def test_a_rejected_value_is_kept_cut_to_200_characters():
    long = "A" * 5000
    parsed = read_stock_file(f"barcode,price,quantity\n{long},1,1\n".encode(), default_currency="GBP")
    assert parsed.rejections["value"].to_list() == ["A" * 199 + "…"]
