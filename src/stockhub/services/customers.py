"""Customers: found or made by email or external id (e.g. a marketplace's retailer id)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, EmailStr, Field, model_validator
from sqlalchemy import Connection, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from stockhub import ids
from stockhub.db.engine import is_postgres, reading, transaction
from stockhub.db.tables import customers
from stockhub.errors import not_found
from stockhub.services.context import Hub
from stockhub.services.paging import Page, page_of


class CustomerRef(BaseModel):
    """An existing customer's id, or an email and/or external id to find or make one by."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    id: str | None = None
    email: EmailStr | None = None
    name: str | None = Field(None, max_length=200)
    external_id: str | None = Field(None, min_length=1, max_length=100)

    @model_validator(mode="after")
    def _identified(self) -> CustomerRef:
        if not (self.id or self.email or self.external_id):
            raise ValueError("give the customer's id, email or external_id")
        return self


def find_or_make(conn: Connection, organization: int, ref: CustomerRef) -> tuple[int, bool]:
    """The customer's row id, and whether it was made now. Matches on external id first, then email."""
    if ref.id:
        number = ids.decode("customer", ref.id)
        found = conn.execute(
            select(customers.c.id).where(customers.c.id == number, customers.c.organization_id == organization)
        ).scalar()
        if number is None or found is None:
            raise not_found(f"customer {ref.id}")
        return found, False
    email = ref.email.lower() if ref.email else None
    match = [customers.c.external_id == ref.external_id] if ref.external_id else []
    match += [customers.c.email == email] if email else []
    find = (
        select(customers.c.id)
        .where(customers.c.organization_id == organization, or_(*match))
        .order_by(customers.c.external_id.is_(None))  # an external id match wins
    )
    found = conn.execute(find).scalar()
    if found is not None:
        return found, False
    # Another request may be making the same customer right now: its row wins, we use it.
    insert = pg_insert if is_postgres(conn) else sqlite_insert
    made = conn.execute(
        insert(customers)
        .values(organization_id=organization, email=email, name=ref.name, external_id=ref.external_id)
        .on_conflict_do_nothing()
        .returning(customers.c.id)
    ).scalar()
    return (made, True) if made is not None else (conn.execute(find).scalar_one(), False)


def get_or_create(hub: Hub, organization: int, ref: CustomerRef) -> tuple[Any, bool]:
    with transaction(hub.engine) as conn:
        number, made = find_or_make(conn, organization, ref)
        return conn.execute(select(customers).where(customers.c.id == number)).one(), made


def search(hub: Hub, organization: int, q: str | None, limit: int, token: str | None) -> Page:
    query = select(customers).where(customers.c.organization_id == organization)
    if q:
        pattern = f"%{q.strip().lower()}%"
        query = query.where(
            or_(customers.c.email.like(pattern), customers.c.name.ilike(pattern), customers.c.external_id == q.strip())
        )
    with reading(hub.engine) as conn:
        return page_of(conn, query, customers.c.id, limit, token)


def get(hub: Hub, organization: int, customer_id: str):
    with reading(hub.engine) as conn:
        row = conn.execute(
            select(customers).where(customers.c.id == ids.decode("customer", customer_id), customers.c.organization_id == organization)
        ).first()
    if row is None:
        raise not_found(f"customer {customer_id}")
    return row

