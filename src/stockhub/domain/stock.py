"""Stock levels and the one availability rule.

`available` is the only place stockhub computes what can be sold; every reader (the stock
API, and later orders and webhooks) goes through it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum


class StockStatus(StrEnum):
    IN_STOCK = "in_stock"
    OUT_OF_STOCK = "out_of_stock"
    EXPIRED = "expired"  # not reported by any upload for the expiry period: nothing is sold from it


class MovementReason(StrEnum):
    """Why a ledger movement changed `on_hand` or `committed`."""

    FEED = "feed"  # a stock file or pushed batch reported a new count
    COUNT = "count"  # an inventory master set the count directly
    ADJUSTMENT = "adjustment"  # a delta applied by an inventory master
    ORDER_COMMIT = "order_commit"  # units held for a booked order
    ORDER_CONFIRM = "order_confirm"  # a confirmed order's units leave the count
    ORDER_RELEASE = "order_release"  # a cancelled unconfirmed order frees its units
    ORDER_RESTOCK = "order_restock"  # a cancelled confirmed order's units come back


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
        return status(self.available, self.expired)


def status(available_units: int, expired: bool = False) -> StockStatus:
    if expired:
        return StockStatus.EXPIRED
    return StockStatus.IN_STOCK if available_units > 0 else StockStatus.OUT_OF_STOCK


def available(on_hand: int, committed: int, safety_stock: int = 0, expired: bool = False) -> int:
    """What can still be sold: on_hand − committed − safety_stock, floored at 0; nothing once expired."""
    if expired:
        return 0
    return max(on_hand - committed - safety_stock, 0)


MAX_QUANTITY = 1_000_000_000  # units of one product at one store: any count, report or adjustment


class QuantityOutOfRange(ValueError):
    """A count beyond what any store holds (and the storage's 32-bit integers)."""

    def __init__(self, on_hand: int):
        super().__init__(f"on_hand {on_hand:,} is out of range: at most {MAX_QUANTITY:,} units either way")
        self.on_hand = on_hand


class Shortfall(Exception):
    """A request for more units than are available."""

    def __init__(self, requested: int, available: int):
        super().__init__(f"{requested} requested, {available} available")
        self.requested = requested
        self.available = available


class BelowCommitted(Exception):
    """A count that would leave fewer units on hand than are committed to orders."""

    def __init__(self, on_hand: int, committed: int):
        super().__init__(f"on_hand {on_hand} would be below the {committed} units committed to orders")
        self.on_hand = on_hand
        self.committed = committed


# What each stock effect does to a level. Every one keeps committed ≤ max(on_hand, 0).


def commit(level: StockLevel, quantity: int) -> StockLevel:
    """Hold units for an order: refused whole when fewer are available."""
    if quantity > level.available:
        raise Shortfall(quantity, level.available)
    return replace(level, committed=level.committed + quantity)


def release(level: StockLevel, quantity: int) -> StockLevel:
    """An unconfirmed order is cancelled: its units are free again."""
    return replace(level, committed=max(level.committed - quantity, 0))


def ship(level: StockLevel, quantity: int) -> StockLevel:
    """An order is confirmed: its held units leave the store's count (10/2/8 → 8/0/8)."""
    return replace(level, on_hand=level.on_hand - quantity, committed=max(level.committed - quantity, 0))


def sell_now(level: StockLevel, quantity: int) -> StockLevel:
    """A pre-confirmed order: commit and confirm at once."""
    return ship(commit(level, quantity), quantity)


def restock(level: StockLevel, quantity: int) -> StockLevel:
    """A confirmed order is cancelled and its units go back on the shelf."""
    return replace(level, on_hand=level.on_hand + quantity)


def count(level: StockLevel, on_hand: int) -> StockLevel:
    """Set the count absolutely (an inventory master's write); never below what orders hold."""
    if abs(on_hand) > MAX_QUANTITY:
        raise QuantityOutOfRange(on_hand)
    if on_hand < level.committed:
        raise BelowCommitted(on_hand, level.committed)
    return replace(level, on_hand=on_hand)


def adjust(level: StockLevel, delta: int) -> StockLevel:
    return count(level, level.on_hand + delta)


def reported_on_hand(reported: int, committed: int, means_available: bool) -> int:
    """What a feed's count means for on_hand.

    A count of available-to-sell units excludes what orders hold (on_hand = reported +
    committed, as Sellar's `availableStock`). A physical count below what orders hold is kept
    at the committed quantity, so availability is 0 and nothing held is oversold; the upload
    warns about it. db/stock_apply.py applies this rule set-based; a property test holds the
    two to the same answers.
    """
    if means_available:
        return max(reported, 0) + committed
    return committed if committed > max(reported, 0) else reported
