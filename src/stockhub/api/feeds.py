"""Inventory feeds in stockhub's own style (`/v1/feeds`); Jetti's dialect is api/jetti.py."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from stockhub import representations as show
from stockhub.api import problems
from stockhub.api.deps import CONFLICT, HubDep, Limit, Scoped, Token, page_body
from stockhub.errors import FieldError, invalid
from stockhub.services import feeds
from stockhub.services.scope import scope_of

router = APIRouter(prefix="/v1", tags=["feeds"])
LIMITED = problems.responses(409, 429)


class Batch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: list[feeds.ItemIn] = Field(description=f"1 to {feeds.BATCH_MAX_ITEMS} items")


ACCEPTED = {202: {"description": "received: poll the batch (Location) until it is done", "content": {"application/json": {"schema": {"type": "object"}}}}}


@router.post("/stores/{store_id}/feeds", status_code=201)
def create_feed(hub: HubDep, principal: Scoped("stock.write"), store_id: str, body: feeds.FeedIn) -> dict:
    """A push feed (items sent to it) or a pull feed (its source fetched every `fetch_frequency` minutes)."""
    return show.feed(feeds.create_feed(hub, scope_of(principal, f"store {store_id}"), store_id, body))


@router.get("/stores/{store_id}/feeds")
def list_feeds(hub: HubDep, principal: Scoped("stock.read"), store_id: str, limit: Limit = 100, token: Token = None) -> dict:
    return page_body(feeds.list_feeds(hub, scope_of(principal, f"store {store_id}"), store_id, limit, token), show.feed)


@router.get("/feeds/{feed_id}")
def get_feed(hub: HubDep, principal: Scoped("stock.read"), feed_id: str) -> dict:
    """The feed; a pull feed's `fetch` says when it was last fetched, how, and why it failed."""
    return show.feed(feeds.get_feed(hub, scope_of(principal, f"feed {feed_id}"), feed_id))


@router.patch("/feeds/{feed_id}")
def update_feed(hub: HubDep, principal: Scoped("stock.write"), feed_id: str, body: feeds.FeedPatch) -> dict:
    return show.feed(feeds.update_feed(hub, scope_of(principal, f"feed {feed_id}"), feed_id, body))


@router.post("/feeds/{feed_id}/fetch", status_code=202, responses=CONFLICT)
def fetch_now(hub: HubDep, principal: Scoped("stock.write"), feed_id: str) -> dict:
    """A pull feed fetched now (when a worker is free) rather than at its next scheduled time."""
    return show.feed(feeds.fetch_now(hub, scope_of(principal, f"feed {feed_id}"), feed_id))


@router.delete("/feeds/{feed_id}", status_code=204)
def delete_feed(hub: HubDep, principal: Scoped("stock.write"), feed_id: str) -> Response:
    """The feed, its items and batches; the stock it reported stays (and expires as usual)."""
    feeds.delete_feed(hub, scope_of(principal, f"feed {feed_id}"), feed_id)
    return Response(status_code=204)


@router.get("/feeds/{feed_id}/items")
def list_items(
    hub: HubDep,
    principal: Scoped("stock.read"),
    feed_id: str,
    limit: Limit = 100,
    token: Token = None,
    status: Literal["applied", "unmapped", "held"] | None = None,
) -> dict:
    return page_body(feeds.list_items(hub, scope_of(principal, f"feed {feed_id}"), feed_id, limit, token, status), show.feed_item)


@router.get("/feeds/{feed_id}/unmapped")
def list_unmapped(hub: HubDep, principal: Scoped("stock.read"), feed_id: str, limit: Limit = 100, token: Token = None) -> dict:
    """Items that connect to no product (each says why): map them with PUT …/items/{external_id}/product."""
    return page_body(feeds.list_items(hub, scope_of(principal, f"feed {feed_id}"), feed_id, limit, token, "unmapped"), show.feed_item)


@router.put("/feeds/{feed_id}/items/{external_id}", responses=LIMITED)
def upsert_item(hub: HubDep, principal: Scoped("stock.write"), feed_id: str, external_id: str, body: feeds.ItemFields) -> dict:
    """Create or update the item with this external id: connected, its quantity applies at once."""
    if len(external_id) > 255:
        raise invalid("the external id is too long", [FieldError("external_id", "at most 255 characters")])
    return show.feed_item(feeds.upsert_item(hub, scope_of(principal, f"feed {feed_id}"), feed_id, feeds.item_of(external_id, body)))


@router.get("/feeds/{feed_id}/items/{external_id}")
def get_item(hub: HubDep, principal: Scoped("stock.read"), feed_id: str, external_id: str) -> dict:
    return show.feed_item(feeds.get_item(hub, scope_of(principal, f"feed {feed_id}"), feed_id, external_id))


@router.put("/feeds/{feed_id}/items/{external_id}/product", responses=CONFLICT)
def map_item(hub: HubDep, principal: Scoped("stock.write"), feed_id: str, external_id: str, body: feeds.ProductChoice) -> dict:
    """Connect the item to a product by hand; its held quantity applies at once."""
    return show.feed_item(feeds.map_item(hub, scope_of(principal, f"feed {feed_id}"), feed_id, external_id, body))


@router.post("/feeds/{feed_id}/batches", status_code=202, responses=ACCEPTED | LIMITED)
def send_batch(hub: HubDep, principal: Scoped("stock.write"), feed_id: str, body: Batch) -> JSONResponse:
    """Up to 50 items, applied by the workers in the order received: poll the batch."""
    items = [feeds.item_of(item.external_id, item) for item in body.items]
    batch = show.feed_batch(feeds.accept_batch(hub, scope_of(principal, f"feed {feed_id}"), feed_id, items))
    return JSONResponse(batch, status_code=202, headers={"Location": f"/v1/feed-batches/{batch['id']}"})


@router.get("/feed-batches/{batch_id}")
def get_batch(hub: HubDep, principal: Scoped("stock.read"), batch_id: str) -> dict:
    """A batch: `received`, `processing`, then `done` with each item's outcome (or `failed`)."""
    return show.feed_batch(feeds.get_batch(hub, scope_of(principal, f"batch {batch_id}"), batch_id))
