"""Countries (ISO 3166-1 alpha-2), their main currency (ISO 4217) and timezone, from CLDR via Babel."""

from __future__ import annotations

from datetime import datetime
from functools import cache
from zoneinfo import ZoneInfo

from babel.core import get_global
from babel.numbers import get_currency_precision, get_territory_currencies, list_currencies


@cache
def _countries() -> frozenset[str]:
    # "ZZ" is CLDR's unknown region, not a country
    return frozenset(code for code in get_global("territory_zones") if len(code) == 2 and code.isalpha() and code != "ZZ")


def is_country(code: str) -> bool:
    return code in _countries()


CURRENCY_CODES = frozenset(list_currencies())


def is_currency(code: str) -> bool:
    return code in CURRENCY_CODES


def default_currency(country: str) -> str | None:
    currencies = get_territory_currencies(country, tender=True, non_tender=False)
    return currencies[0] if currencies else None


def timezones(country: str) -> list[str]:
    return list(get_global("territory_zones").get(country, []))


def default_timezone(country: str) -> str | None:
    """The country's timezone when all its zones keep the same clock; None when the store must say which."""
    zones = timezones(country)
    if not zones or len({_clock(zone) for zone in zones}) > 1:
        return None
    return zones[0]


def _clock(zone: str) -> tuple:
    """A zone's UTC offsets in winter and summer: zones with equal clocks are interchangeable here."""
    tz = ZoneInfo(zone)
    return tuple(datetime(2026, month, 1, 12, tzinfo=tz).utcoffset() for month in (1, 7))


@cache
def currency_exponent(currency: str) -> int:
    """Digits after the decimal point in the currency's minor unit (GBP 2, JPY 0, KWD 3)."""
    if not is_currency(currency):
        raise ValueError(f"{currency!r} is not an ISO 4217 currency code")
    return get_currency_precision(currency)
