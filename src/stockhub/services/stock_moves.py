"""Changing individual stock levels under lock, with a ledger movement for each change.

Used by bookings, order steps and direct writes (counts, adjustments, prices); the rules of
each change are the domain's (`domain/stock.py`), the locks are `db/locks.py`'s, and `write`
is the only place that writes a single level, its movement and its event. (An upload's
snapshot is applied set-based by `db/stock_apply.py`.)
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import date, datetime

from sqlalchemy import Connection, Row, bindparam, select, update

from stockhub.db import level_writes
from stockhub.db.flights import Flight
from stockhub.db.locks import lock_levels, share_stores
from stockhub.db.tables import stock_levels, stores
from stockhub.domain.stock import MovementReason, StockLevel
from stockhub.services import events

Key = tuple[int, str]  # (store id, canonical identifier)


def level_of(row: Row | None) -> StockLevel:
    """The domain's view of a stored level; a product a store never had holds nothing."""
    if row is None:
        return StockLevel(on_hand=0)
    return StockLevel(on_hand=row.on_hand, committed=row.committed, safety_stock=row.safety_stock, expired=row.expired)


def lock(conn: Connection, keys: Iterable[Key], *, stores_shared: bool = False) -> dict[Key, Row]:
    """Lock the levels of `keys` (their stores first, unless the caller already shares them)."""
    keys = list(keys)
    if not stores_shared:
        share_stores(conn, (store for store, _ in keys))
    return lock_levels(conn, keys)


def store_safety_stock(conn: Connection, store_ids: Iterable[int]) -> dict[int, int]:
    """Each store's default safety stock (what its products keep back unless they say otherwise)."""
    wanted = sorted(set(store_ids))
    if not wanted:
        return {}
    return {row.id: row.safety_stock for row in conn.execute(select(stores.c.id, stores.c.safety_stock).where(stores.c.id.in_(wanted)))}


@dataclass(frozen=True)
class Price:
    price_minor: int
    currency: str
    promotion_minor: int | None = None


@dataclass(frozen=True)
class Change:
    key: Key
    before: StockLevel
    after: StockLevel
    row: Row | None = None  # the locked level; None: the store does not have the product yet
    price: Price | None = None  # a new price (required for a new level); None keeps the row's
    # a product's own safety stock (None: it follows the store's); only with sets_override
    override: int | None = None
    sets_override: bool = False

    @property
    def moves(self) -> bool:
        return (self.before.on_hand, self.before.committed) != (self.after.on_hand, self.after.committed)

    @property
    def price_after(self) -> Price:
        if self.price is not None:
            return self.price
        return Price(self.row.price_minor, self.row.currency, self.row.promotion_minor)

    @property
    def override_after(self) -> int | None:
        if self.sets_override or self.row is None:
            return self.override
        return self.row.safety_stock_override

    @property
    def changes_anything(self) -> bool:
        if self.row is None:
            return True
        return (
            self.moves
            or self.before.expired != self.after.expired
            or self.before.safety_stock != self.after.safety_stock
            or self.override_after != self.row.safety_stock_override
            or self.price_after != Price(self.row.price_minor, self.row.currency, self.row.promotion_minor)
        )


def plan(rows: dict[Key, Row], quantities: dict[Key, int], effect: Callable[[StockLevel, int], StockLevel]) -> list[Change]:
    """Apply `effect` to each locked level; domain exceptions (Shortfall...) propagate per key."""
    return [
        Change(key, level_of(rows.get(key)), effect(level_of(rows.get(key)), qty), rows.get(key))
        for key, qty in sorted(quantities.items())
    ]


def write(
    conn: Connection,
    organization: int,
    changes: list[Change],
    reason: MovementReason,
    now: datetime,
    *,
    order_id: int | None = None,
    reported_on: date | None = None,
    also: level_writes.Writes | None = None,
    flight: Flight | None = None,
) -> None:
    """Store levels (new ones inserted, existing ones updated: counts, safety stock and price),
    append a ledger movement for each change of on_hand or committed (a change of safety stock
    alone moves nothing), and tell subscribers (inventory.updated), all in the caller's
    transaction. The only writer of single stock levels. A new level without its own safety
    stock takes its store's.

    `reported_on`: the changes are a feed's report (a pushed item), so each level is reported
    on that day (no longer expired), changed or not; a level only reported again tells nobody.

    `also`: what else the transaction writes (a booking's order lines and order.created), sent
    with the levels in one round trip (`db.level_writes`); `flight`: the flight they go in."""
    if reported_on is not None:
        _mark_reported(conn, [c for c in changes if c.row is not None and not c.changes_anything], reported_on)
    changed = [c for c in changes if c.changes_anything]
    if not changed:
        if also is not None:
            level_writes.send(conn, also, flight)
        return
    defaults = store_safety_stock(conn, {c.key[0] for c in changed if c.row is None and c.override is None})
    changed = [
        replace(c, after=replace(c.after, safety_stock=c.override if c.override is not None else defaults.get(c.key[0], 0))) if c.row is None else c
        for c in changed
    ]
    writes = also if also is not None else level_writes.Writes()
    by_store: dict[int, list[dict]] = defaultdict(list)  # inventory.updated's changes, per store
    for c in changed:
        price = c.price_after
        by_store[c.key[0]].append(
            {
                "identifier": c.key[1],
                "on_hand_before": None if c.row is None else c.before.on_hand,
                "on_hand": c.after.on_hand,
                "committed": c.after.committed,
                "safety_stock": c.after.safety_stock,
                "expired": c.after.expired,
                "price_minor": price.price_minor,
                "currency": price.currency,
                "promotion_minor": price.promotion_minor,
            }
        )
        level = {
            "store_id": c.key[0],
            "identifier": c.key[1],
            "on_hand": c.after.on_hand,
            "committed": c.after.committed,
            "safety_stock": c.after.safety_stock,
            "safety_stock_override": c.override_after,
            "price_minor": price.price_minor,
            "currency": price.currency,
            "promotion_minor": price.promotion_minor,
            "last_reported_on": reported_on or (now.date() if c.row is None else c.row.last_reported_on),
            "expired": c.after.expired,
            "updated_at": now,
        }
        (writes.new_levels if c.row is None else writes.changed_levels).append(level)
        if c.moves:
            writes.movements.append(
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
            )
    for store, store_changes in sorted(by_store.items()):
        writes.events += events.level_change_events(organization, store, store_changes, now)
    level_writes.send(conn, writes, flight)


def _mark_reported(conn: Connection, unchanged: list[Change], day: date) -> None:
    """Levels a feed reported again unchanged: reported on `day` (once a day: the column is a day)."""
    stale = [c for c in unchanged if c.row.last_reported_on < day]
    if stale:
        conn.execute(
            update(stock_levels)
            .where(stock_levels.c.store_id == bindparam("k_store"), stock_levels.c.identifier == bindparam("k_identifier"))
            .values(last_reported_on=day),
            [{"k_store": c.key[0], "k_identifier": c.key[1]} for c in stale],
        )
