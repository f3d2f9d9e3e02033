"""The organization's product catalog: custom product data from products.csv, read back by barcode."""

from __future__ import annotations

from datetime import datetime
from types import SimpleNamespace

import polars as pl
from sqlalchemy import Connection, select

from stockhub import feeds, ids, representations
from stockhub.db.engine import reading, upsert
from stockhub.db.tables import catalog_products
from stockhub.errors import not_found
from stockhub.services import events
from stockhub.services.context import Hub

DESCRIBED = list(representations.PRODUCT_FIELDS)
SHOWN_WITH_STOCK = representations.PRODUCT_FIELDS_WITH_STOCK  # what the store stock responses show of a product
_BATCH = 5000
PRODUCT_BATCH = 100  # products per product.updated event


def apply_products(conn: Connection, organization: int, store: int, upload_id: int, rows: pl.DataFrame, now: datetime) -> int:
    """Insert or replace the organization's products described by a store's upload, and tell
    subscribers what changed (product.updated, on the store's events); returns how many changed.

    Rows go in identifier order, so two uploads of one organization touching the same products
    lock them in the same order on PostgreSQL.
    """
    records = rows.sort("identifier").select("identifier", *DESCRIBED).with_columns(
        organization_id=pl.lit(organization), upload_id=pl.lit(upload_id), updated_at=pl.lit(now)
    ).to_dicts()
    changed = _changed(conn, organization, records)
    for start in range(0, len(records), _BATCH):
        statement = upsert(conn, catalog_products)
        statement = statement.on_conflict_do_update(
            index_elements=["organization_id", "identifier"],
            set_={name: statement.excluded[name] for name in [*DESCRIBED, "upload_id", "updated_at"]},
        )
        conn.execute(statement, records[start : start + _BATCH])
    batches = [changed[i : i + PRODUCT_BATCH] for i in range(0, len(changed), PRODUCT_BATCH)]
    upload = ids.encode("upload", upload_id)
    for n, batch in enumerate(batches, 1):
        products = [representations.product(SimpleNamespace(**record)) for record in batch]
        events.emit(conn, "product.updated", organization, store, {"upload_id": upload, "batch": n, "batches": len(batches), "products": products}, now=now)
    return len(changed)


def _changed(conn: Connection, organization: int, records: list[dict]) -> list[dict]:
    """The records that describe a product differently from the catalog (or a new one)."""
    described = {}
    for start in range(0, len(records), _BATCH):
        wanted = [record["identifier"] for record in records[start : start + _BATCH]]
        query = select(catalog_products).where(catalog_products.c.organization_id == organization, catalog_products.c.identifier.in_(wanted))
        described |= {row.identifier: tuple(getattr(row, name) for name in DESCRIBED) for row in conn.execute(query)}
    return [record for record in records if described.get(record["identifier"]) != tuple(record[name] for name in DESCRIBED)]


def get_product(hub: Hub, organization: int, identifier: str):
    """A product of the organization's catalog; any spelling of its barcode finds it."""
    try:
        canonical = feeds.lookup_identifier(identifier)
    except ValueError as error:
        raise not_found(f"a product {identifier!r} ({error})") from None
    with reading(hub.engine) as conn:
        row = conn.execute(
            select(catalog_products).where(
                catalog_products.c.organization_id == organization, catalog_products.c.identifier == canonical
            )
        ).first()
    if row is None:
        raise not_found(f"product {identifier}")
    return row


def stock_join(query, stock_levels, organization: int):
    """`query` over stock_levels with the catalog's product data added where it has the product."""
    joined = stock_levels.outerjoin(
        catalog_products,
        (catalog_products.c.organization_id == organization) & (catalog_products.c.identifier == stock_levels.c.identifier),
    )
    return query.select_from(joined).add_columns(*(catalog_products.c[name] for name in SHOWN_WITH_STOCK))
