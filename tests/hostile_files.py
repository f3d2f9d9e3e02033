"""Hostile feed files, built by hand: minimal XLSX workbooks (zipfile) and CSV memory bombs."""

from __future__ import annotations

import io
import zipfile
from functools import cache

BOOK = "9780141383743"
MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
RELS = "http://schemas.openxmlformats.org/package/2006/relationships"
DOC_RELS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"


def xlsx(sheet_data: str, shared_string_chars: int = 0) -> bytes:
    """A one-sheet workbook whose <sheetData> is `sheet_data`; with `shared_string_chars`, shared
    string 0 is that many 'x' (written in chunks: the test never holds it whole)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as book:
        book.writestr(
            "[Content_Types].xml",
            '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            '<Default Extension="xml" ContentType="application/xml"/>'
            '<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
            '<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
            "</Types>",
        )
        book.writestr(
            "_rels/.rels",
            f'<Relationships xmlns="{RELS}"><Relationship Id="rId1" Type="{DOC_RELS}/officeDocument" Target="xl/workbook.xml"/></Relationships>',
        )
        book.writestr(
            "xl/workbook.xml",
            f'<workbook xmlns="{MAIN}" xmlns:r="{DOC_RELS}"><sheets><sheet name="Stock" sheetId="1" r:id="rId1"/></sheets></workbook>',
        )
        rels = f'<Relationship Id="rId1" Type="{DOC_RELS}/worksheet" Target="worksheets/sheet1.xml"/>'
        if shared_string_chars:
            rels += f'<Relationship Id="rId2" Type="{DOC_RELS}/sharedStrings" Target="sharedStrings.xml"/>'
            with book.open("xl/sharedStrings.xml", "w", force_zip64=True) as part:
                part.write(f'<sst xmlns="{MAIN}" count="1" uniqueCount="1"><si><t>'.encode())
                chunk = b"x" * (1 << 20)
                for _ in range(shared_string_chars // len(chunk)):
                    part.write(chunk)
                part.write(b"x" * (shared_string_chars % len(chunk)) + b"</t></si></sst>")
        book.writestr("xl/_rels/workbook.xml.rels", f'<Relationships xmlns="{RELS}">{rels}</Relationships>')
        book.writestr("xl/worksheets/sheet1.xml", f'<worksheet xmlns="{MAIN}"><sheetData>{sheet_data}</sheetData></worksheet>')
    return buffer.getvalue()


def text_cell(ref: str, text: str) -> str:
    return f'<c r="{ref}" t="inlineStr"><is><t>{text}</t></is></c>'


HEADER = '<row r="1">' + text_cell("A1", "barcode") + text_cell("B1", "price") + text_cell("C1", "quantity") + "</row>"
GOOD_ROW = f'<row r="2">{text_cell("A2", BOOK)}<c r="B2"><v>6.99</v></c><c r="C2"><v>3</v></c></row>'


def far_cell(ref: str, row: int) -> bytes:
    """A good stock sheet plus one cell at `ref`: the reader would build the sheet up to it."""
    return xlsx(HEADER + GOOD_ROW + f'<row r="{row}"><c r="{ref}"><v>1</v></c></row>')


XFD1048576 = far_cell("XFD1048576", 1048576)  # the last cell of a sheet: 512 GB dense
ZZZZZZ = far_cell("ZZZZZZ99999999999", 99999999999)  # past any sheet


@cache
def shared_string_500mb() -> bytes:
    """A 0.5 MB workbook whose one shared string is 500 MB of text (built once: seconds)."""
    return xlsx(HEADER + '<row r="2"><c r="A2" t="s"><v>0</v></c></row>', shared_string_chars=500_000_000)

SEMICOLONS_1MB = b";" * (1 << 20)  # one line of a million columns
