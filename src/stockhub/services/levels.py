"""How a stock level reads to clients, the same in the stock API and in inventory.updated events."""

from __future__ import annotations

from stockhub.domain.money import to_decimal_string
from stockhub.domain.stock import StockLevel


def render_level(row) -> dict:
    """on_hand, committed, available and status (by the domain's one rule), price, currency and
    promotion amount of anything with a stock level's columns."""
    level = StockLevel(on_hand=row.on_hand, committed=row.committed, safety_stock=row.safety_stock, expired=row.expired)
    return {
        "on_hand": level.on_hand,
        "committed": level.committed,
        "safety_stock": level.safety_stock,
        "available": level.available,
        "status": level.status.value,
        "price": to_decimal_string(row.price_minor, row.currency),
        "currency": row.currency,
        "promotion_amount": to_decimal_string(row.promotion_minor, row.currency),
    }
