"""Which table column holds which stock field: from the header row, or by position without one."""

from __future__ import annotations

import re
from dataclasses import dataclass

# Header names after lower-casing and removing all whitespace (NearSt's matching rule).
ALIASES: dict[str, tuple[str, ...]] = {
    "barcode": ("barcode",),
    "gtin": ("gtin", "upc", "upccode", "ean"),
    "sku": ("sku",),
    "price": ("price", "msrp", "retailprice"),
    "quantity": ("quantity", "qty", "qoh", "available", "stock", "quantityonhand"),
    "currency": ("currency",),
    "promotion_amount": ("promotion_amount", "promotionamount", "saleprice"),
    "safety_stock": ("safety_stock", "safetystock"),  # optional, never positional
}
IDENTIFIER_FIELDS = ("gtin", "barcode", "sku")  # per row, the first non-empty one wins
POSITIONAL = ("barcode", "price", "quantity", "currency", "promotion_amount")
HEADERLESS_WARNING = f"no recognised header: columns read by position ({', '.join(POSITIONAL)})"

_FIELD_BY_NAME = {name: field for field, names in ALIASES.items() for name in names}
_WHITESPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class Layout:
    columns: dict[str, tuple[str, ...]]  # field → table columns holding it, in file order
    has_header: bool
    warnings: tuple[str, ...] = ()
    invalid_reason: str | None = None  # the header lacks a required column

    @property
    def identifier_columns(self) -> tuple[str, ...]:
        return tuple(c for field in IDENTIFIER_FIELDS for c in self.columns.get(field, ()))


def normalise(name: str) -> str:
    return _WHITESPACE.sub("", name.lower())


def detect_layout(first_row: dict[str, str | None]) -> Layout:
    """Layout from the first non-blank row, given as {table column: cell text}."""
    fields = {
        column: _FIELD_BY_NAME.get(normalise(text)) for column, text in first_row.items() if text
    }
    if not any(fields.values()):
        positional = {field: (column,) for field, column in zip(POSITIONAL, first_row)}
        return Layout(positional, has_header=False, warnings=(HEADERLESS_WARNING,))

    columns: dict[str, tuple[str, ...]] = {}
    for column, field in fields.items():
        if field:
            columns[field] = columns.get(field, ()) + (column,)
    warnings = _ignored_columns_warning(first_row, fields) + _duplicates_warning(first_row, columns)
    # Only identifier fields are merged; of any other field the first column is used.
    columns = {f: cs if f in IDENTIFIER_FIELDS else cs[:1] for f, cs in columns.items()}
    return Layout(columns, has_header=True, warnings=warnings, invalid_reason=_missing(columns))


def _missing(columns: dict[str, tuple[str, ...]]) -> str | None:
    problems = []
    if not any(field in columns for field in IDENTIFIER_FIELDS):
        names = [n for field in ("barcode", "gtin", "sku") for n in ALIASES[field]]
        problems.append(f"header has no identifier column (accepted names: {', '.join(names)})")
    for field in ("price", "quantity"):
        if field not in columns:
            problems.append(f"header has no {field} column (accepted names: {', '.join(ALIASES[field])})")
    return "; ".join(problems) or None


def _ignored_columns_warning(first_row: dict[str, str | None], fields: dict[str, str | None]) -> tuple[str, ...]:
    ignored = [first_row[column] for column, field in fields.items() if field is None]
    return (f"unrecognised columns ignored: {', '.join(ignored)}",) if ignored else ()


def _duplicates_warning(first_row: dict[str, str | None], columns: dict[str, tuple[str, ...]]) -> tuple[str, ...]:
    return tuple(
        f"several {field} columns ({', '.join(first_row[c] or '' for c in cs)}): the first is used"
        for field, cs in columns.items()
        if len(cs) > 1 and field not in IDENTIFIER_FIELDS
    )
