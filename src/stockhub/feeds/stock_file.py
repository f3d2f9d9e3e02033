"""A stock file (CSV or XLSX bytes) to validated rows, rejected rows with reasons, and a verdict."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import polars as pl

from stockhub.domain.places import is_currency
from stockhub.feeds.decode import Limits, UnreadableFile, read_table
from stockhub.feeds.headers import POSITIONAL, Layout, detect_layout
from stockhub.feeds.identifiers import NEARST_SKU_RULE, nearst_sku_warning, restore_lost_zeros, rule_for, with_gtin_fast_path
from stockhub.feeds.mapping import mapped_columns
from stockhub.feeds.presets import recognise
from stockhub.feeds.values import uniform_currency, with_currency, with_fast_values, with_price, with_promotion, with_quantity, with_safety_stock

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
    skipped_count: int = 0  # rows that are not items (a preset's image rows, parents of variants)
    preset: str | None = None  # the export preset recognised (feeds.presets), or "mapping"


def read_stock_file(
    data: bytes,
    *,
    default_currency: str,
    invalid_threshold: float = 0.5,
    custom_identifiers: bool = False,
    location_name: str | None = None,
    column_mapping: dict | None = None,
    limits: Limits = Limits(),
) -> StockFile:
    """Parse and validate a stock file; never raises for bad file content.

    `custom_identifiers` (a store with custom product data): digits failing the GTIN check digit
    are kept as a SKU instead of refused. `column_mapping` (feeds.mapping, already validated): the
    file is read by it alone. Otherwise an export preset (feeds.presets) is recognised from the
    header, its per-location columns picked by `location_name`; else NearSt's aliases apply.
    """
    if not is_currency(default_currency.upper()):
        raise ValueError(f"unknown default currency {default_currency!r}")
    mapping = column_mapping
    header_row = mapping.get("header_row") if mapping else 1
    try:
        table = read_table(
            data,
            limits,
            separator=mapping.get("delimiter") if mapping else None,
            encoding=mapping.get("encoding") if mapping else None,
            header_line=header_row or 1,
        )
    except UnreadableFile as exc:
        return _unusable(str(exc))
    if table.cells.is_empty():
        return _unusable(NO_DATA_ROWS, warnings=table.warnings)

    skip_rules: tuple = ()
    preset = None
    if mapping:
        layout, cells, decimal_comma = _mapped_layout(table, mapping)
        preset = "mapping"
    else:
        first_row = table.cells.drop("row").row(0, named=True)
        match = recognise(first_row, location_name)
        if match is not None:
            layout = Layout(match.columns, has_header=True, invalid_reason=match.invalid_reason)
            skip_rules, preset = match.skip, match.preset.name
        else:
            layout = detect_layout(first_row)
        cells = table.cells.slice(1) if layout.has_header else table.cells
        # A decimal comma cannot be told from a separator in a comma-separated file.
        decimal_comma = table.separator != ","
    warnings = table.warnings + layout.warnings
    if layout.invalid_reason:
        return _unusable(layout.invalid_reason, cells.height, warnings, preset)
    if cells.is_empty():
        return _unusable(NO_DATA_ROWS, 0, warnings, preset)

    line_count = cells.height
    cells, skipped = _skip_rows(cells, skip_rules)
    checked, numbers = _checked_rows(
        _fields(cells, layout, spreadsheet=table.is_spreadsheet),
        default_currency.upper(),
        decimal_comma=decimal_comma,
        custom_identifiers=custom_identifiers,
        spreadsheet=table.is_spreadsheet,
    )
    rows, duplicates, rejected, notes = _split(checked, numbers)
    if SAFETY_STOCK not in layout.columns:
        rows = rows.drop(SAFETY_STOCK)
    superseded = _superseded(duplicates, rows)
    return StockFile(
        rows=rows,
        rejections=rejections(rejected, superseded),
        line_count=line_count,
        superseded_count=superseded.height,
        warnings=warnings + _row_warnings(notes, skipped, skip_rules),
        invalid_reason=verdict(rejected.height, line_count - skipped, invalid_threshold, layout.has_header),
        skipped_count=skipped,
        preset=preset,
    )


def _mapped_layout(table, mapping: dict) -> tuple[Layout, pl.DataFrame, bool]:
    """The store's column mapping applied: (layout, data rows, decimal comma)."""
    header_row = mapping.get("header_row")
    columns = [c for c in table.cells.columns if c != "row"]
    if header_row is None:
        header, cells = None, table.cells
    else:
        found = table.cells.filter(pl.col("row") == header_row)
        cells = table.cells.filter(pl.col("row") > header_row)
        if found.is_empty():
            reason = f"the store's column mapping says the header is on row {header_row}, but that row is empty or missing"
            return Layout({}, has_header=True, invalid_reason=reason), cells, False
        header = found.drop("row").row(0, named=True)
    mapped = mapped_columns(mapping, header, len(columns))
    layout = Layout(mapped.columns, has_header=header is not None, invalid_reason=mapped.invalid_reason)
    return layout, cells, bool(mapping.get("decimal_comma"))


def _skip_rows(cells: pl.DataFrame, rules: tuple) -> tuple[pl.DataFrame, int]:
    """Rows that are not items, by a preset's rules (feeds.presets.Skip), dropped and counted."""
    if not rules:
        return cells, 0
    conditions = []
    for kind, columns, values, _ in rules:
        if kind == "blank":
            conditions.append(pl.all_horizontal(pl.col(c).is_null() for c in columns))
        else:  # any_of: the first column's comma-separated tokens
            tokens = pl.col(columns[0]).str.to_lowercase().str.split(",").list.eval(pl.element().str.strip_chars())
            conditions.append(tokens.list.eval(pl.element().is_in(list(values))).list.any().fill_null(False))
    skip = pl.any_horizontal(conditions)
    kept = cells.filter(~skip)
    return kept, cells.height - kept.height


def _row_warnings(notes: pl.DataFrame, skipped: int, rules: tuple) -> tuple[str, ...]:
    warnings = []
    if skipped:
        why = "; ".join(rule[3] for rule in rules if rule[3])
        warnings.append(f"{skipped} rows are not items and were skipped ({why})")
    loose = notes.filter(pl.col("nearst_warning"))
    if loose.height:
        shown = ", ".join(str(r) for r in loose["row"].head(10).to_list()) + (", …" if loose.height > 10 else "")
        warnings.append(
            f"{loose.height} SKUs do not follow NearSt's rule ({NEARST_SKU_RULE}, needed for Google listings): "
            f"kept as given (rows {shown})"
        )
    rounded = notes.filter(pl.col("price_rounded"))
    if rounded.height:
        shown = ", ".join(str(r) for r in rounded["row"].head(10).to_list()) + (", …" if rounded.height > 10 else "")
        warnings.append(
            f"{rounded.height} prices had more decimal places than their currency (a spreadsheet number such as 9.949999)"
            f" and were rounded to its minor unit (rows {shown})"
        )
    return tuple(warnings)


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


_CHECKED = (*ROW_SCHEMA.keys(), SAFETY_STOCK, "identifier_raw", "reject", "price_rounded", "nearst_warning")


def checked_rows(
    fields: pl.DataFrame, default_currency: str, *, decimal_comma: bool, custom_identifiers: bool, spreadsheet: bool = False,
    fast_path: bool = True,
) -> pl.DataFrame:
    """Every row of `fields` parsed (_CHECKED columns, in row order), `reject` null if valid.

    Rows that pass the vectorised fast path (a plain GTIN with a valid check digit, a price with
    none or two decimals in a two-decimal currency, a plain count, no promotion or safety stock:
    nearly every row of a feed) take its values; only the others go through the detailed rules
    (`_validate`), which give the same answers for the fast rows (held so by the tests, which
    compare with `fast_path=False`)."""
    detailed = dict(decimal_comma=decimal_comma, custom_identifiers=custom_identifiers, spreadsheet=spreadsheet)
    if not fast_path:
        return _checked(_validate(fields, default_currency, **detailed))
    return _checked_rows(fields, default_currency, **detailed)[0]


def _checked_rows(
    fields: pl.DataFrame, default_currency: str, *, decimal_comma: bool, custom_identifiers: bool, spreadsheet: bool = False
) -> tuple[pl.DataFrame, pl.Series | None]:
    """`checked_rows` with the fast path and, when every row took it, each row's GTIN as a number
    (two are equal exactly when their identifiers are): else None."""
    detailed = dict(decimal_comma=decimal_comma, custom_identifiers=custom_identifiers, spreadsheet=spreadsheet)
    marked = with_fast_values(
        with_gtin_fast_path(fields.lazy(), "identifier_raw", ok="_fast_identifier", identifier="identifier", number="_number"),
        default_currency, decimal_comma=decimal_comma, ok="_fast_values", currency=uniform_currency(fields["currency_raw"], default_currency),
    ).with_columns(
        _fast=pl.col("_fast_identifier") & pl.col("_fast_values") & pl.col("promotion_raw").is_null() & pl.col("safety_raw").is_null()
    ).collect()
    fast = marked["_fast"]
    all_fast = bool(fast.all())
    quick = (marked if all_fast else marked.filter(fast)).select(
        *_CHECKED[:5],
        promotion_minor=pl.lit(None, pl.Int64),
        **{SAFETY_STOCK: pl.lit(None, pl.Int64)},
        identifier_raw="identifier_raw",
        reject=pl.lit(None, _REJECT),
        price_rounded=pl.lit(False),
        nearst_warning=pl.lit(False),
    )
    if all_fast:
        return quick, marked["_number"]
    slow = _checked(_validate(marked.filter(~fast).select(fields.columns), default_currency, **detailed))
    if quick.is_empty():
        return slow, None
    return pl.concat([quick, slow.cast(quick.schema)]).sort("row"), None


_REJECT = pl.Struct({"field": pl.String, "value": pl.String, "reason": pl.String})


def _checked(validated: pl.LazyFrame) -> pl.DataFrame:
    return validated.select(
        *_CHECKED[:-1], nearst_warning=nearst_sku_warning(pl.col("identifier"))
    ).collect()


def _validate(
    fields: pl.DataFrame, default_currency: str, *, decimal_comma: bool, custom_identifiers: bool, spreadsheet: bool = False
) -> pl.LazyFrame:
    """Adds the parsed columns and `reject`, a struct (field, value, reason) or null if valid."""
    identify = rule_for(custom_identifiers).column
    frame = identify(
        fields.lazy(), "identifier_raw", identifier="identifier", reason="identifier_reason"
    )
    frame = with_currency(frame, "currency_raw", default_currency)
    frame = with_price(frame, "price_raw", decimal_comma=decimal_comma, round_excess=spreadsheet)
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


def _split(checked: pl.DataFrame, numbers: pl.Series | None = None) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """(valid rows, earlier duplicates of valid rows, rejections, notes on valid rows).

    Of several valid rows with one identifier the last wins; invalid rows never supersede.
    `numbers` (from `_checked_rows`): every row is valid, and these tell equal identifiers.
    """
    if numbers is not None:
        valid = checked
        distinct = numbers.n_unique() == numbers.len()
    else:
        valid = checked.filter(pl.col("reject").is_null())
        distinct = _all_distinct(valid["identifier"])
    if distinct:  # no duplicates (the usual file): cheaper to count than to mark
        is_last = pl.lit(True)
    else:
        valid = valid.with_columns(_is_last=pl.col("identifier").is_last_distinct())
        is_last = pl.col("_is_last")
    return (
        valid.filter(is_last).select(*ROW_SCHEMA.keys(), SAFETY_STOCK),
        valid.filter(~is_last).select("row", "identifier", "identifier_raw"),
        checked.filter(pl.col("reject").is_not_null()).select("row", pl.col("reject").struct.unnest()),
        valid.select("row", "nearst_warning", "price_rounded"),
    )


def _all_distinct(identifiers: pl.Series) -> bool:
    """Whether no identifier repeats. GTINs are digits: counting them as integers is ~2x quicker
    than as strings, and distinct integers mean distinct strings (equal strings parse equal;
    "012" and "12" only make it look like a repeat, and the strings are counted then)."""
    numbers = identifiers.str.to_integer(strict=False)
    if numbers.null_count() == 0 and numbers.n_unique() == identifiers.len():
        return True
    return identifiers.n_unique() == identifiers.len()


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


def _unusable(reason: str, line_count: int = 0, warnings: tuple[str, ...] = (), preset: str | None = None) -> StockFile:
    parsed = unusable(StockFile, ROW_SCHEMA, reason, line_count, warnings)
    return dataclasses.replace(parsed, preset=preset)


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
