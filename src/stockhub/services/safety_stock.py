"""Safety stock: units a store keeps back from sale, by default for every product it has, or
per product. available = max(on_hand − committed − safety_stock, 0) (domain.stock.available).

The level keeps the safety stock in force (`stock_levels.safety_stock`: the product's own, else
its store's), so every reader applies the one rule to one row. A change is a ledger-free level
change written by the one level writer (services/stock_moves.py), which tells subscribers
(inventory.updated), so group increments see it too.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from stockhub import feeds
from stockhub.db.engine import transaction
from stockhub.db.locks import lock_store
from stockhub.db.tables import stock_levels, stores
from stockhub.domain.access import Scope
from stockhub.domain.stock import MovementReason
from stockhub.errors import not_found
from stockhub.services import stock_moves
from stockhub.services.context import Hub
from stockhub.services.scope import any_store_number, as_scope, store_number
from stockhub.services.stock import get_stock
from stockhub.services.tenancy import get_store
from stockhub.services.fields import Int

MAX = 1_000_000


class StoreSafetyStock(BaseModel):
    model_config = ConfigDict(extra="forbid")
    safety_stock: Int = Field(ge=0, le=MAX, description="units of every product kept back from sale, unless the product sets its own")


class ProductSafetyStock(BaseModel):
    model_config = ConfigDict(extra="forbid")
    safety_stock: Int | None = Field(ge=0, le=MAX, description="this product's own; null: follow the store's default")


def set_store_default(hub: Hub, scope: Scope | int | None, store_id: str, quantity: int) -> tuple[Any, int]:
    """The store's default, applied to each of its products without their own (scope None: the operator).
    Returns the store and how many of its products changed."""
    now = datetime.now(UTC)
    with transaction(hub.engine) as conn:
        store = any_store_number(conn, store_id) if scope is None else store_number(conn, scope, store_id)
        lock_store(conn, store)  # like an upload: no booking interleaves with the rewrite
        conn.execute(stores.update().where(stores.c.id == store).values(safety_stock=quantity, updated_at=now))
        following = conn.execute(
            select(stock_levels).where(
                stock_levels.c.store_id == store, stock_levels.c.safety_stock_override.is_(None), stock_levels.c.safety_stock != quantity
            )
        ).all()
        changes = [
            stock_moves.Change((store, row.identifier), level := stock_moves.level_of(row), replace(level, safety_stock=quantity), row)
            for row in following
        ]
        organization = conn.execute(select(stores.c.organization_id).where(stores.c.id == store)).scalar_one()
        stock_moves.write(conn, organization, changes, MovementReason.COUNT, now)
    return get_store(hub, organization if scope is None else scope, store_id), len(changes)


def set_product(hub: Hub, scope: Scope | int | None, store_id: str, identifier: str, quantity: int | None):
    """A product's own safety stock at a store; None: it follows the store's default again."""
    try:
        canonical = feeds.lookup_identifier(identifier)
    except ValueError as error:
        raise not_found(f"a product {identifier!r} ({error})") from None
    now = datetime.now(UTC)
    with transaction(hub.engine) as conn:
        store = any_store_number(conn, store_id) if scope is None else store_number(conn, scope, store_id)
        key = (store, canonical)
        row = stock_moves.lock(conn, [key]).get(key)
        if row is None:
            raise not_found(f"stock of {identifier} in store {store_id}")
        in_force = quantity if quantity is not None else stock_moves.store_safety_stock(conn, [store])[store]
        before = stock_moves.level_of(row)
        change = stock_moves.Change(key, before, replace(before, safety_stock=in_force), row, override=quantity, sets_override=True)
        organization = conn.execute(select(stores.c.organization_id).where(stores.c.id == store)).scalar_one()
        stock_moves.write(conn, organization, [change], MovementReason.COUNT, now)
    return get_stock(hub, organization if scope is None else as_scope(scope), store_id, canonical)
