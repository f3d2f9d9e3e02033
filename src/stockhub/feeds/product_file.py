"""Custom product data (`products.csv`, NearSt-compatible) to validated products and rejected rows.

Pure functions over bytes, columnar like the stock file: row 1 names the columns (matched case-,
space- and underscore-insensitively, with the aliases POS plugins use), each later row describes
one product. A rejected row reports its first failing field, as stock files do.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from stockhub.feeds.decode import UnreadableFile, read_table
from stockhub.feeds.headers import normalise
from stockhub.feeds.identifiers import rule_for
from stockhub.feeds.stock_file import NO_DATA_ROWS, unusable, verdict

FIELDS = (
    "barcode", "brand", "title", "image_url", "description", "link", "condition",
    "category", "age_group", "gender", "color", "size", "item_group_id",
)  # fmt: skip
REQUIRED = ("barcode", "brand", "title", "image_url", "description")
ALIASES: dict[str, tuple[str, ...]] = {
    "barcode": ("barcode", "gtin", "ean", "upc", "upccode", "sku", "identifier"),
    "title": ("title", "name"),
    "image_url": ("imageurl", "image", "imagelink"),
    "link": ("link", "url"),
    "category": ("category", "googleproductcategory"),
    "age_group": ("agegroup", "age"),
    "gender": ("gender", "sex"),
    "color": ("color", "colour"),
    "item_group_id": ("itemgroupid", "groupid"),
}
CONDITIONS = ("new", "refurbished", "used")
AGE_GROUPS = ("newborn", "infant", "toddler", "kids", "adult")
GENDERS = ("male", "female", "unisex")
# Google Merchant Center's limits, which the data is ultimately for.
MAX_LENGTH = {
    "brand": 70, "title": 150, "image_url": 2000, "description": 5000, "link": 2000,
    "category": 750, "color": 100, "size": 100, "item_group_id": 50,
}  # fmt: skip
_URL = r"^https?://[^\s/]+(/\S*)?$"
_GROUP_ID = r"^[A-Za-z0-9_\-]+$"

PRODUCT_SCHEMA = {"row": pl.Int64, "identifier": pl.String} | {f: pl.String for f in FIELDS if f != "barcode"}

_FIELD_BY_NAME = {normalise(f).replace("_", ""): f for f in FIELDS} | {
    name: field for field, names in ALIASES.items() for name in names
}


@dataclass(frozen=True)
class ProductFile:
    rows: pl.DataFrame  # valid products, the last row of each identifier (PRODUCT_SCHEMA)
    rejections: pl.DataFrame  # one per rejected or superseded row, sorted by row (REJECTION_SCHEMA)
    line_count: int
    superseded_count: int
    warnings: tuple[str, ...]
    invalid_reason: str | None


def read_product_file(data: bytes, *, custom_identifiers: bool = False, invalid_threshold: float = 0.5) -> ProductFile:
    """Parse and validate custom product data; never raises for bad file content."""
    try:
        table = read_table(data)
    except UnreadableFile as exc:
        return _unusable(str(exc))
    if table.cells.is_empty():
        return _unusable(NO_DATA_ROWS, warnings=table.warnings)
    columns, warnings = _layout(table.cells.drop("row").row(0, named=True))
    warnings = table.warnings + warnings
    cells = table.cells.slice(1)
    missing = [f for f in REQUIRED if f not in columns]
    if missing:
        return _unusable(f"header has no {', '.join(missing)} column (required: {', '.join(REQUIRED)})", cells.height, warnings)
    if cells.is_empty():
        return _unusable(NO_DATA_ROWS, 0, warnings)

    raw = cells.select("row", *(pl.col(columns[f]).alias(f) if f in columns else pl.lit(None, pl.String).alias(f) for f in FIELDS))
    checked = _validate(raw.lazy(), custom_identifiers).collect()
    valid = checked.filter(pl.col("reject").is_null())
    is_last = pl.col("identifier").is_last_distinct()
    rows = valid.filter(is_last).select(PRODUCT_SCHEMA.keys())
    superseded = _superseded(valid.filter(~is_last), rows)
    rejected = checked.filter(pl.col("reject").is_not_null()).select("row", pl.col("reject").struct.unnest())
    return ProductFile(
        rows=rows,
        rejections=pl.concat([rejected, superseded]).sort("row"),
        line_count=cells.height,
        superseded_count=superseded.height,
        warnings=warnings,
        invalid_reason=verdict(rejected.height, cells.height, invalid_threshold),
    )


def _layout(first_row: dict[str, str | None]) -> tuple[dict[str, str], tuple[str, ...]]:
    """{field: table column} from the header row, and warnings about columns not used."""
    columns: dict[str, str] = {}
    ignored = []
    for column, text in first_row.items():
        if not text:
            continue
        field = _FIELD_BY_NAME.get(normalise(text).replace("_", ""))
        if field is None or field in columns:
            ignored.append(text)
        else:
            columns[field] = column
    return columns, ((f"unrecognised or repeated columns ignored: {', '.join(ignored)}",) if ignored else ())


def _validate(frame: pl.LazyFrame, custom_identifiers: bool) -> pl.LazyFrame:
    identify = rule_for(custom_identifiers).column
    frame = identify(frame, "barcode", identifier="identifier", reason="barcode_reason")
    lowered = {f: pl.col(f).str.to_lowercase() for f in ("condition", "age_group", "gender")}
    frame = frame.with_columns(
        condition=lowered["condition"].fill_null("new"), age_group=lowered["age_group"], gender=lowered["gender"]
    )
    reasons = {
        "barcode": pl.col("barcode_reason"),
        **{f: _required(f) for f in ("brand", "title", "description")},
        "image_url": _url("image_url", required=True),
        "link": _url("link", required=False),
        "condition": _one_of("condition", CONDITIONS),
        "category": _too_long("category"),
        "age_group": _one_of("age_group", AGE_GROUPS),
        "gender": _one_of("gender", GENDERS),
        "color": _too_long("color"),
        "size": _too_long("size"),
        "item_group_id": _item_group_id(),
    }
    return frame.with_columns(
        reject=pl.coalesce(
            pl.when(reason.is_not_null()).then(pl.struct(field=pl.lit(field), value=pl.col(field), reason=reason))
            for field, reason in reasons.items()
        )
    )


def _too_long(field: str) -> pl.Expr:
    limit = MAX_LENGTH[field]
    return pl.when(pl.col(field).str.len_chars() > limit).then(pl.lit(f"{field} is longer than {limit} characters"))


def _required(field: str) -> pl.Expr:
    return pl.when(pl.col(field).is_null()).then(pl.lit(f"{field} is required")).otherwise(_too_long(field))


def _url(field: str, *, required: bool) -> pl.Expr:
    value = pl.col(field)
    missing = pl.lit(f"{field} is required") if required else None
    return (
        pl.when(value.is_null())
        .then(missing)
        .when(~value.str.contains(_URL))
        .then(pl.lit(f"{field} must be a public http:// or https:// address"))
        .otherwise(_too_long(field))
    )


def _one_of(field: str, choices: tuple[str, ...]) -> pl.Expr:
    return pl.when(pl.col(field).is_not_null() & ~pl.col(field).is_in(choices)).then(
        pl.lit(f"{field} must be one of {', '.join(choices)}")
    )


def _item_group_id() -> pl.Expr:
    """Malformed, or missing where several products share a brand and title (variants of one)."""
    group = pl.col("item_group_id")
    product = [pl.col("brand").str.to_lowercase(), pl.col("title").str.to_lowercase()]
    variants = pl.col("identifier").drop_nulls().n_unique().over(product)
    return (
        pl.when(group.is_null() & pl.col("brand").is_not_null() & pl.col("title").is_not_null() & (variants > 1))
        .then(
            pl.concat_str(
                pl.lit("item_group_id is required: "),
                variants.cast(pl.String),
                pl.lit(" products share this brand and title (variants of one product need a common item_group_id)"),
            )
        )
        .when(group.is_not_null() & ~group.str.contains(_GROUP_ID))
        .then(pl.lit("item_group_id must be letters, digits, '-' or '_'"))
        .otherwise(_too_long("item_group_id"))
    )


def _superseded(duplicates: pl.DataFrame, rows: pl.DataFrame) -> pl.DataFrame:
    return duplicates.join(rows.select("identifier", winner="row"), on="identifier").select(
        "row",
        field=pl.lit("barcode"),
        value=pl.col("barcode"),
        reason=pl.concat_str(pl.lit("superseded by row "), pl.col("winner").cast(pl.String)),
    )


def _unusable(reason: str, line_count: int = 0, warnings: tuple[str, ...] = ()) -> ProductFile:
    return unusable(ProductFile, PRODUCT_SCHEMA, reason, line_count, warnings)
