"""Product identifiers (GTIN, ISBN-10, SKU) to one canonical form: the one identifier rule, as
polars expressions (files) and one value at a time (orders, stock writes, lookups).

Canonical form: a GTIN is 14 digits, left-padded with zeros, so the GTIN-8, UPC-A (12), EAN-13
and GTIN-14 spellings of one item are equal. An ISBN-10 becomes its ISBN-13 (an EAN-13), padded
to 14. Only such GTIN/ISBN-shaped values lose spaces and hyphens. Anything else is a SKU, kept
exactly as given after trimming: 1–64 letters, digits and `- _ . /` (`TEE-L`, `MUG.BLUE_01`,
`A/1`, `ab-12`). SKUs are case-sensitive: `TEE-L` and `tee-l` are two products, and the stored
SKU is the one given (a partner's mapping may compare case-insensitively; it sees the original).
NearSt's stricter SKU rule (6–32 letters and digits, for Google listings) is only a warning
(`nearst_sku_warning`).

A number that a spreadsheet stripped of leading zeros is restored (`restore_lost_zeros`) when
the zero-padded value is a valid GTIN; a 9- or 10-digit number that is (padded to 10 digits) a
valid ISBN-10 is read as that ISBN-10 first, the same way in files, the API and lookups: ISBN-10s
starting with 0 are English-language books, while GTINs with three or more leading zeros are rare.

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
SKU_MAX_LENGTH = 64
SKU_CHARACTERS = "letters, digits and - _ . /"
SKU_RULE = f"a SKU is 1–{SKU_MAX_LENGTH} {SKU_CHARACTERS}"
NEARST_SKU_RULE = "6–32 letters and digits"
_SKU_PATTERN = rf"^[A-Za-z0-9._/\-]{{1,{SKU_MAX_LENGTH}}}$"
_NEARST_SKU_PATTERN = r"^[A-Za-z0-9]{6,32}$"


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
    # Weights 10..2 from the left are k + 2 for the k-th digit from the right of the 9-digit body
    # (leading zeros of the body weigh nothing).
    check = pl.when(check_char.str.to_uppercase() == "X").then(10).otherwise(
        check_char.str.to_integer(strict=False)
    )
    total = sum(_digit(body9, k) * (k + 2) for k in range(9)) + check
    return total % 11 == 0


def with_identifier(
    frame: pl.LazyFrame, source: str, *, custom: bool = False, identifier: str = "identifier", reason: str = "reason"
) -> pl.LazyFrame:
    """Add `identifier` (canonical, or null) and `reason` (null, or why invalid) for column `source`.

    A GTIN-shaped value (8, 12, 13 or 14 digits once spaces and hyphens are dropped) must have a
    valid check digit; a valid ISBN-10 becomes its ISBN-13; anything else is a SKU kept as given
    (trimmed) when it is 1–64 letters, digits and `- _ . /`. `custom` (stores with custom product
    data, NearSt's custom barcodes): a GTIN-shaped value with a wrong check digit is kept as a
    SKU instead of refused.
    """
    trimmed = pl.col("_id_trimmed")
    compact = pl.col("_id_compact")
    length = compact.str.len_chars()
    is_gtin = pl.col("_id_is_gtin")
    gtin_n = pl.col("_id_gtin_n")
    isbn_body = pl.col("_id_isbn_body")
    isbn13_body = isbn_body + 978_000_000_000
    gtin_ok = pl.col("_id_gtin_ok")
    isbn_ok = pl.col("_id_isbn_ok")
    sku_ok = pl.col("_id_sku_ok")
    as_sku = (~is_gtin | pl.lit(custom)) & sku_ok
    return (
        frame.with_columns(_id_trimmed=pl.col(source).str.strip_chars())
        .with_columns(_id_trimmed=pl.when(trimmed != "").then(trimmed))
        .with_columns(_id_compact=trimmed.str.replace_all(r"[\s\-]", ""))
        .with_columns(
            _id_is_gtin=(compact.str.contains(r"^[0-9]+$") & length.is_in(GTIN_LENGTHS)).fill_null(False),
            _id_is_isbn=((length == 10) & compact.str.contains(r"^[0-9]{9}[0-9Xx]$")).fill_null(False),
            _id_sku_ok=trimmed.str.contains(_SKU_PATTERN).fill_null(False),
        )
        .with_columns(
            _id_gtin_n=pl.when(is_gtin).then(compact.str.to_integer(strict=False)),
            _id_isbn_body=pl.when(pl.col("_id_is_isbn")).then(compact.str.slice(0, 9).str.to_integer(strict=False)),
        )
        .with_columns(
            _id_gtin_expected=gs1_check_digit(gtin_n // 10),
            _id_isbn_ok=_isbn10_valid(isbn_body, compact.str.slice(9, 1)).fill_null(False),
        )
        .with_columns(_id_gtin_ok=(pl.col("_id_gtin_expected") == gtin_n % 10).fill_null(False))
        .with_columns(
            pl.when(is_gtin & gtin_ok)
            .then(compact.str.pad_start(14, "0"))
            .when(isbn_ok)
            .then(
                pl.concat_str(
                    pl.lit("0978"),
                    compact.str.slice(0, 9),
                    gs1_check_digit(isbn13_body, 12).cast(pl.String),
                )
            )
            .when(as_sku)
            .then(trimmed)
            .alias(identifier),
            pl.when(trimmed.is_null())
            .then(pl.lit("missing identifier"))
            .when((is_gtin & gtin_ok) | isbn_ok | as_sku)
            .then(None)
            .when(is_gtin)
            .then(
                pl.concat_str(
                    pl.lit("invalid GTIN check digit (expected "),
                    pl.col("_id_gtin_expected").cast(pl.String),
                    pl.lit(")"),
                )
            )
            .when(trimmed.str.len_chars() > SKU_MAX_LENGTH)
            .then(pl.lit(_TOO_LONG))
            .otherwise(pl.lit(_BAD_CHARACTERS))
            .alias(reason),
        )
        .drop(cs.starts_with("_id_"))
    )


def with_gtin_fast_path(frame: pl.LazyFrame, source: str, *, ok: str, identifier: str, number: str | None = None) -> pl.LazyFrame:
    """The common case, vectorised: adds `ok`, true where `source` is exactly a GTIN-8, UPC-A
    (12), EAN-13 or GTIN-14 of plain digits with a valid check digit, and there `identifier`,
    what `with_identifier` gives under either rule (a valid GTIN is the same product for standard
    and custom stores), and `number` (if given; UInt64), the GTIN as a number: where `ok`, equal
    numbers are equal identifiers. Where not `ok`, the value needs `with_identifier`'s detailed
    rules. Tests hold the two to the same answers."""
    text = pl.col(source)
    # A cast of text to an unsigned integer takes exactly ASCII digits after an optional "+"
    # (str.to_integer's syntax, without a minus): without the plus, and of a GTIN's length in
    # bytes, the text is a GTIN's plain digits.
    shaped = text.str.len_bytes().is_in(GTIN_LENGTHS) & ~text.str.starts_with("+")
    n = number or "_fast_gtin_n"
    marked = frame.with_columns(**{n: text.cast(pl.UInt64, strict=False)}).with_columns(
        **{
            ok: (shaped & (_gs1_weighted_sum(pl.col(n)) % 10 == 0)).fill_null(False),
            identifier: text.str.pad_start(14, "0"),
        }
    )
    return marked if number else marked.drop(n)


# The GS1 weighted digit sum (mod 10) of every 4-digit number "abcd": weights 3, 1, 3, 1.
_CHUNK_SUMS = pl.Series(
    [(3 * a + b + 3 * c + d) % 10 for a in range(10) for b in range(10) for c in range(10) for d in range(10)], dtype=pl.UInt8
)


def _gs1_weighted_sum(n: pl.Expr) -> pl.Expr:
    """The GS1 sum of a whole GTIN of up to 14 digits (check digit included, weights 1, 3, 1, ...
    from the right), mod 10 in each 4-digit chunk: 0 mod 10 exactly when the check digit is
    valid. Four table look-ups instead of the division and remainder per digit that
    `gs1_check_digit` does, which take most of the time of checking a million barcodes. The
    chunks start at even positions, so one table serves all four."""
    sums = pl.lit(_CHUNK_SUMS)
    return (
        sums.gather(n % 10_000)
        + sums.gather(n // 10_000 % 10_000)
        + sums.gather(n // 10**8 % 10_000)
        + sums.gather(n // 10**12 % 10_000)  # a longer number (not a GTIN) stays in the table
    )


_TOO_LONG = f"identifier is not a GTIN or ISBN, and is longer than a SKU may be ({SKU_RULE})"
_BAD_CHARACTERS = f"identifier is not a GTIN or ISBN, and has characters a SKU may not have ({SKU_RULE})"


def with_canonical_identifier(
    frame: pl.LazyFrame, source: str, *, identifier: str = "identifier", reason: str = "reason"
) -> pl.LazyFrame:
    """The standard stores' rule (`with_identifier`)."""
    return with_identifier(frame, source, custom=False, identifier=identifier, reason=reason)


def with_custom_identifier(
    frame: pl.LazyFrame, source: str, *, identifier: str = "identifier", reason: str = "reason"
) -> pl.LazyFrame:
    """The rule of stores with custom product data (`with_identifier`, custom)."""
    return with_identifier(frame, source, custom=True, identifier=identifier, reason=reason)


def nearst_sku_warning(identifier: pl.Expr) -> pl.Expr:
    """True where an accepted identifier is a SKU that NearSt's rule (6–32 letters and digits,
    for Google listings) would refuse: kept, but worth a warning."""
    canonical_gtin = identifier.str.contains(r"^[0-9]{14}$")
    return (~canonical_gtin & ~identifier.str.contains(_NEARST_SKU_PATTERN)).fill_null(False)


def is_nearst_sku(identifier: str) -> bool:
    """`nearst_sku_warning` for one accepted identifier (False: worth a warning)."""
    return bool(re.fullmatch(r"[0-9]{14}", identifier) or re.fullmatch(_NEARST_SKU_PATTERN[1:-1], identifier))


def restore_lost_zeros(value: pl.Expr) -> pl.Expr:
    """A number that a spreadsheet stripped of any number of leading zeros, padded back.

    Exact GTIN lengths (8, 12, 13, 14) are left as they are: padding never changes a GTIN's
    canonical form. A 9- or 10-digit number that is a valid ISBN-10 once padded to 10 digits is
    that ISBN-10 (the ISBN wins over a GTIN that would also fit). Any other number of up to 13
    digits whose check digit is valid is padded to the next GTIN length (leading zeros never
    change a GS1 check digit, so the test is the same at any padding). `restore_lost_zeros_one`
    is the same rule for one value.
    """
    length = value.str.len_chars()
    digits = value.str.contains(r"^[0-9]{1,14}$").fill_null(False)
    n = value.str.to_integer(strict=False)
    isbn = digits & length.is_in((9, 10)) & _isbn10_valid(n // 10, value.str.slice(-1, 1)).fill_null(False)
    gtin = digits & ~length.is_in(GTIN_LENGTHS) & (length < 14) & gs1_valid(value).fill_null(False)
    target = pl.when(length < 8).then(8).otherwise(12)
    return (
        pl.when(isbn)
        .then(value.str.pad_start(10, "0"))
        .when(gtin)
        .then(value.str.pad_start(target, "0"))
        .otherwise(value)
    )


def restore_lost_zeros_one(value: str) -> str:
    """`restore_lost_zeros` for one value."""
    if not _DIGITS.fullmatch(value) or len(value) > 14:
        return value
    if len(value) in (9, 10) and _isbn10_ok(value.rjust(10, "0")):
        return value.rjust(10, "0")
    if len(value) not in GTIN_LENGTHS and len(value) < 14 and int(value[-1]) == _gs1_check(value[:-1]):
        return value.rjust(8 if len(value) < 8 else 12, "0")
    return value


def canonical_identifiers(values: pl.Series, *, custom: bool = False) -> pl.DataFrame:
    """Canonical identifier (or null) and the reason it is invalid (or null), per value."""
    frame = pl.LazyFrame({"value": values.cast(pl.String)})
    return with_identifier(frame, "value", custom=custom).select("identifier", "reason").collect()


@dataclass(frozen=True)
class IdentifierRule:
    """How a store names its products, one rule per kind of store, used alike by stock and
    product files (`column`, polars) and by orders, direct stock writes and lookups (`one`).

    Standard stores: a GTIN (valid check digit) or ISBN, else a SKU of 1–64 letters, digits and
    `- _ . /` kept as given. Stores with custom product data: the same, but digits with a wrong
    GTIN check digit are a SKU rather than refused. The two forms of each rule are held to the
    same answers by tests over one table of cases and generated values.
    """

    custom: bool

    def one(self, value: str) -> str:
        """The canonical identifier; raises InvalidIdentifier saying why not."""
        return identify(value, custom=self.custom)

    def column(self, frame: pl.LazyFrame, source: str, *, identifier: str = "identifier", reason: str = "reason") -> pl.LazyFrame:
        return with_identifier(frame, source, custom=self.custom, identifier=identifier, reason=reason)


STANDARD = IdentifierRule(custom=False)
CUSTOM = IdentifierRule(custom=True)


def rule_for(custom_products: bool) -> IdentifierRule:
    return CUSTOM if custom_products else STANDARD


def lookup_identifier(value: str) -> str:
    """The identifier under which a product asked for by `value` would be stored by any rule (a
    custom rule accepts everything a standard one does): for reads, which find nothing else."""
    return CUSTOM.one(value)


def canonical_identifier(value: str) -> str:
    """The standard rule for one value (`identify`)."""
    return identify(value, custom=False)


def custom_identifier(value: str) -> str:
    """The custom-data rule for one value (`identify`)."""
    return identify(value, custom=True)


def identify(value: str, *, custom: bool = False) -> str:
    """Canonical form of one identifier; raises InvalidIdentifier with the reason.

    The same rule as `with_identifier`, in plain Python: one value at a time (an API lookup, an
    order line) would otherwise pay milliseconds to plan a polars query. Tests hold the two to
    the same answers on a table of cases and on generated values.
    """
    trimmed = value.strip(_WHITESPACE)
    if not trimmed:
        raise InvalidIdentifier("missing identifier")
    compact = _NOT_COMPACT.sub("", trimmed)
    is_gtin = bool(_DIGITS.fullmatch(compact)) and len(compact) in GTIN_LENGTHS
    if is_gtin:
        expected = _gs1_check(compact[:-1])
        if int(compact[-1]) == expected:
            return compact.rjust(14, "0")
    if _ISBN10.fullmatch(compact) and _isbn10_ok(compact):
        body = "978" + compact[:9]
        return "0" + body + str(_gs1_check(body))
    if (not is_gtin or custom) and _SKU.fullmatch(trimmed):
        return trimmed
    if is_gtin:
        raise InvalidIdentifier(f"invalid GTIN check digit (expected {expected})")
    raise InvalidIdentifier(_TOO_LONG if len(trimmed) > SKU_MAX_LENGTH else _BAD_CHARACTERS)


# Whitespace as polars (Rust) knows it, Unicode's White_Space: Python's `\s` and str.strip() also
# take the separators \x1c–\x1f, which would make the two forms of a rule disagree.
_WHITESPACE = "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
_NOT_COMPACT = re.compile(f"[{_WHITESPACE}\\-]")
_DIGITS = re.compile(r"[0-9]+")
_ISBN10 = re.compile(r"[0-9]{9}[0-9Xx]")
_SKU = re.compile(_SKU_PATTERN[1:-1])


def _gs1_check(body: str) -> int:
    total = sum(int(d) * (3 if k % 2 == 0 else 1) for k, d in enumerate(reversed(body)))
    return (10 - total % 10) % 10


def _isbn10_ok(value: str) -> bool:
    check = 10 if value[9] in "Xx" else int(value[9])
    return (sum(int(d) * (10 - k) for k, d in enumerate(value[:9])) + check) % 11 == 0
