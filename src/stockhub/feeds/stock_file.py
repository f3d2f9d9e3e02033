"""A stock file (CSV or XLSX bytes) to validated rows, rejected rows with reasons, and a verdict."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from stockhub.domain.places import is_currency
from stockhub.feeds.decode import Limits, UnreadableFile, read_table
from stockhub.feeds.headers import POSITIONAL, Layout, detect_layout
from stockhub.feeds.identifiers import restore_lost_zeros, rule_for
from stockhub.feeds.values import with_currency, with_price, with_promotion, with_quantity, with_safety_stock

ROW_SCHEMA = {
    "row": pl.Int64,
    "identifier": pl.String,
    "quantity": pl.Int64,
    "price_minor": pl.Int64,
    "currency": pl.String,
    "promotion_minor": pl.Int64,
}
SAFETY_STOCK = "safety_stock"  # an optional column: a product's own safety stock (empty: keep it)
REJECTION_SCHEMA = {"row": pl.Int64, "field": pl.String, "value": pl.String, "reason": pl.String}
NO_DATA_ROWS = "the file has no data rows"
SHOWN_VALUE_CHARS = 200  # a rejected cell is kept and shown cut to this many characters

# (field, its raw column, its reason column): a rejected row reports the first failing field.
_CHECKS = (
    ("identifier", "identifier_raw", "identifier_reason"),
    ("price", "price_raw", "price_reason"),
    ("quantity", "quantity_raw", "quantity_reason"),
    ("currency", "currency_raw", "currency_reason"),
    ("promotion_amount", "promotion_raw", "promotion_reason"),
    ("safety_stock", "safety_raw", "safety_reason"),
)


@dataclass(frozen=True)
class StockFile:
    rows: pl.DataFrame  # valid rows, the last occurrence of each identifier, in file order (ROW_SCHEMA)
    rejections: pl.DataFrame  # one per rejected or superseded row, sorted by row (REJECTION_SCHEMA)
    line_count: int  # data rows read: no header, no blank lines
    superseded_count: int
    warnings: tuple[str, ...]
    invalid_reason: str | None  # set when the file must not be applied


def read_stock_file(
    data: bytes,
    *,
    default_currency: str,
    invalid_threshold: float = 0.5,
    custom_identifiers: bool = False,
    limits: Limits = Limits(),
) -> StockFile:
    """Parse and validate a stock file; never raises for bad file content.

    `custom_identifiers` (a store with custom product data): identifiers that are not a GTIN,
    ISBN or SKU are accepted when they are 1–36 letters and digits, without check-digit rules.
    """
    if not is_currency(default_currency.upper()):
        raise ValueError(f"unknown default currency {default_currency!r}")
    try:
        table = read_table(data, limits)
    except UnreadableFile as exc:
        return _unusable(str(exc))
    if table.cells.is_empty():
        return _unusable(NO_DATA_ROWS, warnings=table.warnings)

    first_row = table.cells.drop("row").row(0, named=True)
    layout = detect_layout(first_row)
    cells = table.cells.slice(1) if layout.has_header else table.cells
    warnings = table.warnings + layout.warnings
    if layout.invalid_reason:
        return _unusable(layout.invalid_reason, cells.height, warnings)
    if cells.is_empty():
        return _unusable(NO_DATA_ROWS, 0, warnings)

    checked = _validate(
        _fields(cells, layout, spreadsheet=table.is_spreadsheet),
        default_currency.upper(),
        # A decimal comma cannot be told from a separator in a comma-separated file.
        decimal_comma=table.separator != ",",
        custom_identifiers=custom_identifiers,
    )
    rows, duplicates, rejected = _split(checked)
    if SAFETY_STOCK not in layout.columns:
        rows = rows.drop(SAFETY_STOCK)
    superseded = _superseded(duplicates, rows)
    return StockFile(
        rows=rows,
        rejections=rejections(rejected, superseded),
        line_count=cells.height,
        superseded_count=superseded.height,
        warnings=warnings,
        invalid_reason=verdict(rejected.height, cells.height, invalid_threshold, layout.has_header),
    )


def _fields(cells: pl.DataFrame, layout: Layout, *, spreadsheet: bool) -> pl.DataFrame:
    """One raw text column per stock field."""

    def column(field: str) -> pl.Expr:
        names = layout.columns.get(field)
        return pl.col(names[0]) if names else pl.lit(None, pl.String)

    identifiers = [pl.col(c) for c in layout.identifier_columns]
    if spreadsheet:
        identifiers = [restore_lost_zeros(c) for c in identifiers]
    return cells.select(
        "row",
        identifier_raw=pl.coalesce(identifiers),
        price_raw=column("price"),
        quantity_raw=column("quantity"),
        currency_raw=column("currency"),
        promotion_raw=column("promotion_amount"),
        safety_raw=column("safety_stock"),
    )


def _validate(fields: pl.DataFrame, default_currency: str, *, decimal_comma: bool, custom_identifiers: bool) -> pl.LazyFrame:
    """Adds the parsed columns and `reject`, a struct (field, value, reason) or null if valid."""
    identify = rule_for(custom_identifiers).column
    frame = identify(
        fields.lazy(), "identifier_raw", identifier="identifier", reason="identifier_reason"
    )
    frame = with_currency(frame, "currency_raw", default_currency)
    frame = with_price(frame, "price_raw", decimal_comma=decimal_comma)
    frame = with_quantity(frame, "quantity_raw")
    frame = with_promotion(frame, "promotion_raw", decimal_comma=decimal_comma)
    frame = with_safety_stock(frame, "safety_raw", SAFETY_STOCK)
    return frame.with_columns(
        reject=pl.coalesce(
            pl.when(pl.col(reason).is_not_null()).then(
                pl.struct(field=pl.lit(field), value=pl.col(raw), reason=pl.col(reason))
            )
            for field, raw, reason in _CHECKS
        )
    )


def _split(checked: pl.LazyFrame) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """(valid rows, earlier duplicates of valid rows, rejections).

    Of several valid rows with one identifier the last wins; invalid rows never supersede.
    """
    checked = checked.select(*ROW_SCHEMA.keys(), SAFETY_STOCK, "identifier_raw", "reject").collect()
    valid = checked.filter(pl.col("reject").is_null())
    is_last = pl.col("identifier").is_last_distinct()
    return (
        valid.filter(is_last).select(*ROW_SCHEMA.keys(), SAFETY_STOCK),
        valid.filter(~is_last).select("row", "identifier", "identifier_raw"),
        checked.filter(pl.col("reject").is_not_null()).select("row", pl.col("reject").struct.unnest()),
    )


def _superseded(duplicates: pl.DataFrame, rows: pl.DataFrame) -> pl.DataFrame:
    """A rejection per earlier duplicate, naming the row that replaced it."""
    winners = rows.filter(pl.col("identifier").is_in(duplicates["identifier"].implode()))
    return duplicates.join(winners.select("identifier", winner="row"), on="identifier").select(
        "row",
        field=pl.lit("identifier"),
        value=pl.col("identifier_raw"),
        reason=pl.concat_str(pl.lit("superseded by row "), pl.col("winner").cast(pl.String)),
    )


def rejections(*frames: pl.DataFrame) -> pl.DataFrame:
    """The rejected and superseded rows by row, each value cut to SHOWN_VALUE_CHARS with an ellipsis."""
    value = pl.col("value")
    cut = value.str.slice(0, SHOWN_VALUE_CHARS - 1) + "…"
    return pl.concat(frames).sort("row").with_columns(
        value=pl.when(value.str.len_chars() > SHOWN_VALUE_CHARS).then(cut).otherwise(value)
    )


def verdict(rejected: int, line_count: int, threshold: float, has_header: bool = True) -> str | None:
    """Why a whole file must not be applied (most of its rows rejected), or None."""
    if rejected <= threshold * line_count:
        return None
    reason = f"{rejected} of {line_count} rows were rejected (more than {threshold:.0%} of the file)"
    if not has_header:
        reason += (
            "; no header was recognised, so the columns were read by position"
            f" ({', '.join(POSITIONAL)}): check that the file has a header row"
        )
    return reason


def _unusable(reason: str, line_count: int = 0, warnings: tuple[str, ...] = ()) -> StockFile:
    return unusable(StockFile, ROW_SCHEMA, reason, line_count, warnings)


def unusable(kind: type, schema: dict, reason: str, line_count: int = 0, warnings: tuple[str, ...] = ()):
    """A parsed file (StockFile, ProductFile) with no rows, refused whole for `reason`."""
    return kind(
        rows=pl.DataFrame(schema=schema),
        rejections=pl.DataFrame(schema=REJECTION_SCHEMA),
        line_count=line_count,
        superseded_count=0,
        warnings=warnings,
        invalid_reason=reason,
    )
