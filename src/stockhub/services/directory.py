"""What the operator's CLI lists and shows: organizations, brands, stores, tokens and partners
across the whole install (`stockhub org list`, `stockhub store show str_...`). Read-only, and
rows only (the CLI renders them with representations.py); the API's own reads, scoped to one
organization or partner, stay in tenancy.py and accounts.py."""

from __future__ import annotations

from sqlalchemy import func, select

from stockhub import ids
from stockhub.db.engine import reading
from stockhub.db.tables import api_tokens, brands, organizations, partners, store_connections, stores
from stockhub.errors import not_found
from stockhub.services.context import Hub

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


def list_organizations(hub: Hub) -> list:
    """Organizations with their number of `brands` and `stores`."""
    with reading(hub.engine) as conn:
        return conn.execute(_organizations_query()).all()


def get_organization(hub: Hub, organization_id: str):
    number = _number("organization", organization_id)
    with reading(hub.engine) as conn:
        row = conn.execute(_organizations_query().where(organizations.c.id == number)).first()
    if row is None:
        raise not_found(f"organization {organization_id}")
    return row


def list_brands(hub: Hub, organization_id: str | None = None) -> list:
    query = select(brands).order_by(brands.c.id)
    if organization_id is not None:
        get_organization(hub, organization_id)
        query = query.where(brands.c.organization_id == _number("organization", organization_id))
    with reading(hub.engine) as conn:
        return conn.execute(query).all()


def get_brand(hub: Hub, brand_id: str):
    number = _number("brand", brand_id)
    with reading(hub.engine) as conn:
        row = conn.execute(select(brands).where(brands.c.id == number)).first()
    if row is None:
        raise not_found(f"brand {brand_id}")
    return row


def list_stores(hub: Hub, organization_id: str | None = None, brand_id: str | None = None) -> list:
    query = select(stores).order_by(stores.c.id)
    if organization_id is not None:
        get_organization(hub, organization_id)
        query = query.where(stores.c.organization_id == _number("organization", organization_id))
    if brand_id is not None:
        get_brand(hub, brand_id)
        query = query.where(stores.c.brand_id == _number("brand", brand_id))
    with reading(hub.engine) as conn:
        return conn.execute(query).all()


def get_store(hub: Hub, store_id: str) -> tuple:
    """The store's row and its partner connections (partner_id, partner_store_id, name)."""
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
    return row, connected


def list_tokens(hub: Hub, organization_id: str | None = None, every_kind: bool = False) -> list:
    """The tokens (never their secrets): the organizations' API tokens and admin tokens, live
    or revoked; `every_kind` adds the partners' OAuth access and refresh tokens."""
    query = select(api_tokens).order_by(api_tokens.c.id)
    if not every_kind:
        query = query.where(api_tokens.c.kind.in_(TOKEN_KINDS))
    if organization_id is not None:
        get_organization(hub, organization_id)
        query = query.where(api_tokens.c.organization_id == _number("organization", organization_id))
    with reading(hub.engine) as conn:
        return conn.execute(query).all()


def get_token(hub: Hub, token_id: str):
    number = _number("token", token_id)
    with reading(hub.engine) as conn:
        row = conn.execute(select(api_tokens).where(api_tokens.c.id == number)).first()
    if row is None:
        raise not_found(f"token {token_id}")
    return row


def list_partners(hub: Hub) -> list:
    """Partners with their number of connected `stores`."""
    connected = select(func.count()).where(store_connections.c.partner_id == partners.c.id).scalar_subquery()
    with reading(hub.engine) as conn:
        return conn.execute(select(partners, connected.label("stores")).order_by(partners.c.id)).all()


def get_partner(hub: Hub, client_id: str) -> tuple:
    """The partner's row and its connections (store_id, partner_store_id, organization_id)."""
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
    return row, connected
