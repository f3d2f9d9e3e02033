from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header

from stockhub import representations as show
from stockhub.api import direct
from stockhub.api.deps import CONFLICT, HubDep, Limit, Scoped, Token, in_thread, page_body
from stockhub.domain.stock import StockStatus
from stockhub.services import safety_stock, stock, stock_writes
from stockhub.services.scope import scope_of

router = APIRouter(prefix="/v1", route_class=direct.Route, tags=["stock"])


@router.get("/stores/{store_id}/stock")
def list_stock(
    hub: HubDep,
    principal: Scoped("stock.read"),
    store_id: str,
    limit: Limit = 100,
    token: Token = None,
    status: StockStatus | None = None,
) -> dict:
    """The store's stock levels by identifier; `status` filters to in_stock, out_of_stock or expired."""
    return page_body(stock.list_stock(hub, scope_of(principal, f"store {store_id}"), store_id, limit, token, status), show.stock)


@router.get("/stores/{store_id}/stock/{identifier}")
@direct.direct
async def get_stock(hub: HubDep, principal: Scoped("stock.read"), store_id: str, identifier: str) -> dict:
    """One product's level; any spelling of its barcode (UPC-A, EAN-13, ISBN-10...) finds it."""
    return show.stock(await in_thread(hub, stock.get_stock, hub, scope_of(principal, f"store {store_id}"), store_id, identifier))


@router.put("/stores/{store_id}/stock/{identifier}", responses=CONFLICT)
def set_count(hub: HubDep, principal: Scoped("stock.write"), store_id: str, identifier: str, body: stock_writes.Count) -> dict:
    """Set on_hand absolutely (an inventory master's count); `change_from` makes it compare-and-set."""
    return show.stock(stock_writes.set_count(hub, scope_of(principal, f"store {store_id}"), store_id, identifier, body))


@router.post("/stores/{store_id}/stock/adjustments", responses=CONFLICT)
def adjust(
    hub: HubDep,
    principal: Scoped("stock.write"),
    store_id: str,
    body: stock_writes.Adjustments,
    idempotency_key: Annotated[str | None, Header(description="required: a retry with the same key and body gets the same answer")] = None,
) -> dict:
    """Apply deltas to on_hand, all or none; retry safely with the same `Idempotency-Key`."""
    return stock_writes.adjust(hub, scope_of(principal, f"store {store_id}"), store_id, body, idempotency_key)


@router.put("/stores/{store_id}/safety-stock")
def set_store_safety_stock(hub: HubDep, principal: Scoped("stock.write"), store_id: str, body: safety_stock.StoreSafetyStock) -> dict:
    """Units of every product kept back from sale (available = on_hand − committed − safety_stock,
    at least 0), unless a product sets its own; each product it changes is an inventory.updated."""
    store, changed = safety_stock.set_store_default(hub, scope_of(principal, f"store {store_id}"), store_id, body.safety_stock)
    return show.store(store) | {"products_changed": changed}


@router.put("/stores/{store_id}/stock/{identifier}/safety-stock")
def set_product_safety_stock(
    hub: HubDep, principal: Scoped("stock.write"), store_id: str, identifier: str, body: safety_stock.ProductSafetyStock
) -> dict:
    """This product's own safety stock at the store; `null` makes it follow the store's default."""
    return show.stock(safety_stock.set_product(hub, scope_of(principal, f"store {store_id}"), store_id, identifier, body.safety_stock))
