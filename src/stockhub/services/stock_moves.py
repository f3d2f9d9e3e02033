"""Changing individual stock levels under lock, with a ledger movement for each change.

Used by bookings, order steps and direct writes; the rules of each change are the domain's
(`domain/stock.py`), the locks are `db/locks.py`'s, and this is the only place that writes a
single level and its movement.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Row, bindparam, insert, update

from stockhub.db.locks import lock_levels, share_stores
from stockhub.db.tables import stock_levels, stock_movements
from stockhub.domain.stock import MovementReason, StockLevel
from stockhub.services import events

Key = tuple[int, str]  # (store id, canonical identifier)


def level_of(row: Row | None) -> StockLevel:
    """The domain's view of a stored level; a product a store never had holds nothing."""
    if row is None:
        return StockLevel(on_hand=0)
    return StockLevel(on_hand=row.on_hand, committed=row.committed, safety_stock=row.safety_stock, expired=row.expired)


def lock(conn: Connection, keys: Iterable[Key]) -> dict[Key, Row]:
    keys = list(keys)
    share_stores(conn, (store for store, _ in keys))
    return lock_levels(conn, keys)


@dataclass(frozen=True)
class Change:
    key: Key
    before: StockLevel
    after: StockLevel
    row: Row | None = None  # the locked level (price, currency) when the store has the product


def plan(rows: dict[Key, Row], quantities: dict[Key, int], effect: Callable[[StockLevel, int], StockLevel]) -> list[Change]:
    """Apply `effect` to each locked level; domain exceptions (Shortfall...) propagate per key."""
    return [
        Change(key, level_of(rows.get(key)), effect(level_of(rows.get(key)), qty), rows.get(key))
        for key, qty in sorted(quantities.items())
    ]


def write(
    conn: Connection, organization: int, changes: list[Change], reason: MovementReason, now: datetime, *, order_id: int | None = None
) -> None:
    """Store the new on_hand and committed of existing levels, append their movements, and tell
    subscribers (inventory.updated), all in the caller's transaction."""
    moved = [c for c in changes if (c.before.on_hand, c.before.committed) != (c.after.on_hand, c.after.committed)]
    if not moved:
        return
    conn.execute(
        update(stock_levels)
        .where(stock_levels.c.store_id == bindparam("k_store"), stock_levels.c.identifier == bindparam("k_identifier"))
        .values(on_hand=bindparam("n_on_hand"), committed=bindparam("n_committed"), updated_at=now),
        [
            {"k_store": c.key[0], "k_identifier": c.key[1], "n_on_hand": c.after.on_hand, "n_committed": c.after.committed}
            for c in moved
        ],
    )
    conn.execute(
        insert(stock_movements),
        [
            {
                "store_id": c.key[0],
                "identifier": c.key[1],
                "reason": reason.value,
                "on_hand_before": c.before.on_hand,
                "on_hand_after": c.after.on_hand,
                "committed_before": c.before.committed,
                "committed_after": c.after.committed,
                "order_id": order_id,
                "created_at": now,
            }
            for c in moved
        ],
    )

    by_store: dict[int, list[dict]] = defaultdict(list)
    for c in moved:
        by_store[c.key[0]].append(
            {
                "identifier": c.key[1],
                "on_hand_before": c.before.on_hand,
                "on_hand": c.after.on_hand,
                "committed": c.after.committed,
                "safety_stock": c.after.safety_stock,
                "expired": c.after.expired,
                "price_minor": c.row.price_minor,
                "currency": c.row.currency,
                "promotion_minor": c.row.promotion_minor,
            }
        )
    for store, store_changes in sorted(by_store.items()):
        events.emit_level_changes(conn, organization, store, store_changes, now)
