"""What the operator's CLI lists and shows: organizations, brands, stores, tokens and partners
across the whole install (`stockhub org list`, `stockhub store show str_...`). Read-only; the
API's own reads (scoped to one organization or partner) stay in tenancy.py and accounts.py."""

from __future__ import annotations

from sqlalchemy import func, select

from stockhub import ids
from stockhub.db.engine import reading
from stockhub.db.tables import api_tokens, brands, organizations, partners, store_connections, stores
from stockhub.errors import not_found
from stockhub.services.accounts import render_partner
from stockhub.services.context import Hub
from stockhub.services.tenancy import render_brand, render_store
from stockhub.timefmt import iso

# OAuth access and refresh tokens are a partner's, one per grant: listed with --all only
TOKEN_KINDS = ("api", "admin")


def _number(kind: str, public_id: str) -> int:
    number = ids.decode(kind, public_id)
    if number is None:
        raise not_found(f"{kind} {public_id}")
    return number


def _organizations_query():
    brand_count = select(func.count()).where(brands.c.organization_id == organizations.c.id).scalar_subquery()
    store_count = select(func.count()).where(stores.c.organization_id == organizations.c.id).scalar_subquery()
    return select(organizations, brand_count.label("brands"), store_count.label("stores")).order_by(organizations.c.id)


def list_organizations(hub: Hub) -> list[dict]:
    with reading(hub.engine) as conn:
        return [_organization(row) for row in conn.execute(_organizations_query())]


def get_organization(hub: Hub, organization_id: str) -> dict:
    number = _number("organization", organization_id)
    with reading(hub.engine) as conn:
        row = conn.execute(_organizations_query().where(organizations.c.id == number)).first()
    if row is None:
        raise not_found(f"organization {organization_id}")
    return _organization(row)


def _organization(row) -> dict:
    return {"id": ids.encode("organization", row.id), "name": row.name, "brands": row.brands, "stores": row.stores, "created_at": iso(row.created_at)}


def list_brands(hub: Hub, organization_id: str | None = None) -> list[dict]:
    query = select(brands).order_by(brands.c.id)
    if organization_id is not None:
        get_organization(hub, organization_id)
        query = query.where(brands.c.organization_id == _number("organization", organization_id))
    with reading(hub.engine) as conn:
        return [render_brand(row) for row in conn.execute(query)]


def get_brand(hub: Hub, brand_id: str) -> dict:
    number = _number("brand", brand_id)
    with reading(hub.engine) as conn:
        row = conn.execute(select(brands).where(brands.c.id == number)).first()
    if row is None:
        raise not_found(f"brand {brand_id}")
    return render_brand(row)


def list_stores(hub: Hub, organization_id: str | None = None, brand_id: str | None = None) -> list[dict]:
    query = select(stores).order_by(stores.c.id)
    if organization_id is not None:
        get_organization(hub, organization_id)
        query = query.where(stores.c.organization_id == _number("organization", organization_id))
    if brand_id is not None:
        get_brand(hub, brand_id)
        query = query.where(stores.c.brand_id == _number("brand", brand_id))
    with reading(hub.engine) as conn:
        return [_store(row) for row in conn.execute(query)]


def get_store(hub: Hub, store_id: str) -> dict:
    number = _number("store", store_id)
    with reading(hub.engine) as conn:
        row = conn.execute(select(stores).where(stores.c.id == number)).first()
        if row is None:
            raise not_found(f"store {store_id}")
        connected = conn.execute(
            select(store_connections.c.partner_id, store_connections.c.partner_store_id, partners.c.name)
            .join(partners, partners.c.id == store_connections.c.partner_id)
            .where(store_connections.c.store_id == number)
            .order_by(store_connections.c.id)
        ).all()
    return _store(row) | {
        "partners": [{"client_id": ids.encode("partner", c.partner_id), "name": c.name, "partner_store_id": c.partner_store_id} for c in connected]
    }


def _store(row) -> dict:
    rendered = render_store(row)
    return {"id": rendered["id"], "organization_id": ids.encode("organization", row.organization_id)} | rendered


def list_tokens(hub: Hub, organization_id: str | None = None, every_kind: bool = False) -> list[dict]:
    """The tokens (never their secrets): the organizations' API tokens and admin tokens, live
    or revoked; `every_kind` adds the partners' OAuth access and refresh tokens."""
    query = select(api_tokens).order_by(api_tokens.c.id)
    if not every_kind:
        query = query.where(api_tokens.c.kind.in_(TOKEN_KINDS))
    if organization_id is not None:
        get_organization(hub, organization_id)
        query = query.where(api_tokens.c.organization_id == _number("organization", organization_id))
    with reading(hub.engine) as conn:
        return [_token(row) for row in conn.execute(query)]


def get_token(hub: Hub, token_id: str) -> dict:
    number = _number("token", token_id)
    with reading(hub.engine) as conn:
        row = conn.execute(select(api_tokens).where(api_tokens.c.id == number)).first()
    if row is None:
        raise not_found(f"token {token_id}")
    return _token(row)


def _token(row) -> dict:
    return {
        "id": ids.encode("token", row.id),
        "kind": row.kind,
        "organization_id": ids.encode("organization", row.organization_id) if row.organization_id else None,
        "partner_id": ids.encode("partner", row.partner_id) if row.partner_id else None,
        "label": row.label,
        "scope": row.scope,
        "created_at": iso(row.created_at),
        "expires_at": iso(row.expires_at),
        "revoked_at": iso(row.revoked_at),
    }


def list_partners(hub: Hub) -> list[dict]:
    connected = select(func.count()).where(store_connections.c.partner_id == partners.c.id).scalar_subquery()
    with reading(hub.engine) as conn:
        return [render_partner(row) | {"stores": row.stores} for row in conn.execute(select(partners, connected.label("stores")).order_by(partners.c.id))]


def get_partner(hub: Hub, client_id: str) -> dict:
    number = _number("partner", client_id)
    with reading(hub.engine) as conn:
        row = conn.execute(select(partners).where(partners.c.id == number)).first()
        if row is None:
            raise not_found(f"partner {client_id}")
        connected = conn.execute(
            select(store_connections.c.store_id, store_connections.c.partner_store_id, store_connections.c.organization_id)
            .where(store_connections.c.partner_id == number)
            .order_by(store_connections.c.id)
        ).all()
    return render_partner(row) | {
        "stores": [
            {"store_id": ids.encode("store", c.store_id), "organization_id": ids.encode("organization", c.organization_id), "partner_store_id": c.partner_store_id}
            for c in connected
        ]
    }
