"""Organizations, brands, stores, their upload keys and the organization's API tokens."""

from __future__ import annotations

import functools
import json
import zoneinfo
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, Strict, ValidationError, field_validator, model_validator
from sqlalchemy import Connection, select

from stockhub import ids, security
from stockhub.db.engine import reading, transaction
from stockhub.db.tables import api_tokens, brands, organizations, stores, utcnow
from stockhub.domain import places
from stockhub.domain.access import Scope
from stockhub.feeds import IdentifierRule, rule_for
from stockhub.errors import FieldError, invalid, not_found
from stockhub.services import mail, vault
from stockhub.services.store_status import parse_status
from stockhub.services.context import Hub
from stockhub.services.scope import any_store_number, as_scope, store_number
from stockhub.services.fields import Bool, Number
from stockhub.feeds.mapping import MAX_HEADER_ROW, MAX_POSITION, MappingError, parse_mapping
from stockhub.services.paging import Page, page_of

Name = Annotated[str, Field(min_length=1, max_length=200)]
# A column of a stock file: its header's name, or its 1-based position.
MappedColumn = Annotated[str, Field(min_length=1, max_length=200)] | Annotated[int, Strict(), Field(ge=1, le=MAX_POSITION)]


class ColumnMapping(BaseModel):
    """How this store's stock files are read (feeds.mapping): a mapped file is read by this alone,
    never by header aliases, an export preset or position guessing."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    identifier: MappedColumn | None = Field(None, description="a barcode-or-SKU column (or give barcode and/or sku)")
    barcode: MappedColumn | None = None
    sku: MappedColumn | None = None
    quantity: MappedColumn | None = None
    price: MappedColumn | None = None
    currency: MappedColumn | None = None
    promotion_amount: MappedColumn | None = None
    safety_stock: MappedColumn | None = None
    delimiter: Literal[",", ";", "\t", "|"] | None = Field(None, description="default: detected")
    decimal_comma: Bool = Field(False, description="prices are written 6,99")
    encoding: str | None = Field(None, max_length=40, description="e.g. utf-8, cp1252; default: UTF-8, else Windows-1252")
    header_row: Annotated[int, Strict(), Field(ge=1, le=MAX_HEADER_ROW)] | None = Field(
        1, description="the row holding the header; null: no header (map columns by position)"
    )

    @model_validator(mode="after")
    def _whole(self) -> ColumnMapping:
        try:
            parse_mapping(self.model_dump(exclude_none=False))
        except MappingError as error:
            raise ValueError("; ".join(f"{field.removeprefix('column_mapping.')}: {message}" for field, message in error.errors)) from None
        return self

    def stored(self) -> dict:
        return parse_mapping(self.model_dump())


class StoreFields(BaseModel):
    """A store's details as a person or partner gives them; currency and timezone default from the country."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: Name
    country: str = Field(description="ISO 3166-1 alpha-2, e.g. GB")
    address_line1: str | None = Field(None, max_length=500, validation_alias=AliasChoices("address_line1", "address"))
    address_line2: str | None = Field(None, max_length=500)
    city: str | None = Field(None, max_length=200)
    postal_code: str | None = Field(None, max_length=20, validation_alias=AliasChoices("postal_code", "postcode"))
    state: str | None = Field(None, max_length=200, description="region, county or province")
    currency: str | None = Field(None, description="ISO 4217; defaults to the country's currency")
    timezone: str | None = Field(None, description="IANA name; defaults to the country's when it has only one")
    latitude: Number | None = Field(None, ge=-90, le=90)
    longitude: Number | None = Field(None, ge=-180, le=180)
    feed_quantity_means: Literal["on_hand", "available"] = Field(
        "on_hand", description="what a stock file's quantity counts: units on hand, or units available to sell"
    )
    custom_products: Bool = Field(False, description="custom product data (products.csv) is on: digits failing the GTIN check digit are kept as a SKU")
    location_name: str | None = Field(
        None, max_length=200, description="this store's name in its POS's per-location export columns (Square, Vend, Lightspeed, Loyverse)"
    )
    column_mapping: ColumnMapping | None = Field(None, description="how this store's stock files are read; null: presets and header aliases")

    @field_validator("country")
    @classmethod
    def _country(cls, value: str) -> str:
        value = value.upper()
        if not places.is_country(value):
            raise ValueError(f"{value!r} is not an ISO 3166-1 alpha-2 country code")
        return value

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.upper()
        if not places.is_currency(value):
            raise ValueError(f"{value!r} is not an ISO 4217 currency code")
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str | None) -> str | None:
        if value is not None and value not in _timezone_names():
            raise ValueError(f"{value!r} is not an IANA timezone name")
        return value

    @model_validator(mode="after")
    def _defaults(self) -> StoreFields:
        if self.currency is None:
            self.currency = places.default_currency(self.country)
            if self.currency is None:
                raise ValueError(f"country {self.country} has no default currency: give one")
        if self.timezone is None:
            self.timezone = places.default_timezone(self.country)
            if self.timezone is None:
                zones = ", ".join(places.timezones(self.country)[:8])
                raise ValueError(f"country {self.country} spans several timezones: give one (e.g. {zones})")
        if (self.latitude is None) != (self.longitude is None):
            raise ValueError("give both latitude and longitude, or neither")
        return self


class StoreChanges(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    # Absent: unchanged. Null clears only what may be empty (currency and timezone: the country's).
    name: Name = None
    country: str = None
    address_line1: str | None = Field(None, max_length=500, validation_alias=AliasChoices("address_line1", "address"))
    address_line2: str | None = Field(None, max_length=500)
    city: str | None = Field(None, max_length=200)
    postal_code: str | None = Field(None, max_length=20, validation_alias=AliasChoices("postal_code", "postcode"))
    state: str | None = Field(None, max_length=200)
    currency: str | None = None
    timezone: str | None = None
    latitude: Number | None = Field(None, ge=-90, le=90)
    longitude: Number | None = Field(None, ge=-180, le=180)
    feed_quantity_means: Literal["on_hand", "available"] = None
    custom_products: Bool = None
    location_name: str | None = Field(None, max_length=200)
    column_mapping: ColumnMapping | None = None


def validated(model: type[BaseModel], data: dict[str, Any]) -> BaseModel:
    """Validate outside the API (CLI, services) with the same field-by-field errors."""
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise invalid("the request has invalid fields", field_errors(error)) from None


def field_errors(error: ValidationError) -> list[FieldError]:
    return [
        FieldError(field=".".join(str(part) for part in e["loc"] if part != "body") or "body", message=e["msg"])
        for e in error.errors()
    ]


@functools.cache
def _timezone_names() -> frozenset[str]:
    """The IANA names this system knows: read once (listing them walks the whole tz database, ~25 ms)."""
    return frozenset(zoneinfo.available_timezones())


@dataclass(frozen=True)
class Created:
    """A thing just made, with the secret that is shown only now."""

    id: str
    secret: str | None = None


# --- organizations and tokens (CLI) ---------------------------------------------------------


def create_organization(hub: Hub, name: str) -> Created:
    name = validated_name(name)
    with transaction(hub.engine) as conn:
        org_id = conn.execute(organizations.insert().values(name=name)).inserted_primary_key[0]
    return Created(ids.encode("organization", org_id))


def create_api_token(hub: Hub, organization_id: str, label: str | None = None) -> Created:
    org = _organization_number(hub, organization_id)
    token = security.new_key("shk_")
    with transaction(hub.engine) as conn:
        token_id = conn.execute(
            api_tokens.insert().values(
                organization_id=org, token_hash=security.key_hash(hub.secret, token), kind="api", label=label
            )
        ).inserted_primary_key[0]
    return Created(ids.encode("token", token_id), token)


def _organization_number(hub: Hub, organization_id: str) -> int:
    number = ids.decode("organization", organization_id)
    with reading(hub.engine) as conn:
        if number is None or conn.execute(select(organizations.c.id).where(organizations.c.id == number)).first() is None:
            raise not_found(f"organization {organization_id}")
    return number


def validated_name(name: str) -> str:
    name = name.strip()
    if not 1 <= len(name) <= 200:
        raise invalid("the name must have 1 to 200 characters", [FieldError("name", "must have 1 to 200 characters")])
    return name


# --- brands ----------------------------------------------------------------------------------


def create_brand(hub: Hub, organization: int, name: str):
    name = validated_name(name)
    with transaction(hub.engine) as conn:
        brand_id = conn.execute(brands.insert().values(organization_id=organization, name=name)).inserted_primary_key[0]
        return _brand(conn, organization, brand_id)


def create_brand_for(hub: Hub, organization_id: str, name: str) -> Created:
    return Created(ids.encode("brand", create_brand(hub, _organization_number(hub, organization_id), name).id))


def list_brands(hub: Hub, organization: int, limit: int, token: str | None) -> Page:
    query = select(brands).where(brands.c.organization_id == organization)
    with reading(hub.engine) as conn:
        return page_of(conn, query, brands.c.id, limit, token)


def brand_number(conn: Connection, organization: int, brand_id: str) -> int:
    number = ids.decode("brand", brand_id)
    found = conn.execute(
        select(brands.c.id).where(brands.c.id == number, brands.c.organization_id == organization)
    ).scalar()
    if number is None or found is None:
        raise not_found(f"brand {brand_id}")
    return number


def _brand(conn: Connection, organization: int, number: int):
    return conn.execute(select(brands).where(brands.c.id == number, brands.c.organization_id == organization)).one()


# --- stores ----------------------------------------------------------------------------------


def create_store(hub: Hub, organization: int, brand_id: str, fields: StoreFields) -> tuple[Any, str]:
    """Make a store and its upload key; the key is returned this once and kept only as a hash."""
    upload_key = security.new_key()
    with transaction(hub.engine) as conn:
        brand = brand_number(conn, organization, brand_id)
        store_id = conn.execute(
            stores.insert().values(
                organization_id=organization,
                brand_id=brand,
                upload_key_hash=security.key_hash(hub.secret, upload_key),
                upload_key_sealed=vault.seal(hub.secret, upload_key),
                **_row_values(fields),
            )
        ).inserted_primary_key[0]
        mail.queue(conn, "store_created", f"store_created:{store_id}", organization, store_id)  # its key and setup instructions
        return _store(conn, organization, store_id), upload_key


def create_store_for(hub: Hub, brand_id: str, data: dict[str, Any]) -> Created:
    """The CLI's way in: the brand id alone says which organization."""
    number = ids.decode("brand", brand_id)
    with reading(hub.engine) as conn:
        organization = conn.execute(select(brands.c.organization_id).where(brands.c.id == number)).scalar()
    if number is None or organization is None:
        raise not_found(f"brand {brand_id}")
    store, key = create_store(hub, organization, brand_id, validated(StoreFields, data))
    return Created(ids.encode("store", store.id), key)


def list_stores(hub: Hub, organization: int, brand_id: str, limit: int, token: str | None, status: str | None = None) -> Page:
    """A brand's stores; `status` keeps those with that status (domain.store_status)."""
    wanted = parse_status(status)
    with reading(hub.engine) as conn:
        brand = brand_number(conn, organization, brand_id)
        query = select(stores).where(stores.c.organization_id == organization, stores.c.brand_id == brand)
        if wanted is not None:
            query = query.where(stores.c.status == wanted.value)
        return page_of(conn, query, stores.c.id, limit, token)


def get_store(hub: Hub, scope: Scope | int, store_id: str):
    with reading(hub.engine) as conn:
        return _store(conn, as_scope(scope).organization, store_number(conn, scope, store_id))


def update_store(hub: Hub, organization: int, store_id: str, changes: StoreChanges):
    with transaction(hub.engine) as conn:
        number = store_number(conn, organization, store_id)
        current = conn.execute(select(stores).where(stores.c.id == number)).one()
        merged = {name: getattr(current, name) for name in StoreFields.model_fields} | changes.model_dump(
            exclude_unset=True
        )
        if "column_mapping" not in changes.model_fields_set and current.column_mapping:
            merged["column_mapping"] = json.loads(current.column_mapping)
        if "country" in changes.model_fields_set:  # a new country brings its own defaults unless given
            merged["currency"] = changes.currency
            merged["timezone"] = changes.timezone
        fields = validated(StoreFields, merged)
        conn.execute(stores.update().where(stores.c.id == number).values(**_row_values(fields), updated_at=utcnow()))
        return _store(conn, organization, number)


def _row_values(fields: StoreFields) -> dict:
    """A store's fields as its row holds them: the column mapping as JSON, its defaults filled."""
    values = fields.model_dump(exclude={"column_mapping", "location_name"})
    values["location_name"] = (fields.location_name or "").strip() or None
    values["column_mapping"] = json.dumps(fields.column_mapping.stored()) if fields.column_mapping else None
    return values


def organization_of_store(hub: Hub, store_id: str) -> int:
    """For the operator's CLI: the organization of any store."""
    with reading(hub.engine) as conn:
        number = any_store_number(conn, store_id)
        return conn.execute(select(stores.c.organization_id).where(stores.c.id == number)).scalar_one()


def rotate_upload_key(hub: Hub, organization: int | None, store_id: str) -> str:
    """A new upload key for the store; the old one stops working at once (organization None: the operator's CLI)."""
    upload_key = security.new_key()
    with transaction(hub.engine) as conn:
        number = any_store_number(conn, store_id) if organization is None else store_number(conn, organization, store_id)
        conn.execute(
            stores.update()
            .where(stores.c.id == number)
            .values(
                upload_key_hash=security.key_hash(hub.secret, upload_key),
                upload_key_sealed=vault.seal(hub.secret, upload_key),
                upload_key_rotated_at=utcnow(),
            )
        )
    return upload_key


def store_for_upload_key(hub: Hub, upload_key: str):
    with reading(hub.engine) as conn:
        return conn.execute(
            select(stores).where(stores.c.upload_key_hash == security.key_hash(hub.secret, upload_key))
        ).first()


def identifier_rules(conn: Connection, store_numbers: Iterable[int]) -> dict[int, IdentifierRule]:
    """How each store names its products (see feeds.IdentifierRule)."""
    wanted = sorted(set(store_numbers))
    rows = conn.execute(select(stores.c.id, stores.c.custom_products).where(stores.c.id.in_(wanted))).all() if wanted else []
    return {row.id: rule_for(row.custom_products) for row in rows}


def _store(conn: Connection, organization: int, number: int):
    return conn.execute(select(stores).where(stores.c.id == number, stores.c.organization_id == organization)).one()

