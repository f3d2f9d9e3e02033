"""Money: integer minor units plus an ISO 4217 currency inside; a decimal string at the edges."""

from __future__ import annotations

import re
from decimal import Decimal

from stockhub.domain.places import currency_exponent

# Integer digits of an amount: a trillion of any currency is no shelf price, and even in minor
# units of a currency with 4 decimals it stays far inside the 64-bit integers money is stored in.
MAX_AMOUNT_DIGITS = 12
MAX_DECIMAL_PLACES = 20  # trailing zeros included ("6.990"); the currency decides how many may be non-zero
AMOUNT_PATTERN = rf"^[0-9]{{1,{MAX_AMOUNT_DIGITS}}}(\.[0-9]{{1,{MAX_DECIMAL_PLACES}}})?$"
_AMOUNT = re.compile(rf"-?[0-9]*(\.[0-9]*)?")
AMOUNT_RULE = f"a decimal number such as 6.99: digits and a dot, no exponent, at most {MAX_AMOUNT_DIGITS} digits before the dot"


def parse_amount(value: str | int | float | Decimal) -> Decimal:
    """The one way an amount from outside becomes a Decimal: bounded before any arithmetic, so
    "1e999999" is refused at once instead of freezing the process converting it.
    A ValueError says what is wrong."""
    if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
        raise ValueError(f"must be {AMOUNT_RULE}")
    if isinstance(value, int | float | Decimal):  # a JSON number
        if value != value or abs(value) == float("inf"):
            raise ValueError(f"must be {AMOUNT_RULE}")
        if abs(value) >= 10**MAX_AMOUNT_DIGITS:
            raise ValueError(f"is too large: at most {MAX_AMOUNT_DIGITS} digits before the dot")
        return Decimal(repr(value) if isinstance(value, float) else value)
    else:
        text = value.strip()
        if len(text) > MAX_AMOUNT_DIGITS + MAX_DECIMAL_PLACES + 2 and _AMOUNT.fullmatch(text):
            text = None  # well formed, but too long
        elif not _AMOUNT.fullmatch(text) or not any(c.isdigit() for c in text):
            raise ValueError(f"must be {AMOUNT_RULE}")
    if text is None:
        raise ValueError(f"is too large: at most {MAX_AMOUNT_DIGITS} digits before the dot")
    whole, _, fraction = text.lstrip("-").partition(".")
    if len(whole.lstrip("0")) > MAX_AMOUNT_DIGITS:
        raise ValueError(f"is too large: at most {MAX_AMOUNT_DIGITS} digits before the dot")
    if len(fraction) > MAX_DECIMAL_PLACES:
        raise ValueError(f"has more than {MAX_DECIMAL_PLACES} decimal places")
    return Decimal(text)


def to_decimal_string(minor: int | None, currency: str) -> str | None:
    """12345 GBP → "123.45"; 500 JPY → "500"."""
    if minor is None:
        return None
    exponent = currency_exponent(currency)
    return str(Decimal(minor).scaleb(-exponent).quantize(Decimal(1).scaleb(-exponent)))


def to_minor(amount: Decimal, currency: str) -> int:
    """Decimal("6.99") GBP → 699; more decimal places than the currency has, or an amount
    `parse_amount` would refuse, is a ValueError."""
    if not amount.is_finite() or amount.adjusted() >= MAX_AMOUNT_DIGITS:
        raise ValueError(f"is too large: at most {MAX_AMOUNT_DIGITS} digits before the dot")
    exponent = currency_exponent(currency)
    minor = amount.scaleb(exponent)
    if minor != minor.to_integral_value():
        raise ValueError(f"{currency} allows {exponent} decimal places")
    return int(minor)
