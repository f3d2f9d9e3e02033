"""Orders: their lifecycle, and the stock effect of each step (as Sellar reports them).

requested ──confirm──► confirmed ──dispatch──► dispatched ──deliver──► delivered
    │                      │                        │
    └────────cancel────────┴─────────cancel─────────┘──► cancelled
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum

from stockhub.domain import stock
from stockhub.domain.stock import MovementReason, StockLevel


class OrderStatus(StrEnum):
    REQUESTED = "requested"
    CONFIRMED = "confirmed"
    DISPATCHED = "dispatched"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"


class Action(StrEnum):
    CONFIRM = "confirm"
    DISPATCH = "dispatch"
    DELIVER = "deliver"
    CANCEL = "cancel"


TRANSITIONS: dict[OrderStatus, dict[Action, OrderStatus]] = {
    OrderStatus.REQUESTED: {Action.CONFIRM: OrderStatus.CONFIRMED, Action.CANCEL: OrderStatus.CANCELLED},
    OrderStatus.CONFIRMED: {Action.DISPATCH: OrderStatus.DISPATCHED, Action.CANCEL: OrderStatus.CANCELLED},
    OrderStatus.DISPATCHED: {Action.DELIVER: OrderStatus.DELIVERED, Action.CANCEL: OrderStatus.CANCELLED},
    OrderStatus.DELIVERED: {},
    OrderStatus.CANCELLED: {},
}

# The timestamp each status sets.
STAMPS = {
    OrderStatus.CONFIRMED: "confirmed_at",
    OrderStatus.DISPATCHED: "dispatched_at",
    OrderStatus.DELIVERED: "delivered_at",
    OrderStatus.CANCELLED: "cancelled_at",
}


class IllegalTransition(Exception):
    def __init__(self, status: OrderStatus, action: Action):
        self.status, self.action = status, action
        self.allowed = [a.value for a in TRANSITIONS[status]]
        super().__init__(f"an order that is {status} cannot {action}")


def next_status(status: OrderStatus, action: Action) -> OrderStatus:
    try:
        return TRANSITIONS[status][action]
    except KeyError:
        raise IllegalTransition(status, action) from None


StockEffect = Callable[[StockLevel, int], StockLevel]


def stock_effect(status: OrderStatus, action: Action, restock: bool) -> tuple[StockEffect, MovementReason] | None:
    """What moving from `status` by `action` does to each line's stock level (None: nothing)."""
    if action is Action.CONFIRM:
        return stock.ship, MovementReason.ORDER_CONFIRM
    if action is Action.CANCEL and status is OrderStatus.REQUESTED:
        return stock.release, MovementReason.ORDER_RELEASE
    if action is Action.CANCEL and restock:
        return stock.restock, MovementReason.ORDER_RESTOCK
    return None


def booking_effect(preconfirmed: bool) -> tuple[StockEffect, MovementReason]:
    if preconfirmed:
        return stock.sell_now, MovementReason.ORDER_CONFIRM
    return stock.commit, MovementReason.ORDER_COMMIT
