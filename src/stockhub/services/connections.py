"""A partner's view of an organization (the Otter-style organization API) and its store
connections: a partner connects one of the organization's stores to its own store id, then
acts on it with `X-Store-Id`."""

from __future__ import annotations

from sqlalchemy import Connection, select
from sqlalchemy.exc import IntegrityError

from stockhub import ids
from stockhub.db.engine import reading, transaction
from stockhub.db.tables import brands, organizations, store_connections, stores
from stockhub.errors import Conflict, FieldError, conflict, invalid, not_found
from stockhub.services import events, mail, vault
from stockhub.services.context import Hub
from stockhub.services.paging import Page, page_of
from stockhub.domain.access import Scope
from stockhub.services.scope import store_number
from stockhub.services.tenancy import brand_number


def organization(hub: Hub, organization: int):
    with reading(hub.engine) as conn:
        return conn.execute(select(organizations).where(organizations.c.id == organization)).one()


def list_brands(hub: Hub, organization: int, limit: int, token: str | None) -> Page:
    query = select(brands).where(brands.c.organization_id == organization)
    with reading(hub.engine) as conn:
        return page_of(conn, query, brands.c.id, limit, token)


def get_brand(hub: Hub, organization: int, brand_id: str):
    with reading(hub.engine) as conn:
        number = brand_number(conn, organization, brand_id)
        return conn.execute(select(brands).where(brands.c.id == number)).one()


def list_stores(hub: Hub, organization: int, brand_id: str, limit: int, token: str | None) -> Page:
    with reading(hub.engine) as conn:
        brand = brand_number(conn, organization, brand_id)
        query = select(stores).where(stores.c.organization_id == organization, stores.c.brand_id == brand)
        return page_of(conn, query, stores.c.id, limit, token)


def get_store(hub: Hub, organization: int, brand_id: str, store_id: str):
    with reading(hub.engine) as conn:
        return (conn.execute(select(stores).where(stores.c.id == _store_of_brand(conn, organization, brand_id, store_id))).one())


def _store_of_brand(conn: Connection, organization: int, brand_id: str, store_id: str) -> int:
    brand = brand_number(conn, organization, brand_id)
    number = store_number(conn, organization, store_id)
    if conn.execute(select(stores.c.brand_id).where(stores.c.id == number)).scalar() != brand:
        raise not_found(f"store {store_id}")
    return number


# --- connections -----------------------------------------------------------------------------


def get_connection(hub: Hub, organization: int, partner: int, brand_id: str, store_id: str) -> str:
    """The partner's own id for this store, if the partner connected it."""
    with reading(hub.engine) as conn:
        number = _store_of_brand(conn, organization, brand_id, store_id)
        partner_store_id = conn.execute(
            select(store_connections.c.partner_store_id).where(
                store_connections.c.partner_id == partner, store_connections.c.store_id == number
            )
        ).scalar()
    if partner_store_id is None:
        raise not_found(f"a connection of store {store_id}")
    return partner_store_id


def connect(hub: Hub, organization: int, partner: int, brand_id: str, store_id: str, partner_store_id: str) -> None:
    partner_store_id = _valid_partner_store_id(partner_store_id)
    try:
        with transaction(hub.engine) as conn:
            number = _store_of_brand(conn, organization, brand_id, store_id)
            connection_id = conn.execute(
                store_connections.insert().values(
                    partner_id=partner, store_id=number, organization_id=organization, partner_store_id=partner_store_id
                )
            ).inserted_primary_key[0]
            on_store_connected(
                conn, connection_id=connection_id, organization=organization, partner=partner, store=number, partner_store_id=partner_store_id
            )
    except IntegrityError:
        raise conflict(
            f"store {store_id} is already connected to this application, or {partner_store_id!r} names another of "
            "your connected stores: DELETE the connection first to replace it"
        ) from None


def disconnect(hub: Hub, organization: int, partner: int, brand_id: str, store_id: str) -> None:
    with transaction(hub.engine) as conn:
        number = _store_of_brand(conn, organization, brand_id, store_id)
        conn.execute(
            store_connections.delete().where(store_connections.c.partner_id == partner, store_connections.c.store_id == number)
        )


def on_store_connected(
    conn: Connection, *, connection_id: int, organization: int, partner: int, store: int, partner_store_id: str
) -> None:
    """The single call site for the `store.connected` event, on the store's stream.

    Called inside the connecting transaction, so the outbox row commits with the connection
    (transactional outbox, design invariant 5). The event is the partner's: it reaches the
    organization's subscriptions and that partner's (e.g. from an earlier connection of the
    store), never another partner's; the partner reads it with `GET /v1/events` and X-Store-Id.
    """
    data = {"store_id": ids.encode("store", store), "partner_id": ids.encode("partner", partner), "partner_store_id": partner_store_id}
    events.emit(conn, "store.connected", organization, store, data, partner_id=partner)
    mail.queue(conn, "store_connected", f"store_connected:{connection_id}", organization, store, partner, data)  # the partner hears of it, with the key


def _valid_partner_store_id(value: object) -> str:
    if not isinstance(value, str) or not 1 <= len(value.strip()) <= 200:
        raise invalid("storeId must be a string of 1 to 200 characters", [FieldError("storeId", "must be 1 to 200 characters")])
    return value.strip()


# --- the upload key, for a connected partner ---------------------------------------------------


def current_upload_key(hub: Hub, scope: Scope | int, store_id: str) -> str:
    """The store's current upload key, unsealed (see services/vault.py for why it can be)."""
    with reading(hub.engine) as conn:
        number = store_number(conn, scope, store_id)
        sealed = conn.execute(select(stores.c.upload_key_sealed).where(stores.c.id == number)).scalar()
    key = vault.unseal(hub.secret, sealed) if sealed else None
    if key is None:
        raise Conflict(
            "this store's upload key predates key sealing (or the server secret changed): "
            "the retailer must rotate it once (POST /v1/stores/{id}/upload-key or `stockhub store rotate-key`)",
        )
    return key
