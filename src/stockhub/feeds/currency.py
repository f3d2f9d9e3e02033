"""ISO 4217 currency codes and their minor-unit exponents, from babel's CLDR data."""

from functools import cache

from babel.numbers import get_currency_precision, list_currencies

CURRENCY_CODES = frozenset(list_currencies())


def is_currency(code: str) -> bool:
    return code.upper() in CURRENCY_CODES


@cache
def currency_exponent(code: str) -> int:
    """Number of minor-unit digits: JPY 0, GBP 2, KWD 3."""
    upper = code.upper()
    if upper not in CURRENCY_CODES:
        raise ValueError(f"unknown currency code {code!r}")
    return get_currency_precision(upper)
