"""The organization API at the paths partners already use (Otter's organization endpoints):
the organization → brands → stores tree, and a partner's connection to a store.

Errors on these paths are `{message, details[{attribute, message}]}`, not RFC 9457.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query
from fastapi.responses import JSONResponse, Response

from stockhub import ids
from stockhub.api import problems
from stockhub.api.deps import HubDep, Limit, Scoped
from stockhub.domain.access import Principal
from stockhub.errors import Problem
from stockhub.services import connections

PREFIX = "/organization/v1"
router = APIRouter(prefix=f"{PREFIX}/organization", tags=["organization (partners)"])

Reader = Scoped("organization.read")
Integrator = Scoped("organization.service_integration")
PageToken = Annotated[str | None, Query(description="the previous page's `offsetToken`")]


def render_error(problem: Problem) -> Response:
    body = {
        "message": problem.detail or problem.title,
        "details": [{"attribute": e.field, "message": e.message} for e in problem.errors],
    }
    headers = {"WWW-Authenticate": "Bearer"} if problem.status == 401 else None
    return JSONResponse(body, status_code=problem.status, headers=headers)


problems.DIALECTS[PREFIX] = render_error


def _organization(principal: Principal) -> int:
    organization = principal.own_organization
    if organization is None:
        raise Problem(403, "Forbidden", "this token was not granted by an organization's user: use the authorization code flow")
    return organization


def _partner(hub, principal: Principal, brand_id: str, store_id: str) -> int:
    if principal.partner is None:
        connections.get_store(hub, _organization(principal), brand_id, store_id)  # a foreign store is 404 first
        raise Problem(403, "Forbidden", "only a partner application's token has store connections")
    return principal.partner


def _named(kind: str):
    """An organization or brand as Otter's schema has it: its id and name."""
    return lambda row: {"id": ids.encode(kind, row.id), "name": row.name}


def _store(row) -> dict:
    """A store as Otter's schema has it: the address an object, the coordinates its `location`."""
    lines = [line for line in (row.address_line1, row.address_line2) if line]
    region = " ".join(part for part in (row.state, row.postal_code) if part)  # "IL 62701", "N1 8EA"
    full = ", ".join(part for part in (*lines, row.city, region, row.country) if part)
    located = row.latitude is not None and row.longitude is not None
    return {
        "id": ids.encode("store", row.id),
        "brandId": ids.encode("brand", row.brand_id),
        "name": row.name,
        "address": {
            "fullAddress": full,
            "addressLines": lines,
            "city": row.city,
            "postalCode": row.postal_code,
            "state": row.state,
            "countryCode": row.country,
            "location": {"latitude": row.latitude, "longitude": row.longitude} if located else None,
        },
        "currency": row.currency,
        "timezone": row.timezone,
    }


def _page(page, render) -> dict:
    body: dict[str, Any] = {"items": [render(item) for item in page.items]}
    if page.next_token is not None:
        body["offsetToken"] = page.next_token
    return body


@router.get("")
def get_organization(hub: HubDep, principal: Reader) -> dict:
    return _named("organization")(connections.organization(hub, _organization(principal)))


@router.get("/brands")
def list_brands(hub: HubDep, principal: Reader, limit: Limit = 100, token: PageToken = None) -> dict:
    return _page(connections.list_brands(hub, _organization(principal), limit, token), _named("brand"))


@router.get("/brands/{brand_id}")
def get_brand(hub: HubDep, principal: Reader, brand_id: str) -> dict:
    return _named("brand")(connections.get_brand(hub, _organization(principal), brand_id))


@router.get("/brands/{brand_id}/stores")
def list_stores(hub: HubDep, principal: Reader, brand_id: str, limit: Limit = 100, token: PageToken = None) -> dict:
    return _page(connections.list_stores(hub, _organization(principal), brand_id, limit, token), _store)


@router.get("/brands/{brand_id}/stores/{store_id}")
def get_store(hub: HubDep, principal: Reader, brand_id: str, store_id: str) -> dict:
    return _store(connections.get_store(hub, _organization(principal), brand_id, store_id))


@router.get("/brands/{brand_id}/stores/{store_id}/connection")
def get_connection(hub: HubDep, principal: Integrator, brand_id: str, store_id: str) -> dict:
    """200 with the partner's `storeId` for this store, or 404 when it is not connected."""
    return {"storeId": connections.get_connection(hub, _organization(principal), _partner(hub, principal, brand_id, store_id), brand_id, store_id)}


@router.post("/brands/{brand_id}/stores/{store_id}/connection", status_code=204)
def connect(
    hub: HubDep,
    principal: Integrator,
    brand_id: str,
    store_id: str,
    store_ref: Annotated[str, Body(alias="storeId", embed=True, description="your own id for this store")],
) -> Response:
    """Connect the store to your application under your own `storeId`; 409 if it is connected already."""
    connections.connect(hub, _organization(principal), _partner(hub, principal, brand_id, store_id), brand_id, store_id, store_ref)
    return Response(status_code=204)


@router.delete("/brands/{brand_id}/stores/{store_id}/connection", status_code=204)
def disconnect(hub: HubDep, principal: Integrator, brand_id: str, store_id: str) -> Response:
    connections.disconnect(hub, _organization(principal), _partner(hub, principal, brand_id, store_id), brand_id, store_id)
    return Response(status_code=204)
