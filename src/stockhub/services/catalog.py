"""The organization's product catalog: products described by products.csv uploads and by catalog
imports (services/catalog_import.py), their prices in regional catalogs, searched and read back."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

import polars as pl
from sqlalchemy import Connection, exists, func, or_, select

from stockhub import feeds, ids, representations
from stockhub.db.engine import reading, upsert
from stockhub.db.tables import catalog_prices, catalog_products, catalogs
from stockhub.errors import FieldError, Malformed, not_found
from stockhub.services import events
from stockhub.services.context import Hub
from stockhub.services.paging import Page, page_of

# What products.csv describes of a product (feeds/product_file.py), and what follows from it.
CSV_FIELDS = ("brand", "title", "image_url", "description", "link", "condition", "category", "age_group", "gender", "color", "size", "item_group_id")
DERIVED = ("categories", "images", "title_key", "brand_key", "categories_key")
CSV_DESCRIBED = (*CSV_FIELDS, *DERIVED)
# What a catalog import describes (services/catalog_import.py); prices are compared beside it.
IMPORT_DESCRIBED = ("sku", "title", "brand", "description", "image_url", "category", "categories", "images", "attributes", *DERIVED[2:])
SHOWN_WITH_STOCK = representations.PRODUCT_FIELDS_WITH_STOCK  # what the store stock responses show of a product
_BATCH = 5000
PRODUCT_BATCH = 100  # products per product.updated event
PATH_SEPARATOR = " > "


def category_path(text: str) -> str:
    """A category path as stored: its parts trimmed and joined by " > " ("Books>Children" →
    "Books > Children"). A ValueError when a part is empty."""
    parts = [part.strip() for part in text.split(">")]
    if not all(parts):
        raise ValueError("a category path has an empty part: write parts separated by '>', e.g. 'Books > Children'")
    return PATH_SEPARATOR.join(parts)


def search_keys(title: str, brand: str | None, categories: list[str]) -> dict:
    """The case-folded keys `list_products` searches, computed here so both engines agree."""
    return {
        "title_key": title.casefold(),
        "brand_key": brand.casefold() if brand else None,
        "categories_key": "\n" + "".join(path.casefold() + "\n" for path in categories),
    }


def _from_products_file(record: dict) -> dict:
    """A products.csv record with what follows from it: its image and category as the lists."""
    try:
        categories = [category_path(record["category"])] if record["category"] else []
    except ValueError:
        categories = [record["category"].strip()]
    images = [record["image_url"]] if record["image_url"] else []
    return record | {"categories": json.dumps(categories), "images": json.dumps(images)} | search_keys(record["title"], record["brand"], categories)


def apply_products(conn: Connection, organization: int, store: int, upload_id: int, rows: pl.DataFrame, now: datetime) -> int:
    """Insert or replace the organization's products described by a store's upload, and tell
    subscribers what changed (product.updated, on the store's events); returns how many changed.
    Fields a products file does not describe (a catalog import's SKU, attributes, prices) are kept.

    Rows go in identifier order, so two uploads of one organization touching the same products
    lock them in the same order on PostgreSQL.
    """
    records = [
        _from_products_file(record) | {"organization_id": organization, "upload_id": upload_id, "updated_at": now}
        for record in rows.sort("identifier").select("identifier", *CSV_FIELDS).to_dicts()
    ]
    changed = _changed(conn, organization, records)
    for start in range(0, len(records), _BATCH):
        statement = upsert(conn, catalog_products)
        statement = statement.on_conflict_do_update(
            index_elements=["organization_id", "identifier"],
            set_={name: statement.excluded[name] for name in [*CSV_DESCRIBED, "upload_id", "updated_at"]},
        )
        conn.execute(statement, records[start : start + _BATCH])
    emit_product_changes(conn, organization, store, {"upload_id": ids.encode("upload", upload_id)}, [r["identifier"] for r in changed], now)
    return len(changed)


def _changed(conn: Connection, organization: int, records: list[dict]) -> list[dict]:
    """The records that describe a product differently from the catalog (or a new one)."""
    described = {}
    for start in range(0, len(records), _BATCH):
        wanted = [record["identifier"] for record in records[start : start + _BATCH]]
        query = select(catalog_products).where(catalog_products.c.organization_id == organization, catalog_products.c.identifier.in_(wanted))
        described |= {row.identifier: tuple(getattr(row, name) for name in CSV_DESCRIBED) for row in conn.execute(query)}
    return [record for record in records if described.get(record["identifier"]) != tuple(record[name] for name in CSV_DESCRIBED)]


def emit_product_changes(conn: Connection, organization: int, store: int | None, source: dict, identifiers: list[str], now: datetime) -> int:
    """product.updated for the products a products file or a catalog import changed, as they are
    now: every changed product in exactly one event, PRODUCT_BATCH to an event, in identifier
    order; nothing for an unchanged one. `source` says what changed them ({"upload_id": …} or
    {"import_id": …}); `store` is the uploading store, None for an import (the organization's).
    Returns the number of events."""
    identifiers = sorted(identifiers)
    batches = [identifiers[i : i + PRODUCT_BATCH] for i in range(0, len(identifiers), PRODUCT_BATCH)]
    base = {"upload_id": None, "import_id": None} | source
    for n, batch in enumerate(batches, 1):
        products = _rendered(conn, organization, batch)
        events.emit(conn, "product.updated", organization, store, base | {"batch": n, "batches": len(batches), "products": products}, now=now)
    return len(batches)


class ProductRecord(NamedTuple):
    row: object  # a catalog_products row
    prices: list  # its prices: rows of price_minor, locale, currency, by catalog


def _rendered(conn: Connection, organization: int, identifiers: list[str]) -> list[dict]:
    """The products as they are now, rendered with their prices, in the order given (those that exist)."""
    return [representations.product(record) for record in _records(conn, organization, identifiers)]


def _records(conn: Connection, organization: int, identifiers: list[str]) -> list[ProductRecord]:
    rows = {row.identifier: row for row in conn.execute(
        select(catalog_products).where(catalog_products.c.organization_id == organization, catalog_products.c.identifier.in_(identifiers))
    )}  # fmt: skip
    prices = prices_of(conn, organization, list(rows))
    return [ProductRecord(rows[i], prices.get(i, [])) for i in identifiers if i in rows]


def prices_of(conn: Connection, organization: int, identifiers: list[str]) -> dict[str, list]:
    """Each product's prices (rows of identifier, price_minor, locale, currency), by catalog name."""
    found: dict[str, list] = {}
    if not identifiers:
        return found
    query = (
        select(catalog_prices.c.identifier, catalog_prices.c.price_minor, catalogs.c.locale, catalogs.c.currency)
        .join(catalogs, catalogs.c.id == catalog_prices.c.catalog_id)
        .where(catalogs.c.organization_id == organization, catalog_prices.c.identifier.in_(identifiers))
        .order_by(catalog_prices.c.identifier, catalogs.c.locale, catalogs.c.currency)
    )
    for row in conn.execute(query):
        found.setdefault(row.identifier, []).append(row)
    return found


catalog_name = representations.catalog_name


def get_product(hub: Hub, organization: int, identifier: str) -> ProductRecord:
    """A product of the organization's catalog with its prices; any spelling of its barcode, or
    its SKU, finds it."""
    try:
        canonical = feeds.lookup_identifier(identifier)
    except ValueError as error:
        raise not_found(f"a product {identifier!r} ({error})") from None
    p = catalog_products.c
    with reading(hub.engine) as conn:
        row = conn.execute(
            select(catalog_products)
            .where(p.organization_id == organization, or_(p.identifier == canonical, p.sku == canonical))
            .order_by((p.identifier != canonical), p.identifier)
            .limit(1)
        ).first()
        if row is None:
            raise not_found(f"product {identifier}")
        return ProductRecord(row, prices_of(conn, organization, [row.identifier]).get(row.identifier, []))


@dataclass(frozen=True)
class ProductQuery:
    q: str | None = None  # in the title or the brand, any case
    brand: str | None = None  # the brand, any case
    category: str | None = None  # a category path or its start, by whole parts
    identifier: str | None = None  # any spelling of a barcode, or a SKU
    catalog: str | None = None  # "en-GB/GBP": products with a price in it


def list_products(hub: Hub, organization: int, query: ProductQuery, limit: int, token: str | None) -> Page:
    """The organization's products that match every filter given, by identifier, with their
    prices (a page of ProductRecord)."""
    p = catalog_products.c
    select_ = select(catalog_products).where(p.organization_id == organization)
    if query.q:
        needle = query.q.strip().casefold()
        select_ = select_.where(or_(p.title_key.contains(needle, autoescape=True), p.brand_key.contains(needle, autoescape=True)))
    if query.brand:
        select_ = select_.where(p.brand_key == query.brand.strip().casefold())
    if query.category:
        try:
            path = category_path(query.category).casefold()
        except ValueError as error:
            raise Malformed(str(error), [FieldError("category", "malformed")]) from None
        select_ = select_.where(
            or_(p.categories_key.contains(f"\n{path}\n", autoescape=True), p.categories_key.contains(f"\n{path}{PATH_SEPARATOR}", autoescape=True))
        )
    if query.identifier:
        try:
            canonical = feeds.lookup_identifier(query.identifier)
        except ValueError as error:
            raise Malformed(f"identifier: {error}", [FieldError("identifier", str(error))]) from None
        select_ = select_.where(or_(p.identifier == canonical, p.sku == canonical))
    with reading(hub.engine) as conn:
        if query.catalog:
            number = _catalog_number(conn, organization, query.catalog)
            select_ = select_.where(
                exists().where(catalog_prices.c.catalog_id == number, catalog_prices.c.identifier == p.identifier)
            )
        page = page_of(conn, select_, p.identifier, limit, token)
        prices = prices_of(conn, organization, [row.identifier for row in page.items])
    return Page([ProductRecord(row, prices.get(row.identifier, [])) for row in page.items], page.next_token)


def _catalog_number(conn: Connection, organization: int, name: str) -> int | None:
    """The catalog called `name` ("en-GB/GBP", any case), or None (then nothing has a price in it)."""
    locale, _, currency = name.strip().partition("/")
    language, _, region = locale.partition("-")
    return conn.execute(
        select(catalogs.c.id).where(
            catalogs.c.organization_id == organization,
            catalogs.c.locale == f"{language.lower()}-{region.upper()}",
            catalogs.c.currency == currency.upper(),
        )
    ).scalar()


def list_catalogs(hub: Hub, organization: int, limit: int, token: str | None) -> Page:
    """The organization's catalogs (a locale and a currency each), with how many products have a
    price in each (rows; representations.catalog renders them)."""
    counted = (
        select(catalog_prices.c.catalog_id, func.count().label("products")).group_by(catalog_prices.c.catalog_id).subquery()
    )
    query = (
        select(catalogs.c.id, catalogs.c.locale, catalogs.c.currency, catalogs.c.created_at, func.coalesce(counted.c.products, 0).label("products"))
        .select_from(catalogs.outerjoin(counted, counted.c.catalog_id == catalogs.c.id))
        .where(catalogs.c.organization_id == organization)
    )
    with reading(hub.engine) as conn:
        return page_of(conn, query, catalogs.c.id, limit, token)


def stock_join(query, stock_levels, organization: int):
    """`query` over stock_levels with the catalog's product data added where it has the product."""
    joined = stock_levels.outerjoin(
        catalog_products,
        (catalog_products.c.organization_id == organization) & (catalog_products.c.identifier == stock_levels.c.identifier),
    )
    return query.select_from(joined).add_columns(*(catalog_products.c[name] for name in SHOWN_WITH_STOCK))
