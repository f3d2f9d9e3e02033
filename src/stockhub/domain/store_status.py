"""A store's status, from its uploads: the one rule (NearSt's Partner API statuses).

- `pending`: no stock upload has been processed yet;
- `disconnected`: the last stock upload arrived longer ago than the disconnection period (3 days);
- `invalid`: the last stock upload was refused (`invalid_inventory_format`) or reported fewer
  in-stock items than the minimum (`insufficient_in_stock_items`);
- `connected`: otherwise.

Plain Python, no I/O: services/store_status.py feeds it the last upload and keeps the result.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum


class StoreStatus(StrEnum):
    PENDING = "pending"
    CONNECTED = "connected"
    INVALID = "invalid"
    DISCONNECTED = "disconnected"


INVALID_INVENTORY_FORMAT = "invalid_inventory_format"
INSUFFICIENT_IN_STOCK_ITEMS = "insufficient_in_stock_items"


@dataclass(frozen=True)
class LastUpload:
    received_at: datetime
    status: str  # applied | invalid | failed
    in_stock_count: int | None


@dataclass(frozen=True)
class Status:
    status: StoreStatus
    warnings: tuple[str, ...] = field(default=())


def store_status(last: LastUpload | None, now: datetime, disconnected_after: timedelta, min_in_stock_items: int = 1) -> Status:
    if last is None:
        return Status(StoreStatus.PENDING)
    if now - last.received_at > disconnected_after:
        return Status(StoreStatus.DISCONNECTED)
    if last.status != "applied":
        return Status(StoreStatus.INVALID, (INVALID_INVENTORY_FORMAT,))
    if (last.in_stock_count or 0) < min_in_stock_items:
        return Status(StoreStatus.INVALID, (INSUFFICIENT_IN_STOCK_ITEMS,))
    return Status(StoreStatus.CONNECTED)


def stability(applied_days: set[date], today: date, disconnected_after_days: int, days: int = 30) -> list[bool]:
    """For each of the last `days` days (oldest first): was the store connected that day, i.e.
    had a stock upload been applied within the disconnection period up to that day?"""
    window = [today - timedelta(days=n) for n in range(days - 1, -1, -1)]
    return [any(day - timedelta(days=k) in applied_days for k in range(disconnected_after_days + 1)) for day in window]
