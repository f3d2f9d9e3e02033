"""Product identifiers (GTIN, ISBN-10, SKU) to one canonical form, as polars expressions.

Canonical form: a GTIN is 14 digits, left-padded with zeros, so the GTIN-8, UPC-A (12), EAN-13
and GTIN-14 spellings of one item are equal. An ISBN-10 becomes its ISBN-13 (an EAN-13), padded
to 14. Anything else must be a SKU of 6–32 ASCII letters and digits, kept as given.

The check-digit arithmetic is our own rather than python-stdnum's because stdnum validates one
Python string at a time, and this runs on every row of every stock file. The tests use stdnum as
the oracle.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import polars as pl
import polars.selectors as cs

GTIN_LENGTHS = (8, 12, 13, 14)
SKU_RULE = "a SKU must be 6–32 letters and digits"

# Lengths a numeric spreadsheet cell can have after losing leading zeros that we restore:
# 7 → GTIN-8, 11 → UPC-A, 12 → EAN-13, 13 → GTIN-14.
_RESTORABLE_LENGTHS = (7, 11, 12, 13)


class InvalidIdentifier(ValueError):
    """A value that is not a valid GTIN, ISBN or SKU; the message says why."""


def _digit(n: pl.Expr, k: int) -> pl.Expr:
    """The k-th decimal digit of n, counted from the right (k = 0 is the units)."""
    return (n // 10**k) % 10


def gs1_check_digit(body: pl.Expr, digits: int = 13) -> pl.Expr:
    """GS1 mod-10 check digit of an integer body (the number without its check digit).

    Weights alternate 3, 1, 3, ... starting from the body's rightmost digit, so leading zeros
    never change the result: one function serves GTIN-8, -12, -13 and -14.
    """
    total = sum(_digit(body, k) * (3 if k % 2 == 0 else 1) for k in range(digits))
    return (10 - total % 10) % 10


def gs1_valid(digits: pl.Expr) -> pl.Expr:
    """Whether a string of up to 14 digits ends in a correct GS1 check digit (null if not digits)."""
    n = digits.str.to_integer(strict=False)
    return gs1_check_digit(n // 10) == n % 10


def _isbn10_valid(body9: pl.Expr, check_char: pl.Expr) -> pl.Expr:
    # Weights 10..2 from the left are k + 2 for the k-th digit from the right of the 9-digit body.
    check = pl.when(check_char.str.to_uppercase() == "X").then(10).otherwise(
        check_char.str.to_integer(strict=False)
    )
    total = sum(_digit(body9, k) * (k + 2) for k in range(9)) + check
    return total % 11 == 0


def with_canonical_identifier(
    frame: pl.LazyFrame, source: str, *, identifier: str = "identifier", reason: str = "reason"
) -> pl.LazyFrame:
    """Add `identifier` (canonical, or null) and `reason` (null, or why invalid) for column `source`."""
    compact = pl.col("_id_compact")
    length = pl.col("_id_len")
    is_gtin = pl.col("_id_is_gtin")
    is_isbn = pl.col("_id_is_isbn")
    gtin_n = pl.col("_id_gtin_n")
    isbn_body = pl.col("_id_isbn_body")
    isbn13_body = isbn_body + 978_000_000_000
    return (
        frame.with_columns(_id_compact=pl.col(source).str.replace_all(r"[\s\-]", ""))
        .with_columns(_id_compact=pl.when(compact != "").then(compact))
        .with_columns(_id_len=compact.str.len_chars())
        .with_columns(
            _id_is_gtin=compact.str.contains(r"^[0-9]+$") & length.is_in(GTIN_LENGTHS),
            _id_is_isbn=(length == 10) & compact.str.contains(r"^[0-9]{9}[0-9Xx]$"),
            _id_is_sku=compact.str.contains(r"^[A-Za-z0-9]{6,32}$"),
        )
        .with_columns(
            _id_gtin_n=pl.when(is_gtin).then(compact.str.to_integer(strict=False)),
            _id_isbn_body=pl.when(is_isbn).then(compact.str.slice(0, 9).str.to_integer(strict=False)),
        )
        .with_columns(
            _id_gtin_expected=gs1_check_digit(gtin_n // 10),
            _id_isbn_ok=_isbn10_valid(isbn_body, compact.str.slice(9, 1)).fill_null(False),
        )
        .with_columns(
            _id_gtin_ok=(pl.col("_id_gtin_expected") == gtin_n % 10).fill_null(False),
        )
        .with_columns(
            pl.when(is_gtin & pl.col("_id_gtin_ok"))
            .then(compact.str.pad_start(14, "0"))
            .when(is_isbn & pl.col("_id_isbn_ok"))
            .then(
                pl.concat_str(
                    pl.lit("0978"),
                    compact.str.slice(0, 9),
                    gs1_check_digit(isbn13_body, 12).cast(pl.String),
                )
            )
            .when(~is_gtin & pl.col("_id_is_sku"))
            .then(compact)
            .alias(identifier),
            pl.when(compact.is_null())
            .then(pl.lit("missing identifier"))
            .when(is_gtin & ~pl.col("_id_gtin_ok"))
            .then(
                pl.concat_str(
                    pl.lit("invalid GTIN check digit (expected "),
                    pl.col("_id_gtin_expected").cast(pl.String),
                    pl.lit(")"),
                )
            )
            .when(is_isbn & pl.col("_id_isbn_ok"))
            .then(None)
            .when(compact.str.contains(r"[^A-Za-z0-9]"))
            .then(pl.lit(f"identifier has characters other than letters and digits ({SKU_RULE})"))
            .when(~pl.col("_id_is_sku"))
            .then(
                pl.concat_str(
                    pl.lit("identifier is not a GTIN or ISBN, and its length ("),
                    length.cast(pl.String),
                    pl.lit(f") does not fit a SKU ({SKU_RULE})"),
                )
            )
            .alias(reason),
        )
        .drop(cs.starts_with("_id_"))
    )


CUSTOM_RULE = "a custom identifier must be 1–36 letters and digits"
CUSTOM_MAX_LENGTH = 36


def with_custom_identifier(
    frame: pl.LazyFrame, source: str, *, identifier: str = "identifier", reason: str = "reason"
) -> pl.LazyFrame:
    """Like `with_canonical_identifier`, for stores with custom product data (NearSt's custom
    barcodes): a valid GTIN or ISBN is still canonicalised, so its spellings meet; anything else
    letters and digits up to 36 characters is kept as given, without check-digit rules."""
    compact = pl.col(source).str.replace_all(r"[\s\-]", "")
    custom = compact.str.contains(rf"^[A-Za-z0-9]{{1,{CUSTOM_MAX_LENGTH}}}$").fill_null(False)
    frame = with_canonical_identifier(frame, source, identifier=identifier, reason=reason)
    missing = compact.is_null() | (compact == "")
    return frame.with_columns(
        pl.when(pl.col(identifier).is_not_null()).then(pl.col(identifier)).when(custom).then(compact).alias(identifier),
        pl.when(pl.col(identifier).is_not_null() | custom)
        .then(None)
        .when(missing)
        .then(pl.lit("missing identifier"))
        .otherwise(pl.lit(f"identifier is not a GTIN or ISBN, and {CUSTOM_RULE}"))
        .alias(reason),
    )


def restore_lost_zeros(value: pl.Expr) -> pl.Expr:
    """Left-pad a number that a spreadsheet stripped of leading zeros back to a GTIN length.

    Only when the padded value has a valid check digit; leading zeros do not change the check
    digit, so the test is the same at any padding.
    """
    length = value.str.len_chars()
    restorable = (
        value.str.contains(r"^[0-9]+$")
        & length.is_in(_RESTORABLE_LENGTHS)
        & gs1_valid(value).fill_null(False)
    )
    return pl.when(restorable).then(value.str.pad_start(length + 1, "0")).otherwise(value)


def canonical_identifiers(values: pl.Series) -> pl.DataFrame:
    """Canonical identifier (or null) and the reason it is invalid (or null), per value."""
    frame = pl.LazyFrame({"value": values.cast(pl.String).str.strip_chars()})
    return with_canonical_identifier(frame, "value").select("identifier", "reason").collect()


def custom_identifier(value: str) -> str:
    """`with_custom_identifier` for one value: a GTIN or ISBN canonicalised, else letters and
    digits up to 36 characters kept as given (spaces and hyphens dropped)."""
    try:
        return canonical_identifier(value)
    except InvalidIdentifier:
        compact = _NOT_COMPACT.sub("", value)
        if not compact:
            raise
        if _CUSTOM.fullmatch(compact):
            return compact
        raise InvalidIdentifier(f"identifier is not a GTIN or ISBN, and {CUSTOM_RULE}") from None


@dataclass(frozen=True)
class IdentifierRule:
    """How a store names its products, one rule per kind of store, used alike by stock and
    product files (`column`, polars) and by orders, direct stock writes and lookups (`one`).

    Standard stores: a GTIN or ISBN, else a SKU of 6–32 letters and digits. Stores with custom
    product data (NearSt's custom barcodes): a GTIN or ISBN, else 1–36 letters and digits. The
    two forms of each rule are held to the same answers by tests over one table of cases.
    """

    custom: bool

    def one(self, value: str) -> str:
        """The canonical identifier; raises InvalidIdentifier saying why not."""
        return custom_identifier(value) if self.custom else canonical_identifier(value)

    def column(self, frame: pl.LazyFrame, source: str, *, identifier: str = "identifier", reason: str = "reason") -> pl.LazyFrame:
        identify = with_custom_identifier if self.custom else with_canonical_identifier
        return identify(frame, source, identifier=identifier, reason=reason)


STANDARD = IdentifierRule(custom=False)
CUSTOM = IdentifierRule(custom=True)


def rule_for(custom_products: bool) -> IdentifierRule:
    return CUSTOM if custom_products else STANDARD


def lookup_identifier(value: str) -> str:
    """The identifier under which a product asked for by `value` would be stored by any rule (a
    custom rule accepts everything a standard one does): for reads, which find nothing else."""
    return CUSTOM.one(value)


def canonical_identifier(value: str) -> str:
    """Canonical form of one identifier; raises InvalidIdentifier with the reason.

    The same rules as `with_canonical_identifier`, in plain Python: one value at a time (an API
    lookup, an order line) would otherwise pay milliseconds to plan a polars query. A property
    test holds the two to the same answers on generated values.
    """
    compact = _NOT_COMPACT.sub("", value.strip(_WHITESPACE))
    if not compact:
        raise InvalidIdentifier("missing identifier")
    if _DIGITS.fullmatch(compact) and len(compact) in GTIN_LENGTHS:
        expected = _gs1_check(compact[:-1])
        if int(compact[-1]) != expected:
            raise InvalidIdentifier(f"invalid GTIN check digit (expected {expected})")
        return compact.rjust(14, "0")
    if _ISBN10.fullmatch(compact) and _isbn10_ok(compact):
        body = "978" + compact[:9]
        return "0" + body + str(_gs1_check(body))
    if _SKU.fullmatch(compact):
        return compact
    if _NOT_ALNUM.search(compact):
        raise InvalidIdentifier(f"identifier has characters other than letters and digits ({SKU_RULE})")
    raise InvalidIdentifier(f"identifier is not a GTIN or ISBN, and its length ({len(compact)}) does not fit a SKU ({SKU_RULE})")


# Whitespace as polars (Rust) knows it, Unicode's White_Space: Python's `\s` and str.strip() also
# take the separators \x1c–\x1f, which would make the two forms of a rule disagree.
_WHITESPACE = "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
_NOT_COMPACT = re.compile(f"[{_WHITESPACE}\\-]")
_DIGITS = re.compile(r"[0-9]+")
_ISBN10 = re.compile(r"[0-9]{9}[0-9Xx]")
_SKU = re.compile(r"[A-Za-z0-9]{6,32}")
_CUSTOM = re.compile(rf"[A-Za-z0-9]{{1,{CUSTOM_MAX_LENGTH}}}")
_NOT_ALNUM = re.compile(r"[^A-Za-z0-9]")


def _gs1_check(body: str) -> int:
    total = sum(int(d) * (3 if k % 2 == 0 else 1) for k, d in enumerate(reversed(body)))
    return (10 - total % 10) % 10


def _isbn10_ok(value: str) -> bool:
    check = 10 if value[9] in "Xx" else int(value[9])
    return (sum(int(d) * (10 - k) for k, d in enumerate(value[:9])) + check) % 11 == 0