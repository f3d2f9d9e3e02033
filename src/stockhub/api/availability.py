"""Availability for shop fronts and marketplaces: many keys at once, location groups (whole or
since a cursor, as JSON pages or streamed CSV/NDJSON), pickup and delivery options."""

from __future__ import annotations

import json
from typing import Annotated, Literal

import orjson
from fastapi import APIRouter, Header, Query, Response
from fastapi.responses import JSONResponse, StreamingResponse

from stockhub import representations as show
from stockhub.api.deps import HubDep, Limit, Organization, Scoped, Token, page_body
from stockhub.services import availability, location_groups, shipping
from stockhub.services.scope import scope_of

router = APIRouter(prefix="/v1", tags=["availability"])


@router.post("/availability", response_class=JSONResponse)
def lookup(hub: HubDep, principal: Scoped("stock.read"), body: availability.AvailabilityQuery) -> Response:
    """Up to 2,000 product × store keys in one call, one answer per key in the order asked; an
    unknown product or store (or one you do not reach) answers `known: false` in its place."""
    return Response(orjson.dumps(availability.lookup(hub, scope_of(principal), body)), media_type="application/json")


@router.post("/pickup-options")
def pickup_options(hub: HubDep, principal: Scoped("stock.read"), body: availability.PickupQuery) -> dict:
    """Stores near a shopper by great-circle distance; those that can hand over the whole bag
    carry an `offer_token` to book it with (POST /v1/orders)."""
    return availability.pickup_options(hub, scope_of(principal), body)


@router.post("/delivery-options")
def delivery_options(hub: HubDep, principal: Scoped("stock.read"), body: availability.DeliveryQuery) -> dict:
    """Per shipping method to the destination: one store for the whole bag (nearest first), else
    the fewest shipments; each option with its dates, stores per line and `offer_token`."""
    return availability.delivery_options(hub, scope_of(principal), body)


# --- location groups -------------------------------------------------------------------------


@router.post("/location-groups", status_code=201)
def create_group(hub: HubDep, organization: Organization, body: location_groups.GroupFields) -> dict:
    return show.location_group(location_groups.create(hub, organization, body))


@router.get("/location-groups")
def list_groups(hub: HubDep, organization: Organization, limit: Limit = 50, token: Token = None) -> dict:
    return page_body(location_groups.list_groups(hub, organization, limit, token), show.location_group)


@router.get("/location-groups/{group_id}")
def get_group(hub: HubDep, organization: Organization, group_id: str) -> dict:
    return show.location_group(location_groups.get(hub, organization, group_id))


@router.patch("/location-groups/{group_id}")
def update_group(hub: HubDep, organization: Organization, group_id: str, body: location_groups.GroupChanges) -> dict:
    """Rename it, or give its stores anew (a cursor from before a change of stores is refused)."""
    return show.location_group(location_groups.update(hub, organization, group_id, body))


@router.delete("/location-groups/{group_id}", status_code=204)
def delete_group(hub: HubDep, organization: Organization, group_id: str) -> Response:
    location_groups.remove(hub, organization, group_id)
    return Response(status_code=204)


FORMATS = {"csv": "text/csv", "ndjson": "application/x-ndjson"}


@router.get("/location-groups/{group_id}/availability")
def group_availability(
    hub: HubDep,
    organization: Organization,
    group_id: str,
    limit: Limit = 500,
    token: Token = None,
    since: Annotated[int | None, Query(description="a `cursor` from an earlier answer: only products whose total changed after it")] = None,
    format: Annotated[Literal["json", "csv", "ndjson"] | None, Query(description="csv or ndjson: the whole answer, streamed")] = None,
    accept: Annotated[str | None, Header()] = None,
):
    """Per product, the available units summed over the group's stores, by identifier. JSON pages
    (`limit` + `token`), or the whole export streamed as CSV or NDJSON (`format`, or `Accept:
    text/csv` / `application/x-ndjson`). Every answer carries an integer `cursor` (streams: the
    `Stockhub-Cursor` header); `since=<cursor>` answers only the products whose total changed after it."""
    if format is None:
        format = next((name for name, media in FORMATS.items() if accept and media in accept), "json")
    if format == "json":
        return location_groups.availability_page(hub, organization, group_id, limit, token, since)
    rows = location_groups.availability_export(hub, organization, group_id, since, as_csv=format == "csv")
    cursor = next(rows)  # a refusal (unknown group, stale cursor) is raised here, before streaming
    body = _csv(rows) if format == "csv" else _ndjson(rows)
    return StreamingResponse(body, media_type=FORMATS[format], headers={"Stockhub-Cursor": str(cursor)})


def _csv(chunks):
    yield b"identifier,available,stores\n"
    yield from chunks


def _ndjson(partitions):
    for rows in partitions:
        yield "".join(f'{{"identifier":{json.dumps(r.identifier)},"available":{int(r.available)},"stores":{r.stores}}}\n' for r in rows)


# --- shipping methods ------------------------------------------------------------------------


@router.post("/shipping-methods", status_code=201)
def create_shipping_method(hub: HubDep, organization: Organization, body: shipping.ShippingMethod) -> dict:
    return show.shipping_method(shipping.create(hub, organization, body))


@router.get("/shipping-methods")
def list_shipping_methods(hub: HubDep, organization: Organization, limit: Limit = 50, token: Token = None) -> dict:
    return page_body(shipping.list_methods(hub, organization, limit, token), show.shipping_method)


@router.delete("/shipping-methods/{method_id}", status_code=204)
def delete_shipping_method(hub: HubDep, organization: Organization, method_id: str) -> Response:
    shipping.remove(hub, organization, method_id)
    return Response(status_code=204)
