"""An organization's shipping methods: what delivery options are priced and dated by."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import delete, insert, select

from stockhub import ids
from stockhub.db.engine import reading, transaction
from stockhub.db.tables import shipping_methods
from stockhub.domain import places
from stockhub.domain.money import to_minor
from stockhub.errors import FieldError, invalid, not_found
from stockhub.services.context import Hub
from stockhub.services.paging import Page, page_of
from stockhub.services.fields import Amount, Currency, Int


class ShippingMethod(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    name: str = Field(min_length=1, max_length=200)
    price: Amount = Field(le=1_000_000, description="per shipment")
    currency: Currency
    min_days: Int = Field(ge=0, le=365)
    max_days: Int = Field(ge=0, le=365)
    countries: list[str] = Field(min_length=1, max_length=250, description="ISO 3166-1 alpha-2 codes it ships to")

    @field_validator("countries")
    @classmethod
    def _countries(cls, values: list[str]) -> list[str]:
        wrong = [v for v in values if not places.is_country(v.upper())]
        if wrong:
            raise ValueError(f"not ISO 3166-1 alpha-2 country codes: {', '.join(wrong)}")
        return sorted({v.upper() for v in values})

    @model_validator(mode="after")
    def _days(self) -> ShippingMethod:
        if self.max_days < self.min_days:
            raise ValueError("max_days is below min_days")
        return self


def create(hub: Hub, organization: int, method: ShippingMethod):
    try:
        minor = to_minor(method.price, method.currency)
    except ValueError as error:
        raise invalid("the price does not fit the currency", [FieldError("price", str(error))]) from None
    with transaction(hub.engine) as conn:
        number = conn.execute(
            insert(shipping_methods).values(
                organization_id=organization,
                name=method.name,
                price_minor=minor,
                currency=method.currency,
                min_days=method.min_days,
                max_days=method.max_days,
                countries=json.dumps(method.countries),
                created_at=datetime.now(UTC),
            )
        ).inserted_primary_key[0]
        return conn.execute(select(shipping_methods).where(shipping_methods.c.id == number)).one()


def list_methods(hub: Hub, organization: int, limit: int, token: str | None) -> Page:
    with reading(hub.engine) as conn:
        query = select(shipping_methods).where(shipping_methods.c.organization_id == organization)
        return page_of(conn, query, shipping_methods.c.id, limit, token)


def remove(hub: Hub, organization: int, method_id: str) -> None:
    number = ids.decode("shipping_method", method_id)
    with transaction(hub.engine) as conn:
        gone = conn.execute(
            delete(shipping_methods).where(shipping_methods.c.id == number, shipping_methods.c.organization_id == organization)
        ).rowcount if number is not None else 0
    if not gone:
        raise not_found(f"shipping method {method_id}")

