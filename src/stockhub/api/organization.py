"""The organization API at the paths partners already use (Otter's organization endpoints):
the organization → brands → stores tree, and a partner's connection to a store.

Errors on these paths are `{message, details[{attribute, message}]}`, not RFC 9457.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query
from fastapi.responses import JSONResponse, Response

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


def _store(store: dict) -> dict:
    """A store as Otter's schema has it: the address an object, the coordinates its `location`."""
    lines = [line for line in (store["address_line1"], store["address_line2"]) if line]
    region = " ".join(part for part in (store["state"], store["postal_code"]) if part)  # "IL 62701", "N1 8EA"
    full = ", ".join(part for part in (*lines, store["city"], region, store["country"]) if part)
    located = store["latitude"] is not None and store["longitude"] is not None
    return {
        "id": store["id"],
        "brandId": store["brand_id"],
        "name": store["name"],
        "address": {
            "fullAddress": full,
            "addressLines": lines,
            "city": store["city"],
            "postalCode": store["postal_code"],
            "state": store["state"],
            "countryCode": store["country"],
            "location": {"latitude": store["latitude"], "longitude": store["longitude"]} if located else None,
        },
        "currency": store["currency"],
        "timezone": store["timezone"],
    }


def _page(page, render=lambda item: item) -> dict:
    body: dict[str, Any] = {"items": [render(item) for item in page.items]}
    if page.next_token is not None:
        body["offsetToken"] = page.next_token
    return body


@router.get("")
def get_organization(hub: HubDep, principal: Reader) -> dict:
    return connections.organization(hub, _organization(principal))


@router.get("/brands")
def list_brands(hub: HubDep, principal: Reader, limit: Limit = 100, token: PageToken = None) -> dict:
    return _page(connections.list_brands(hub, _organization(principal), limit, token))


@router.get("/brands/{brand_id}")
def get_brand(hub: HubDep, principal: Reader, brand_id: str) -> dict:
    return connections.get_brand(hub, _organization(principal), brand_id)


@router.get("/brands/{brand_id}/stores")
def list_stores(hub: HubDep, principal: Reader, brand_id: str, limit: Limit = 100, token: PageToken = None) -> dict:
    return _page(connections.list_stores(hub, _organization(principal), brand_id, limit, token), _store)


@router.get("/brands/{brand_id}/stores/{store_id}")
def get_store(hub: HubDep, principal: Reader, brand_id: str, store_id: str) -> dict:
    return _store(connections.get_store(hub, _organization(principal), brand_id, store_id))


@router.get("/brands/{brand_id}/stores/{store_id}/connection")
def get_connection(hub: HubDep, principal: Integrator, brand_id: str, store_id: str) -> dict:
    """200 with the partner's `storeId` for this store, or 404 when it is not connected."""
    return connections.get_connection(hub, _organization(principal), _partner(hub, principal, brand_id, store_id), brand_id, store_id)


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
