"""Field types the request models share: numbers bounded before any arithmetic, and JSON types
taken strictly (`false` is no integer, `1` no boolean), so the OpenAPI description is the truth."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, Field, Strict, WithJsonSchema

from stockhub.domain import places
from stockhub.domain.money import AMOUNT_PATTERN, AMOUNT_RULE, MAX_AMOUNT_DIGITS, parse_amount
from stockhub.domain.stock import MAX_QUANTITY

Int = Annotated[int, Strict()]
Bool = Annotated[bool, Strict()]
Number = Annotated[float, Strict()]

# A count of units: on hand, reported or adjusted to; the same bound as stock files.
Quantity = Annotated[int, Strict(), Field(ge=-MAX_QUANTITY, le=MAX_QUANTITY)]

# A money amount: "6.99" (or a JSON number), refused before conversion when it is not plain
# digits or too large to store (`domain.money.parse_amount`).
Amount = Annotated[
    Decimal,
    BeforeValidator(parse_amount),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": AMOUNT_PATTERN},
                {"type": "number", "minimum": 0, "exclusiveMaximum": 10**MAX_AMOUNT_DIGITS},
            ],
            "description": AMOUNT_RULE,
        }
    ),
]


def _currency(value: str) -> str:
    if not places.is_currency(value.upper()):
        raise ValueError(f"{value!r} is not an ISO 4217 currency code")
    return value.upper()


# An ISO 4217 code, any case in, upper case out.
Currency = Annotated[str, AfterValidator(_currency)]
