"""A store's column mapping: which column of its stock files holds which field, and how the file
is written (delimiter, decimal comma, encoding, header row). A mapped file is read by the mapping
alone: never by NearSt's aliases, a preset or position guessing.

`parse_mapping` validates one (for PATCH /v1/stores/{id}); `mapped_columns` applies it to a
file's header row.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass

from stockhub.feeds.headers import normalise

# mapping key → stock-file field (`identifier` is a barcode-or-SKU column: read like `barcode`)
FIELDS = {
    "identifier": "barcode",
    "barcode": "barcode",
    "sku": "sku",
    "quantity": "quantity",
    "price": "price",
    "currency": "currency",
    "promotion_amount": "promotion_amount",
    "safety_stock": "safety_stock",
}
IDENTIFIER_KEYS = ("identifier", "barcode", "sku")
DELIMITERS = (",", ";", "\t", "|")
MAX_HEADER_ROW = 100
MAX_POSITION = 64


class MappingError(ValueError):
    """An invalid mapping: `errors` lists (field, message)."""

    def __init__(self, errors: list[tuple[str, str]]):
        super().__init__("; ".join(f"{f}: {m}" for f, m in errors))
        self.errors = errors


@dataclass(frozen=True)
class Mapped:
    columns: dict[str, tuple[str, ...]]  # stock-file field → table columns
    invalid_reason: str | None


def parse_mapping(raw: object) -> dict | None:
    """The mapping as stored (None clears it); MappingError lists what is wrong, field by field.

    Columns are a header name (text, matched case- and space-insensitively) or a 1-based
    position (an integer). `header_row` is the row holding the header (default 1; null: the
    file has none, so every column must be a position).
    """
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise MappingError([("column_mapping", "must be an object (or null to remove the mapping)")])
    errors: list[tuple[str, str]] = []
    known = set(FIELDS) | {"delimiter", "decimal_comma", "encoding", "header_row"}
    for key in raw:
        if key not in known:
            errors.append((f"column_mapping.{key}", f"unknown key (known: {', '.join(sorted(known))})"))
    out: dict = {}
    for key in FIELDS:
        if key not in raw or raw[key] is None:
            continue
        value = raw[key]
        if isinstance(value, bool) or not isinstance(value, int | str):
            errors.append((f"column_mapping.{key}", "must be a header name (text) or a 1-based column position (integer)"))
        elif isinstance(value, int) and not 1 <= value <= MAX_POSITION:
            errors.append((f"column_mapping.{key}", f"a column position must be from 1 to {MAX_POSITION}"))
        elif isinstance(value, str) and not 1 <= len(value.strip()) <= 200:
            errors.append((f"column_mapping.{key}", "a header name must have 1 to 200 characters"))
        else:
            out[key] = value.strip() if isinstance(value, str) else value
    if not any(k in out for k in IDENTIFIER_KEYS):
        errors.append(("column_mapping.identifier", "map the identifier column (identifier, barcode or sku)"))
    for key in ("quantity", "price"):
        if key not in out:
            errors.append((f"column_mapping.{key}", f"map the {key} column"))
    if "identifier" in out and ("barcode" in out or "sku" in out):
        errors.append(("column_mapping.identifier", "give identifier, or barcode and/or sku, not both"))
    header_row = raw.get("header_row", 1)
    if header_row is not None and (isinstance(header_row, bool) or not isinstance(header_row, int) or not 1 <= header_row <= MAX_HEADER_ROW):
        errors.append(("column_mapping.header_row", f"must be a row number from 1 to {MAX_HEADER_ROW}, or null when the file has no header"))
    elif header_row is None and any(isinstance(v, str) for k, v in out.items() if k in FIELDS):
        errors.append(("column_mapping.header_row", "a file without a header row can only be mapped by column positions"))
    out["header_row"] = header_row
    delimiter = raw.get("delimiter")
    if delimiter is not None and delimiter not in DELIMITERS:
        errors.append(("column_mapping.delimiter", "must be one of , ; | or a tab"))
    out["delimiter"] = delimiter
    decimal_comma = raw.get("decimal_comma", False)
    if not isinstance(decimal_comma, bool):
        errors.append(("column_mapping.decimal_comma", "must be true or false"))
    elif decimal_comma and delimiter == ",":
        errors.append(("column_mapping.decimal_comma", "a decimal comma needs a delimiter other than the comma"))
    out["decimal_comma"] = decimal_comma
    encoding = raw.get("encoding")
    if encoding is not None and not _text_encoding(encoding):
        errors.append(("column_mapping.encoding", "must be a text encoding such as utf-8, cp1252 or iso-8859-1"))
    out["encoding"] = codecs.lookup(encoding).name if encoding is not None and _text_encoding(encoding) else None
    if errors:
        raise MappingError(errors)
    return out


def _text_encoding(name: object) -> bool:
    if not isinstance(name, str) or len(name) > 40:
        return False
    try:
        info = codecs.lookup(name)
    except LookupError:
        return False
    return bool(getattr(info, "_is_text_encoding", True))


def mapped_columns(mapping: dict, header: dict[str, str | None] | None, width: int) -> Mapped:
    """Table columns for each mapped field. `header`: the header row {table column: text} (None:
    the file has no header); `width`: how many columns the file has."""
    by_name: dict[str, str] = {}
    for column, text in (header or {}).items():
        if text:
            by_name.setdefault(normalise(text), column)
    columns: dict[str, tuple[str, ...]] = {}
    missing: list[str] = []
    for key, field in FIELDS.items():
        target = mapping.get(key)
        if target is None:
            continue
        if isinstance(target, int):
            if target > width:
                missing.append(f"column {target} ({key}): the file has {width} columns")
                continue
            column = f"c{target - 1}"
        else:
            column = by_name.get(normalise(target))
            if column is None:
                missing.append(f'"{target}" ({key})')
                continue
        columns[field] = columns.get(field, ()) + (column,)
    if missing:
        headers = ", ".join(f'"{t}"' for t in (header or {}).values() if t) or "none"
        return Mapped(columns, f"the store's column mapping names {', '.join(missing)}, which the file does not have (its headers: {headers})")
    return Mapped(columns, None)
