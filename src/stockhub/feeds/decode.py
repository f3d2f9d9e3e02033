"""Stock-file bytes to a table of trimmed text cells (CSV via polars, XLSX via python-calamine)."""

from __future__ import annotations

import codecs
import io
import re
import zipfile
from dataclasses import dataclass
from xml.etree import ElementTree
from itertools import zip_longest

import polars as pl
from python_calamine import CalamineWorkbook

# Files are read as at least this many columns, so a headerless file always has the five
# positional fields (barcode, price, quantity, currency, promotion_amount).
MIN_COLUMNS = 5
SEPARATORS = (",", ";", "\t")  # in tie-break order

_ZIP_MAGIC = b"PK\x03\x04"
_OLE2_MAGIC = b"\xd0\xcf\x11\xe0"  # legacy .xls (and .doc, ...)
# Control characters that do not occur in text files (tab, LF, VT, FF and CR do).
_BINARY = re.compile(rb"[\x00-\x08\x0e-\x1f]")
_SNIFF_BYTES = 65536  # binary files show control characters early; text files never do
_NON_BLANK = re.compile(r"\S")


class UnreadableFile(ValueError):
    """The bytes are neither a readable CSV nor a readable XLSX file; the message says why."""


@dataclass(frozen=True)
class Limits:
    """The largest file that is read: past any of these a file is refused whole, saying which.

    They bound what a small file can make the reader build (a cell at XFD1048576 is a dense
    sheet of 17 billion cells; a 1 MB line of `;` is a million columns).
    """

    max_columns: int = 64  # a stock file has 5 fields, a product file 13
    max_rows: int = 2_000_000
    max_cell_chars: int = 32_767  # as much as a spreadsheet cell holds


@dataclass(frozen=True)
class Table:
    """Cells as text: column `row` (Int64, 1-based line or sheet row) then c0, c1, ... (String).

    Cells are trimmed, empty cells are null and fully blank rows are dropped.
    """

    cells: pl.DataFrame
    separator: str | None  # None for a spreadsheet
    warnings: tuple[str, ...] = ()

    @property
    def is_spreadsheet(self) -> bool:
        return self.separator is None


def read_table(
    data: bytes, limits: Limits = Limits(), *, separator: str | None = None, encoding: str | None = None, header_line: int = 1
) -> Table:
    """`separator` and `encoding` (a store's column mapping) replace the detected ones for a CSV;
    `header_line`: the (1-based, non-blank) line holding the header: the file is read as wide as
    the widest line up to it and the next one (a title above a header is narrower)."""
    if data.startswith(_ZIP_MAGIC):
        table = _read_xlsx(data, limits)
    elif data.startswith(_OLE2_MAGIC):
        raise UnreadableFile("legacy Excel (.xls) files are not supported: save the sheet as .xlsx or CSV")
    else:
        table = _read_csv(data, limits, separator, encoding, header_line)
    _check_cells(table.cells, limits)
    return table


# --- CSV -----------------------------------------------------------------------------------


def _read_csv(data: bytes, limits: Limits, separator: str | None = None, encoding: str | None = None, header_line: int = 1) -> Table:
    text, utf8 = _decode_text(data) if encoding is None else _decode_as(data, encoding)
    first_line = _first_non_blank_line(text)
    if first_line is None:
        return Table(_empty_cells(MIN_COLUMNS), separator=",")
    if len(first_line) > limits.max_columns * (limits.max_cell_chars + 1):
        raise UnreadableFile(f"the first line is {len(first_line):,} characters long: it cannot be a header or a row of stock")
    separator = separator or detect_separator(first_line)
    lines = [first_line] if header_line <= 1 else [ln for ln in _first_lines(text, header_line * 4 + 8) if ln.strip()][: header_line + 1]
    width = max(*(_count_fields(line, separator) for line in lines), MIN_COLUMNS)
    # The lines are counted (a pass over the bytes, ~1/10 of the read) only where they can
    # outnumber the rows polars reads: a quoted cell may hold line breaks. Without quotes every
    # line break ends a row, so the rows read, at most one past the limit, bound the lines.
    quoted = b'"' in utf8
    _check_shape(utf8.count(b"\n") + 1 if quoted else 1, width, limits)
    schema = {f"c{i}": pl.String for i in range(width)}
    warnings: tuple[str, ...] = ()
    try:
        frame = _polars_csv(utf8, separator, schema, quote_char='"', limits=limits)
    except pl.exceptions.PolarsError:
        # One badly quoted cell (e.g. `"abc" ,`) makes polars give up on the whole file; read it
        # again without quote handling so that the well-formed rows still count.
        try:
            frame = _polars_csv(utf8, separator, schema, quote_char=None, limits=limits)
        except pl.exceptions.PolarsError as exc:
            raise UnreadableFile(f"the file could not be read as CSV ({exc})") from exc
        frame = frame.with_columns(
            pl.col(c).str.strip_chars().str.strip_chars('"').str.replace_all('""', '"', literal=True)
            for c in schema
        )
        warnings = ("the file has malformed quotes: it was read without quote handling",)
    if not quoted and frame.height >= limits.max_rows:
        _check_shape(utf8.count(b"\n") + 1, width, limits)
    frame = frame.with_row_index("row", offset=1).with_columns(pl.col("row").cast(pl.Int64))
    return Table(_tidy(frame, trim=_may_need_trimming(utf8)), separator=separator, warnings=warnings)


_TRIMMABLE = (b" ", b"\t", b"\r", b"\x0b", b"\x0c", b'"')


def _may_need_trimming(utf8: bytes) -> bool:
    """False when no cell can start or end with whitespace nor be an empty string: the text is
    ASCII without spaces, tabs, carriage returns, vertical tabs or form feeds (the whitespace
    polars' strip_chars takes off), and without quotes (so no cell holds a line break, and
    none is a quoted ""). Then polars' cells are already trimmed, and empty ones null. A scan
    of the bytes (memchr) costs ~1/10 of trimming every cell."""
    return not utf8.isascii() or any(byte in utf8 for byte in _TRIMMABLE)


def _polars_csv(utf8: bytes, separator: str, schema: dict, quote_char: str | None, limits: Limits) -> pl.DataFrame:
    # Blank lines come back as all-null rows, so the row index stays the line number. One row
    # past the limit is enough to know that a file is too long.
    return pl.read_csv(
        utf8,
        has_header=False,
        separator=separator,
        quote_char=quote_char,
        schema=schema,
        missing_columns="insert",
        truncate_ragged_lines=True,
        raise_if_empty=False,
        n_rows=limits.max_rows + 1,
    )


def _decode_text(data: bytes) -> tuple[str, bytes]:
    """The file as text, and as UTF-8 bytes without BOM for polars."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise UnreadableFile("the file is not readable text (broken UTF-16)") from exc
        return text, text.encode()
    data = data.removeprefix(codecs.BOM_UTF8).rstrip(b"\x1a")  # Ctrl-Z: DOS end-of-file mark
    if b"\x00" in data or _BINARY.search(data, 0, _SNIFF_BYTES):
        raise UnreadableFile("the file is neither a CSV text file nor an XLSX workbook (binary data)")
    try:
        return data.decode("utf-8"), data
    except UnicodeDecodeError:
        # Not UTF-8: the usual alternative from Windows POS software and Excel is Windows-1252.
        text = data.decode("cp1252", errors="replace")
        return text, text.encode()


def _decode_as(data: bytes, encoding: str) -> tuple[str, bytes]:
    """The file in the encoding a store's column mapping names (a UTF-8 BOM is dropped)."""
    if encoding.replace("_", "-").lower() in ("utf-8", "utf8"):
        data = data.removeprefix(codecs.BOM_UTF8)
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise UnreadableFile(f"the file is not {encoding} text (byte {exc.start} cannot be read as {encoding}), as the store's column mapping says") from exc
    if "\x00" in text:
        raise UnreadableFile(f"the file is not {encoding} text (it holds NUL characters), as the store's column mapping says")
    return text, text.encode()


def _first_lines(text: str, count: int) -> list[str]:
    """text.splitlines()[:count], splitting only as much of the text as holds them."""
    size = 1 << 16
    while True:
        lines = text[:size].splitlines()
        if len(lines) > count or size >= len(text):  # the first `count` lines ended before the cut
            return lines[:count]
        size *= 4


def _first_non_blank_line(text: str) -> str | None:
    match = _NON_BLANK.search(text)
    if match is None:
        return None
    start = text.rfind("\n", 0, match.start()) + 1
    end = text.find("\n", match.start())
    return text[start : end if end >= 0 else len(text)]


def _separator_counts(line: str) -> dict[str, int]:
    counts = dict.fromkeys(SEPARATORS, 0)
    quoted = False
    for char in line:
        if char == '"':
            quoted = not quoted
        elif not quoted and char in counts:
            counts[char] += 1
    return counts


def detect_separator(line: str) -> str:
    """The separator that occurs most often outside quotes in `line`; ties go to the comma."""
    counts = _separator_counts(line)
    return max(SEPARATORS, key=lambda sep: counts[sep])  # max keeps the first of equals


def _count_fields(line: str, separator: str) -> int:
    count, quoted = 1, False
    for char in line:
        if char == '"':
            quoted = not quoted
        elif not quoted and char == separator:
            count += 1
    return count


# --- XLSX ----------------------------------------------------------------------------------


def _read_xlsx(data: bytes, limits: Limits) -> Table:
    _check_workbook(data, limits)
    try:
        book = CalamineWorkbook.from_filelike(io.BytesIO(data))
        sheet_rows = book.get_sheet_by_index(0).to_python(skip_empty_area=False)
    except Exception as exc:  # calamine raises several unrelated types for broken files
        raise UnreadableFile(f"the file is a ZIP archive but not a readable XLSX workbook ({exc})") from exc
    if not sheet_rows:
        return Table(_empty_cells(MIN_COLUMNS), separator=None)
    _check_shape(len(sheet_rows), max(map(len, sheet_rows)), limits)
    columns = list(zip_longest(*sheet_rows))
    frame = pl.DataFrame(
        [pl.Series(f"c{i}", col, dtype=pl.String, strict=False) for i, col in enumerate(columns)]
    ).with_columns(pl.lit(None, pl.String).alias(f"c{i}") for i in range(len(columns), MIN_COLUMNS))
    frame = frame.with_columns(_numeric_text(pl.col(c)) for c in frame.columns)
    frame = frame.with_row_index("row", offset=1).with_columns(pl.col("row").cast(pl.Int64))
    return Table(_tidy(frame), separator=None)


def _numeric_text(cell: pl.Expr) -> pl.Expr:
    """Spreadsheet numbers as a person typed them: 3.0 → "3", and float noise such as
    6.989999999999999 (from a formula) rounded away."""
    noisy = cell.str.contains(r"^-?[0-9]+\.[0-9]{10,}$")
    rounded = cell.cast(pl.Float64, strict=False).round(9).cast(pl.String)
    return (
        pl.when(noisy)
        .then(rounded)
        .otherwise(cell)
        .str.replace(r"^(-?[0-9]+)\.0$", "$1")
    )


# The reader builds a dense sheet up to its farthest cell, so the cell references are checked
# before it runs. Only references past 26 columns or a million rows are matched: fast on real sheets.
_FAR_CELL = re.compile(rb"""\sr\s*=\s*["']([A-Z]{2,}[0-9]+|[A-Z]+[0-9]{7,})["']""")
_REF = re.compile(r"([A-Z]+)([0-9]+)")
_CHUNK = 1 << 20
_REL = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}id"


def _check_workbook(data: bytes, limits: Limits) -> None:
    """Refuse a workbook whose first sheet reaches past the limits, or that holds a giant text,
    from its XML, streamed with bounded memory, before the reader builds the sheet."""
    try:
        book = zipfile.ZipFile(io.BytesIO(data))
    except Exception:  # not a ZIP archive this can read: the reader says what is wrong
        return
    try:
        sheets = [_first_sheet(book)]
    except Exception:  # an unusual layout: check every sheet
        sheets = [n for n in book.namelist() if "worksheets/" in n.lower()]
    try:
        for name in sheets:
            _scan_part(book, name, limits, cells=True)
        for name in [n for n in book.namelist() if n.lower().endswith("sharedstrings.xml")]:
            _scan_part(book, name, limits, cells=False)
    except (zipfile.BadZipFile, OSError, EOFError, RuntimeError, NotImplementedError, ValueError) as exc:
        if isinstance(exc, UnreadableFile):
            raise
        raise UnreadableFile(f"the file is a ZIP archive but not a readable XLSX workbook ({exc})") from exc


def _first_sheet(book: zipfile.ZipFile) -> str:
    """The part of the workbook's first sheet: the one the reader reads."""
    first = next(ElementTree.fromstring(_small_part(book, "xl/workbook.xml")).iterfind(".//{*}sheet"))
    rels = ElementTree.fromstring(_small_part(book, "xl/_rels/workbook.xml.rels"))
    target = next(r.get("Target") for r in rels.iterfind("{*}Relationship") if r.get("Id") == first.get(_REL))
    return target.lstrip("/") if target.startswith("/") else f"xl/{target}"


def _small_part(book: zipfile.ZipFile, name: str) -> bytes:
    with book.open(name) as part:
        return part.read(_CHUNK)


def _scan_part(book: zipfile.ZipFile, name: str, limits: Limits, *, cells: bool) -> None:
    """The sheet: no cell reference past the limits. Shared strings: no giant text."""
    longest_text = limits.max_cell_chars * 4 + 64  # bytes: UTF-8 and character references
    run, tail = 0, b""  # bytes since the last '<', and the end of the last chunk
    with book.open(name) as part:
        while chunk := part.read(_CHUNK):
            if cells:
                for ref in _FAR_CELL.findall(tail + chunk):
                    column, row = _REF.fullmatch(ref.decode()).groups()
                    _check_shape(int(row), _column_number(column), limits, cell=ref.decode())
                tail = chunk[-64:]
                continue
            lengths = [len(piece) for piece in chunk.split(b"<")]
            lengths[0] += run
            if max(lengths) > longest_text:
                raise UnreadableFile(f"the workbook holds a text longer than the {limits.max_cell_chars:,} characters a cell may hold")
            run = lengths[-1]


def _column_number(letters: str) -> int:
    number = 0
    for letter in letters:
        number = number * 26 + ord(letter) - 64
    return number


# --- shared --------------------------------------------------------------------------------


def _tidy(frame: pl.DataFrame, trim: bool = True) -> pl.DataFrame:
    """Trim cells, make empty cells null (unless `trim` is False: the caller knows no cell needs
    it), drop fully blank rows."""
    cells = [c for c in frame.columns if c != "row"]
    if not trim:
        return frame.filter(~pl.all_horizontal(pl.col(c).is_null() for c in cells))
    trimmed = frame.with_columns(pl.col(c).str.strip_chars() for c in cells).with_columns(
        pl.when(pl.col(c) != "").then(pl.col(c)).alias(c) for c in cells
    )
    return trimmed.filter(~pl.all_horizontal(pl.col(c).is_null() for c in cells))


def _check_shape(rows: int, columns: int, limits: Limits, cell: str | None = None) -> None:
    where = f"its cell {cell} makes it" if cell else "it has"
    if columns > limits.max_columns:
        raise UnreadableFile(f"the file is too wide: {where} {columns:,} columns, more than the {limits.max_columns} a file may have")
    if rows > limits.max_rows:
        raise UnreadableFile(f"the file is too long: {where} {rows:,} rows, more than the {limits.max_rows:,} a file may have")


def _check_cells(cells: pl.DataFrame, limits: Limits) -> None:
    columns = [c for c in cells.columns if c != "row"]
    longest = cells.select(pl.max_horizontal(pl.col(c).str.len_bytes().max() for c in columns)).item()
    if longest is None or longest <= limits.max_cell_chars:  # a character takes at least a byte
        return
    too_long = cells.filter(pl.any_horizontal(pl.col(c).str.len_chars() > limits.max_cell_chars for c in columns))
    if not too_long.is_empty():
        row = too_long.row(0, named=True)
        longest = max(len(row[c] or "") for c in columns)
        raise UnreadableFile(
            f"row {row['row']} has a cell of {longest:,} characters, more than the {limits.max_cell_chars:,} a cell may hold"
        )


def _empty_cells(width: int) -> pl.DataFrame:
    return pl.DataFrame(schema={"row": pl.Int64} | {f"c{i}": pl.String for i in range(width)})
