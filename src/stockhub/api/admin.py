"""Platform administration: registering partner applications (admin token only)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from stockhub.api.deps import CurrentPrincipal, HubDep
from stockhub.domain.access import Principal
from stockhub.errors import Problem
from stockhub import representations as show
from stockhub.services import accounts
from stockhub.services.fields import Bool

router = APIRouter(prefix="/admin/v1", tags=["admin"])


class PartnerFields(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    redirect_uris: list[str] = Field(min_length=1, max_length=20)
    scopes: list[str] | None = Field(None, description="default: every scope")
    public: Bool = Field(False, description="a public client (no secret; PKCE required)")


def _admin(principal: Principal) -> None:
    if principal.kind != "admin":
        raise Problem(403, "Forbidden", "this route takes a platform admin token (`stockhub admin-token create`)")


@router.post("/partners", status_code=201)
def create_partner(hub: HubDep, principal: CurrentPrincipal, body: PartnerFields) -> dict:
    """Register a partner application. The `client_secret` is shown this once, stored only as a hash."""
    _admin(principal)
    made = accounts.create_partner(hub, body.name, body.redirect_uris, body.scopes, body.public)
    return {"client_id": made.id, "client_secret": made.secret}


@router.get("/partners")
def list_partners(hub: HubDep, principal: CurrentPrincipal) -> dict:
    _admin(principal)
    return {"items": [show.partner(row) for row in accounts.list_partners(hub)]}
