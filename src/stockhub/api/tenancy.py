from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from stockhub.api.deps import CurrentPrincipal, HubDep, Limit, Scoped, Token, page_body
from stockhub import representations as show
from stockhub.services import connections, tenancy
from stockhub.services.scope import organization_of, scope_of

router = APIRouter(prefix="/v1", tags=["organization"])


class BrandFields(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)


@router.post("/brands", status_code=201)
def create_brand(hub: HubDep, principal: CurrentPrincipal, body: BrandFields) -> dict:
    return show.brand(tenancy.create_brand(hub, organization_of(principal), body.name))


@router.get("/brands")
def list_brands(hub: HubDep, principal: Scoped("organization.read"), limit: Limit = 100, token: Token = None) -> dict:
    return page_body(tenancy.list_brands(hub, organization_of(principal), limit, token), show.brand)


@router.post("/brands/{brand_id}/stores", status_code=201)
def create_store(hub: HubDep, principal: CurrentPrincipal, brand_id: str, body: tenancy.StoreFields) -> dict:
    """Create a store. The response holds its `upload_key`: shown this once, stored only as a hash."""
    store, upload_key = tenancy.create_store(hub, organization_of(principal, f"brand {brand_id}"), brand_id, body)
    return show.store(store) | {"upload_key": upload_key}


@router.get("/brands/{brand_id}/stores")
def list_stores(
    hub: HubDep,
    principal: Scoped("organization.read"),
    brand_id: str,
    limit: Limit = 100,
    token: Token = None,
    status: Annotated[str | None, Query(description="pending, connected, invalid or disconnected")] = None,
) -> dict:
    return page_body(tenancy.list_stores(hub, organization_of(principal, f"brand {brand_id}"), brand_id, limit, token, status), show.store)


@router.get("/stores/{store_id}")
def get_store(hub: HubDep, principal: Scoped("organization.read"), store_id: str) -> dict:
    return show.store(tenancy.get_store(hub, scope_of(principal, f"store {store_id}"), store_id))


@router.patch("/stores/{store_id}")
def update_store(hub: HubDep, principal: CurrentPrincipal, store_id: str, body: tenancy.StoreChanges) -> dict:
    return show.store(tenancy.update_store(hub, organization_of(principal, f"store {store_id}"), store_id, body))


@router.post("/stores/{store_id}/upload-key")
def rotate_upload_key(hub: HubDep, principal: CurrentPrincipal, store_id: str) -> dict:
    """Replace the store's upload key; the old one stops working at once. The new key is shown this once."""
    organization = organization_of(principal, f"store {store_id}")
    return {"store_id": store_id, "upload_key": tenancy.rotate_upload_key(hub, organization, store_id)}


@router.get("/stores/{store_id}/upload-key")
def get_upload_key(hub: HubDep, principal: Scoped("uploads.read"), store_id: str) -> dict:
    """The store's current upload key, for a connected partner to configure FTP or HTTP uploads."""
    return {"store_id": store_id, "upload_key": connections.current_upload_key(hub, scope_of(principal, f"store {store_id}"), store_id)}
