"""Money: integer minor units plus an ISO 4217 currency inside; a decimal string at the edges."""

from __future__ import annotations

from decimal import Decimal

from stockhub.domain.places import currency_exponent


def to_decimal_string(minor: int | None, currency: str) -> str | None:
    """12345 GBP → "123.45"; 500 JPY → "500"."""
    if minor is None:
        return None
    exponent = currency_exponent(currency)
    return str(Decimal(minor).scaleb(-exponent).quantize(Decimal(1).scaleb(-exponent)))


def to_minor(amount: Decimal, currency: str) -> int:
    """Decimal("6.99") GBP → 699; more decimal places than the currency has is a ValueError."""
    exponent = currency_exponent(currency)
    minor = amount.scaleb(exponent)
    if minor != minor.to_integral_value():
        raise ValueError(f"{currency} allows {exponent} decimal places")
    return int(minor)
