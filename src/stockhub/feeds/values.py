"""Validation of the value fields (currency, price, quantity, promotion_amount) as polars columns.

Each `with_*` function adds the parsed value column and a `<field>_reason` column (null when the
value is fine). Amounts become integer minor units by splitting the text into integer and
fraction digits, never through a float.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import polars as pl
import polars.selectors as cs

from stockhub.domain.money import MAX_AMOUNT_DIGITS
from stockhub.domain.places import CURRENCY_CODES, currency_exponent
from stockhub.domain.stock import MAX_QUANTITY

EMPTY_OR_ZERO_PRICE = "price is empty or zero: row discarded"

_AMOUNT = r"^(?P<sign>-?)(?P<int>[0-9]*)(?:\.(?P<frac>[0-9]*))?$"


@cache
def _exponents() -> dict[str, int]:
    return {code: currency_exponent(code) for code in CURRENCY_CODES}


def with_currency(frame: pl.LazyFrame, source: str, default: str) -> pl.LazyFrame:
    """Adds `currency` (upper-case code, `default` when empty), `exponent` and `currency_reason`."""
    frame = frame.with_columns(currency=pl.col(source).str.to_uppercase().fill_null(default))
    return frame.with_columns(
        exponent=pl.col("currency").replace_strict(_exponents(), default=None, return_dtype=pl.Int64)
    ).with_columns(
        currency_reason=pl.when(pl.col("exponent").is_null()).then(
            pl.lit("unknown currency code (expected an ISO 4217 code such as GBP)")
        )
    )


def with_quantity(frame: pl.LazyFrame, source: str) -> pl.LazyFrame:
    """Adds `quantity` (Int64) and `quantity_reason`. Zero and negative counts are valid."""
    text = pl.col(source)
    whole = text.str.contains(r"^-?[0-9]+$").fill_null(False)
    digits = text.str.strip_chars_start("-").str.strip_chars_start("0").str.len_chars()
    value = pl.when(whole & (digits <= 10)).then(text.str.to_integer(strict=False))
    too_large = (digits > 10) | (value.abs() > MAX_QUANTITY)
    return frame.with_columns(
        quantity=pl.when(~too_large).then(value),
        quantity_reason=pl.when(~whole)
        .then(pl.lit("quantity must be a whole number"))
        .when(too_large)
        .then(pl.lit(f"quantity is too large (more than {MAX_QUANTITY:,})")),
    )


def with_safety_stock(frame: pl.LazyFrame, source: str, target: str = "safety_stock") -> pl.LazyFrame:
    """Adds `target` (Int64; null when the cell is empty) and `safety_reason`."""
    text = pl.col(source).str.strip_chars()
    given = text.is_not_null() & (text != "")
    whole = text.str.contains(r"^[0-9]{1,7}$").fill_null(False)
    return frame.with_columns(
        **{target: pl.when(given & whole).then(text.str.to_integer(strict=False))},
        safety_reason=pl.when(given & ~whole).then(pl.lit("safety_stock must be a whole number from 0 to 9,999,999")),
    )


def with_price(frame: pl.LazyFrame, source: str, *, decimal_comma: bool, round_excess: bool = False) -> pl.LazyFrame:
    """Adds `price_minor` (Int64), `price_reason` and `price_rounded`; needs the `exponent` column.

    `round_excess` (a spreadsheet, whose numeric cells carry float artefacts such as 9.949999):
    more decimal places than the currency has are rounded half up to its minor unit, in digits,
    never through a float, and `price_rounded` says so."""
    a = _parse_amount(frame, source, decimal_comma, round_excess)
    reason = (
        pl.when(pl.col(source).is_null())
        .then(pl.lit(EMPTY_OR_ZERO_PRICE))
        .when(~a["well_formed"])
        .then(pl.lit(_format_rule("price", decimal_comma)))
        .when(a["zero"])
        .then(pl.lit(EMPTY_OR_ZERO_PRICE))
        .when(a["negative"])
        .then(pl.lit("price must not be negative"))
    )
    reason = _range_reasons(reason, a, "price", round_excess)
    return a.finish(
        price_minor=pl.when(reason.is_null()).then(a["minor"]),
        price_reason=reason,
        price_rounded=(reason.is_null() & a["excess"]).fill_null(False),
    )


def with_promotion(frame: pl.LazyFrame, source: str, *, decimal_comma: bool) -> pl.LazyFrame:
    """Adds `promotion_minor` (Int64, null when absent) and `promotion_reason`; needs `exponent`
    and `price_minor`."""
    a = _parse_amount(frame, source, decimal_comma)
    reason = (
        pl.when(pl.col(source).is_null())
        .then(None)
        .when(~a["well_formed"])
        .then(pl.lit(_format_rule("promotion_amount", decimal_comma)))
        .when(a["negative"] | a["zero"])
        .then(pl.lit("promotion_amount must be greater than 0"))
    )
    reason = _range_reasons(reason, a, "promotion_amount").when(
        a["minor"] >= pl.col("price_minor")
    ).then(pl.lit("promotion_amount must be below the price"))
    return a.finish(promotion_minor=pl.when(reason.is_null()).then(a["minor"]), promotion_reason=reason)


def with_fast_values(
    frame: pl.LazyFrame, default: str, *, decimal_comma: bool, ok: str, currency: pl.Expr | None = None
) -> pl.LazyFrame:
    """The common case, vectorised, for columns currency_raw, price_raw and quantity_raw: adds
    `ok`, true where the currency has two decimal places (given, or the default), the price has
    up to 12 integer digits and none or exactly two decimals and is above zero, and the quantity
    is a plain count of at most MAX_QUANTITY; and there `currency`, `price_minor` and
    `quantity`, what `with_currency`, `with_price` (with or without `round_excess`: there is
    nothing to round) and `with_quantity` give. Where not `ok`, the row needs their detailed
    rules. Tests hold the two to the same answers. `currency`: `uniform_currency`'s column, when
    it found one, so that no row is looked up."""
    price = pl.col("price_raw").str.replace(",", ".", literal=True) if decimal_comma else pl.col("price_raw")
    shaped = pl.col("_fast_price").str.contains(r"^[0-9]{1,12}(?:\.[0-9]{2})?$").fill_null(False)
    digits = pl.col("_fast_price_digits")
    # without its decimal point, the text of a two-decimal price is its minor units
    minor = digits.cast(pl.Int64, strict=False) * pl.when(digits.str.len_bytes() < pl.col("_fast_price").str.len_bytes()).then(1).otherwise(100)
    # a cast of text to an integer takes exactly ASCII digits after an optional sign, as
    # str.to_integer does (a minus is a count's own)
    count = pl.col("quantity_raw").cast(pl.Int64, strict=False)
    plain = ~pl.col("quantity_raw").str.starts_with("+")
    currency_ok = pl.lit(True)
    if currency is None:
        currency = pl.col("currency_raw").str.to_uppercase().fill_null(default)
        currency_ok = pl.col("currency").is_in(_two_place_currencies())
    return (
        frame.with_columns(_fast_price=price)
        .with_columns(_fast_price_digits=pl.col("_fast_price").str.replace(".", "", literal=True))
        .with_columns(
            currency=currency,
            price_minor=pl.when(shaped).then(minor),
            quantity=pl.when(plain & count.is_between(-MAX_QUANTITY, MAX_QUANTITY)).then(count),
        )
        .with_columns(**{ok: (currency_ok & (pl.col("price_minor") >= 1) & pl.col("quantity").is_not_null()).fill_null(False)})
        .drop("_fast_price", "_fast_price_digits")
    )


@cache
def _two_place_currencies() -> list[str]:
    return sorted(code for code, exponent in _exponents().items() if exponent == 2)


def uniform_currency(column: pl.Series, default: str) -> pl.Expr | None:
    """The currency column of `with_fast_values` (for `column`, currency_raw) when every cell
    names one currency of two decimal places, in any case, or is empty with `default` such a
    currency: the usual file, told by one comparison instead of a look-up per row. Else None."""
    codes = _two_place_currencies()
    empty = column.null_count()
    if empty == column.len():  # no currency column, or every cell empty
        return pl.lit(default) if default in codes else None
    if empty and default not in codes:
        return None
    given = column[column.is_not_null().arg_max()]
    code = pl.Series([given]).str.to_uppercase()[0]  # as with_currency upper-cases
    if code not in codes or not (column == given).all():  # nulls aside
        return None
    if not empty:
        return pl.lit(code)
    return pl.when(pl.col("currency_raw").is_null()).then(pl.lit(default)).otherwise(pl.lit(code))


@dataclass(frozen=True)
class _Amount:
    """A frame with temporary columns describing an amount cell (`a["minor"]`, `a["zero"]`, ...);
    `finish` adds the result columns and drops the temporary ones."""

    frame: pl.LazyFrame
    prefix: str

    def __getitem__(self, name: str) -> pl.Expr:
        return pl.col(f"{self.prefix}{name}")

    def finish(self, **results: pl.Expr) -> pl.LazyFrame:
        return self.frame.with_columns(**results).drop(cs.starts_with(self.prefix))


def _parse_amount(frame: pl.LazyFrame, source: str, decimal_comma: bool, round_excess: bool = False) -> _Amount:
    prefix = f"_{source}_"
    a = _Amount(frame, prefix)  # for the column expressions; the frame is replaced below
    text = pl.col(source)
    if decimal_comma:
        text = text.str.replace(",", ".", literal=True)
    parts = text.str.extract_groups(_AMOUNT)
    frame = frame.with_columns(
        parts.struct.field("sign").alias(f"{prefix}sign"),
        parts.struct.field("int").str.strip_chars_start("0").alias(f"{prefix}int"),
        parts.struct.field("frac").fill_null("").str.strip_chars_end("0").alias(f"{prefix}frac"),
        # a lone "." or "-" matches the pattern but is not a number
        text.str.contains("[0-9]").alias(f"{prefix}has_digit"),
    )
    exponent = pl.col("exponent")
    excess = a["frac"].str.len_chars() > exponent
    fits = (a["int"].str.len_chars() <= MAX_AMOUNT_DIGITS) & (~excess | pl.lit(round_excess))
    # "6" + "99" → 699 minor units: exact, where a float would round.
    kept = a["frac"].str.slice(0, exponent).str.pad_end(exponent, "0")
    minor_text = pl.concat_str(pl.lit("0"), a["int"], kept)
    # rounding half up: the first dropped digit decides
    round_up = (excess & (a["frac"].str.slice(exponent, 1) >= "5")).fill_null(False).cast(pl.Int64)
    frame = frame.with_columns(
        (a["sign"].is_not_null() & a["has_digit"]).fill_null(False).alias(f"{prefix}well_formed"),
        ((a["int"] == "") & (a["frac"] == "")).fill_null(False).alias(f"{prefix}zero"),
        (a["sign"] == "-").fill_null(False).alias(f"{prefix}negative"),
        pl.when(fits).then(minor_text.str.to_integer(strict=False) + round_up).alias(f"{prefix}minor"),
        excess.fill_null(False).alias(f"{prefix}excess"),
    )
    return _Amount(frame, prefix)


def _range_reasons(reason: pl.Expr, a: _Amount, label: str, round_excess: bool = False) -> pl.Expr:
    exponent = pl.col("exponent")
    return (
        reason.when(a["int"].str.len_chars() > MAX_AMOUNT_DIGITS)
        .then(pl.lit(f"{label} is too large"))
        .when(a["excess"] & pl.lit(not round_excess))
        .then(
            pl.concat_str(
                pl.lit(f"{label} has more decimal places than "),
                pl.col("currency"),
                pl.lit(" allows ("),
                exponent.cast(pl.String),
                pl.lit(")"),
            )
        )
        .when(a["minor"] * 100 < pl.lit(10, pl.Int64).pow(exponent))
        .then(pl.lit(f"{label} is below 0.01"))
    )


def _format_rule(label: str, decimal_comma: bool) -> str:
    example = "6.99 or 6,99" if decimal_comma else "6.99 (with a dot)"
    return f"{label} must be a number such as {example}, without currency symbols, thousands separators or spaces"
