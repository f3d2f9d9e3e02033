"""Stock levels and the one availability rule.

`available` is the only place stockhub computes what can be sold; every reader (the stock
API, and later orders and webhooks) goes through it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class StockStatus(StrEnum):
    IN_STOCK = "in_stock"
    OUT_OF_STOCK = "out_of_stock"
    EXPIRED = "expired"  # not reported by any upload for the expiry period: nothing is sold from it


class MovementReason(StrEnum):
    """Why a ledger movement changed `on_hand` or `committed`."""

    FEED = "feed"  # a stock file or pushed batch reported a new count


@dataclass(frozen=True)
class StockLevel:
    on_hand: int
    committed: int = 0
    safety_stock: int = 0
    expired: bool = False

    @property
    def available(self) -> int:
        return available(self.on_hand, self.committed, self.safety_stock, self.expired)

    @property
    def status(self) -> StockStatus:
        if self.expired:
            return StockStatus.EXPIRED
        return StockStatus.IN_STOCK if self.available > 0 else StockStatus.OUT_OF_STOCK


def available(on_hand: int, committed: int, safety_stock: int = 0, expired: bool = False) -> int:
    """What can still be sold: on_hand − committed − safety_stock, floored at 0; nothing once expired."""
    if expired:
        return 0
    return max(on_hand - committed - safety_stock, 0)
