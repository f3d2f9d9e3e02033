"""The organization's product catalog: products from products.csv and catalog imports, their
prices in regional catalogs, and the import jobs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.concurrency import run_in_threadpool

from stockhub import representations as show
from stockhub.api import problems
from stockhub.api.deps import CONFLICT, HubDep, Limit, Organization, Token, page_body
from stockhub.errors import FieldError, Problem
from stockhub.feeds.catalog_document import MAX_DEPTH
from stockhub.services import catalog, catalog_import
from stockhub.services.idempotency import MAX_KEY_LENGTH

router = APIRouter(prefix="/v1", tags=["products"])


@router.get("/products")
def list_products(
    hub: HubDep,
    organization: Organization,
    q: Annotated[str | None, Query(min_length=1, max_length=200, description="in the title or brand, any case")] = None,
    brand: Annotated[str | None, Query(min_length=1, max_length=200, description="the brand, any case")] = None,
    category: Annotated[str | None, Query(min_length=1, max_length=750, description="a category path or its start by whole parts: `Books > Children`")] = None,
    identifier: Annotated[str | None, Query(min_length=1, max_length=64, description="any spelling of a barcode, or a SKU")] = None,
    catalog_: Annotated[str | None, Query(alias="catalog", min_length=1, max_length=30, description="`en-GB/GBP`: products priced in it")] = None,
    limit: Limit = 50,
    token: Token = None,
) -> dict:
    """The catalog's products that match every filter given, by identifier, with their prices."""
    query = catalog.ProductQuery(q=q, brand=brand, category=category, identifier=identifier, catalog=catalog_)
    return page_body(catalog.list_products(hub, organization, query, limit, token), show.product)


@router.get("/products/{identifier}")
def get_product(hub: HubDep, organization: Organization, identifier: str) -> dict:
    """A product's data (title, brand, images, categories, attributes, ...) and its price in each
    catalog; any spelling of its barcode, or its SKU, finds it."""
    return show.product(catalog.get_product(hub, organization, identifier))


@router.get("/catalogs")
def list_catalogs(hub: HubDep, organization: Organization, limit: Limit = 50, token: Token = None) -> dict:
    """The regional catalogs (a locale and a currency, `en-GB/GBP`) that products have prices in."""
    return page_body(catalog.list_catalogs(hub, organization, limit, token), show.catalog)


_DOCUMENT = {
    "type": "object",
    "required": ["products"],
    "additionalProperties": False,
    "properties": {
        "products": {
            "type": "array",
            "minItems": 1,
            "description": "products: each an object with `barcode` (or `gtin`) and/or `sku`, `title`, and optionally `brand`,"
            " `description`, `categories` (paths such as `Books > Children`), `images` (URLs), `attributes` (key: text,"
            " number or boolean) and `prices` ([{`catalog`: `en-GB/GBP`, `price`: `6.99`}]). An item that breaks a rule is"
            " rejected with its reasons (`GET /v1/catalog/imports/{id}/rejections`); the others are applied.",
            "items": {},
        }
    },
    "example": {
        "products": [
            {
                "barcode": "9780141383743", "title": "Matilda", "brand": "Puffin", "categories": ["Books > Children"],
                "images": ["https://img.example/matilda.jpg"], "attributes": {"pages": 240},
                "prices": [{"catalog": "en-GB/GBP", "price": "6.99"}, {"catalog": "de-DE/EUR", "price": "8.50"}],
            }
        ]
    },
}  # fmt: skip


@router.post(
    "/catalog/imports",
    status_code=202,
    responses=problems.responses(409, 413, 415) | CONFLICT,
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": f"a JSON document, or the same products as NDJSON (`Content-Type: application/x-ndjson`,"
            f" one product object per line); at most CATALOG_IMPORT_MAX_BYTES, nested at most {MAX_DEPTH} levels",
            # NDJSON is read too (one product per line) but not described as a content here: JSON Schema
            # cannot describe lines of JSON, and a text schema would call any body valid
            "content": {"application/json": {"schema": _DOCUMENT}},
        }
    },
)
async def import_products(
    hub: HubDep,
    organization: Organization,
    request: Request,
    idempotency_key: Annotated[str, Header(max_length=MAX_KEY_LENGTH, description="the same key and document again: the same job")],
) -> dict:
    """Import products (NewStore's Import API): answered at once with a job to poll at
    `GET /v1/catalog/imports/{id}`; the workers check every item and apply the good ones."""
    fmt = catalog_import.format_of(request.headers.get("content-type"))
    if fmt is None:
        raise Problem(415, "Unsupported media type", "send the products as application/json or application/x-ndjson", [FieldError("Content-Type", "unsupported")])
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > hub.settings.catalog_import_max_bytes:
        raise catalog_import.too_large(hub)
    received = await catalog_import.receive(hub, organization, fmt, request.stream())
    return await run_in_threadpool(catalog_import.create_import, hub, organization, idempotency_key, received)


@router.get("/catalog/imports/{import_id}")
def get_import(hub: HubDep, organization: Organization, import_id: str) -> dict:
    """An import's status (queued, processing, succeeded, failed) and counts so far."""
    return show.catalog_import(catalog_import.get_import(hub, organization, import_id))


@router.get("/catalog/imports/{import_id}/rejections")
def import_rejections(hub: HubDep, organization: Organization, import_id: str, limit: Limit = 50, token: Token = None) -> dict:
    """Each rejected item's index, identifier, the field refused and why, in item order."""
    return page_body(catalog_import.list_rejections(hub, organization, import_id, limit, token), show.import_rejection)
