"""How each resource reads on the wire: the public JSON of a row, in one place.

Services return rows (or small records of a row and what belongs to it); the faces render them
with these functions — the API's responses, the dashboard's pages and the CLI's `--json`. Event
payloads use them too, at the moment the event is written (an event carries the resource as it
was). Pure functions: no database, no settings.
"""

from __future__ import annotations

import json
from functools import lru_cache

from stockhub import ids
from stockhub.db.tables import catalog_products
from stockhub.domain.access import scope_list
from stockhub.domain.money import to_decimal_string
from stockhub.domain.stock import StockLevel
from stockhub.timefmt import iso

_public = lru_cache(maxsize=4096)(ids.encode)  # a few organizations and stores, rendered on every event


# --- organizations, brands, stores, partners -------------------------------------------------


def brand(row) -> dict:
    return {
        "id": ids.encode("brand", row.id),
        "organization_id": ids.encode("organization", row.organization_id),
        "name": row.name,
        "created_at": iso(row.created_at),
    }


def store(row) -> dict:
    return {
        "id": ids.encode("store", row.id),
        "brand_id": ids.encode("brand", row.brand_id),
        "name": row.name,
        "address_line1": row.address_line1,
        "address_line2": row.address_line2,
        "city": row.city,
        "postal_code": row.postal_code,
        "state": row.state,
        "country": row.country,
        "currency": row.currency,
        "timezone": row.timezone,
        "latitude": row.latitude,
        "longitude": row.longitude,
        "feed_quantity_means": row.feed_quantity_means,
        "custom_products": row.custom_products,
        "location_name": row.location_name,
        "column_mapping": json.loads(row.column_mapping) if row.column_mapping else None,
        "status": row.status,
        "status_warnings": json.loads(row.status_warnings) if row.status_warnings else [],
        "status_changed_at": iso(row.status_changed_at),
        "safety_stock": row.safety_stock,
        "upload_key_rotated_at": iso(row.upload_key_rotated_at),
        "created_at": iso(row.created_at),
        "updated_at": iso(row.updated_at),
    }


def partner(row) -> dict:
    return {
        "client_id": ids.encode("partner", row.id),
        "name": row.name,
        "redirect_uris": json.loads(row.redirect_uris),
        "scopes": scope_list(row.scopes),
        "public": row.client_secret_hash is None,
        "created_at": iso(row.created_at),
    }


def organization(row) -> dict:
    """An organization as the operator's CLI lists it, with its number of brands and stores."""
    return {"id": ids.encode("organization", row.id), "name": row.name, "brands": row.brands, "stores": row.stores, "created_at": iso(row.created_at)}


def store_with_organization(row) -> dict:
    """A store as the operator's CLI lists it: with the organization it belongs to."""
    rendered = store(row)
    return {"id": rendered["id"], "organization_id": ids.encode("organization", row.organization_id)} | rendered


def token(row) -> dict:
    """A bearer token's record, never its secret (the operator's CLI)."""
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


# --- stock -----------------------------------------------------------------------------------


def level(row) -> dict:
    """on_hand, committed, available and status (by the domain's one rule), price, currency and
    promotion amount of anything with a stock level's columns — the same in the stock API and in
    inventory.updated events."""
    stock_level = StockLevel(on_hand=row.on_hand, committed=row.committed, safety_stock=row.safety_stock, expired=row.expired)
    return {
        "on_hand": stock_level.on_hand,
        "committed": stock_level.committed,
        "safety_stock": stock_level.safety_stock,
        "available": stock_level.available,
        "status": stock_level.status.value,
        "price": to_decimal_string(row.price_minor, row.currency),
        "currency": row.currency,
        "promotion_amount": to_decimal_string(row.promotion_minor, row.currency),
    }


PRODUCT_FIELDS_WITH_STOCK = ("title", "brand", "image_url")  # the catalog's, when it has the product


def stock(row) -> dict:
    """A store's level of one product, with the catalog's title, brand and image when it has them."""
    product = {name: value for name in PRODUCT_FIELDS_WITH_STOCK if (value := getattr(row, name, None)) is not None}
    return {
        "identifier": row.identifier,
        **level(row),
        "last_reported_on": iso(row.last_reported_on),  # a day: see stock_levels.last_reported_on
        "updated_at": iso(row.updated_at),
    } | product


# What describes a product as shown: the catalog's columns but its keys, bookkeeping, search keys
# and the JSON lists (rendered apart).
PRODUCT_FIELDS = tuple(
    c.name
    for c in catalog_products.columns
    if c.name not in ("organization_id", "identifier", "upload_id", "import_id", "updated_at", "title_key", "brand_key", "categories_key")
    and c.name not in ("categories", "images", "attributes")
)


def product(record) -> dict:
    """A catalog product (`record.row`) with its price in each catalog (`record.prices`: rows of
    price_minor, locale and currency)."""
    row, prices = record.row, record.prices
    return (
        {"identifier": row.identifier}
        | {name: getattr(row, name) for name in PRODUCT_FIELDS}
        | {
            "categories": json.loads(row.categories) if row.categories else [],
            "images": json.loads(row.images) if row.images else [],
            "attributes": json.loads(row.attributes) if row.attributes else {},
            "prices": [catalog_price(price) for price in prices],
            "updated_at": iso(row.updated_at),
        }
    )


def catalog_name(locale: str, currency: str) -> str:
    """A regional catalog's name: its locale and currency, "en-GB/GBP"."""
    return f"{locale}/{currency}"


def catalog_price(row) -> dict:
    return {
        "catalog": catalog_name(row.locale, row.currency),
        "locale": row.locale,
        "currency": row.currency,
        "price": to_decimal_string(row.price_minor, row.currency),
    }


def catalog(row) -> dict:
    """A regional catalog, with how many products have a price in it (`row.products`)."""
    return {
        "catalog": catalog_name(row.locale, row.currency),
        "locale": row.locale,
        "currency": row.currency,
        "products": row.products,
        "created_at": iso(row.created_at),
    }


def catalog_import(row) -> dict:
    accepted = row.created_count + row.updated_count + row.unchanged_count
    return {
        "id": ids.encode("catalog_import", row.id),
        "status": row.status,
        "format": row.format,
        "size_bytes": row.size_bytes,
        "received_at": iso(row.received_at),
        "started_at": iso(row.started_at),
        "finished_at": iso(row.finished_at),
        "counts": {
            "total": row.total_count,
            "processed": accepted + row.rejected_count,
            "accepted": accepted,
            "rejected": row.rejected_count,
            "created": row.created_count,
            "updated": row.updated_count,
            "unchanged": row.unchanged_count,
        },
        "error": row.error,
    }


def import_rejection(row) -> dict:
    return {"index": row.item, "identifier": row.identifier, "field": row.field, "reason": row.reason}


# --- uploads ---------------------------------------------------------------------------------


def upload(row, rejections: list | None = None) -> dict:
    """An upload record; with `rejections`, its first rejected rows (row, field, value, reason)."""
    body = {
        "id": ids.encode("upload", row.id),
        "store_id": ids.encode("store", row.store_id),
        "type": row.kind,
        "source": row.source,
        "feed_id": ids.encode("feed", row.feed_id) if row.feed_id else None,  # a document pulled by this feed
        "filename": row.filename,
        "size_bytes": row.size_bytes,
        "sha256": row.sha256,
        "status": row.status,
        "received_at": iso(row.received_at),
        "started_at": iso(row.started_at),
        "finished_at": iso(row.finished_at),
        "counts": {
            "lines": row.line_count,
            "valid": row.valid_count,
            "rejected": row.rejected_count,
            "superseded": row.superseded_count,
            "skipped": row.skipped_count,
            "in_stock_valid": row.in_stock_count,
            "changed": row.changed_count,
        },
        "warnings": json.loads(row.warnings) if row.warnings else [],
        "error": row.error,
        "preset": row.preset,  # the export preset the file was recognised as (feeds.presets), "mapping", or null
    }
    if rejections is not None:
        body["rejections"] = [r._asdict() for r in rejections]
    return body


# --- orders and customers --------------------------------------------------------------------


ORDER_TIMESTAMPS = (
    "placed_at",
    "confirmed_at",
    "dispatch_planned_at",
    "dispatched_at",
    "delivery_planned_at",
    "delivered_at",
    "paid_at",
    "cancelled_at",
    "created_at",
    "updated_at",
)


def order(record) -> dict:
    """An order (`record.row`) with its lines (`record.lines`). An order booked just now carries
    what its order.created event says (`record.shown`): its answer says the same, rendered once."""
    if record.shown is not None:
        return record.shown
    row, lines = record.row, record.lines
    return {
        "id": ids.encode("order", row.id),
        "external_id": row.external_id,
        "status": row.status,
        "channel": {"type": row.channel_type, "name": row.channel_name},
        "currency": row.currency,
        "customer_id": ids.encode("customer", row.customer_id) if row.customer_id else None,
        "fulfilment": {"type": row.fulfilment_type, "store_id": ids.encode("store", row.fulfilment_store_id)},
        "payment_type": row.payment_type,
        "payment_status": row.payment_status,
        "lines": [
            {
                "identifier": line.identifier,
                "identifier_given": line.identifier_given,
                "store_id": ids.encode("store", line.store_id),
                "quantity": line.quantity,
                "unit_price": to_decimal_string(line.unit_price_minor, row.currency),
            }
            for line in lines
        ],
        "total": to_decimal_string(sum(line.quantity * line.unit_price_minor for line in lines), row.currency),
        "custom_invoice_number": row.custom_invoice_number,
        "cancellation_reason": row.cancellation_reason,
        "restocked": row.restocked,
        **{name: iso(getattr(row, name)) for name in ORDER_TIMESTAMPS},
    }


def customer(row) -> dict:
    return {
        "id": ids.encode("customer", row.id),
        "email": row.email,
        "name": row.name,
        "external_id": row.external_id,
        "created_at": iso(row.created_at),
    }


def shipping_method(row) -> dict:
    return {
        "id": ids.encode("shipping_method", row.id),
        "name": row.name,
        "price": to_decimal_string(row.price_minor, row.currency),
        "currency": row.currency,
        "min_days": row.min_days,
        "max_days": row.max_days,
        "countries": json.loads(row.countries),
        "created_at": iso(row.created_at),
    }


def location_group(record) -> dict:
    """A location group (`record.row`) with its stores' numbers (`record.stores`)."""
    row = record.row
    return {
        "id": ids.encode("location_group", row.id),
        "name": row.name,
        "store_ids": [ids.encode("store", s) for s in record.stores],
        "created_at": iso(row.created_at),
        "updated_at": iso(row.updated_at),
    }


# --- events and webhooks ---------------------------------------------------------------------


def event(row, changes: list) -> dict:
    """An event as receivers see it; an inventory batch carries its changes."""
    public_id = ids.encode("event", row.id)
    data = json.loads(row.data)
    if row.type == "inventory.updated":
        data["changes"] = [_change(public_id, change) for change in changes]
    return {
        "id": public_id,
        "type": row.type,
        "timestamp": iso(row.occurred_at),  # the Standard Webhooks payload field
        "occurred_at": iso(row.occurred_at),
        "organization_id": _public("organization", row.organization_id),
        "store_id": _public("store", row.store_id) if row.store_id is not None else None,
        "sequence": row.sequence,
        "data": data,
    }


def _change(event_id: str, change) -> dict:
    return {
        "change_id": f"{event_id}.{change.identifier}",
        "identifier": change.identifier,
        "on_hand_before": change.on_hand_before,
        **level(change),
    }


def subscription(row, secret: str | None = None) -> dict:
    """A webhook subscription; `secret` only in the answer that creates or rotates it."""
    body = {
        "id": ids.encode("webhook_subscription", row.id),
        "url": row.url,
        "event_types": json.loads(row.event_types),
        "store_ids": None if row.store_ids is None else [ids.encode("store", n) for n in json.loads(row.store_ids)],
        "description": row.description,
        "ordered": row.ordered,
        "status": row.status,
        "disabled_reason": row.disabled_reason,
        "failing_since": iso(row.failing_since),
        "previous_secret_expires_at": iso(row.previous_secret_expires_at),
        "created_at": iso(row.created_at),
        "updated_at": iso(row.updated_at),
    }
    return body if secret is None else body | {"secret": secret}


def attempt(row) -> dict:
    return {
        "attempted_at": iso(row.attempted_at),
        "status_code": row.status_code,
        "latency_ms": row.latency_ms,
        "response_excerpt": row.response_excerpt,
        "error": row.error,
    }


def delivery(record, *, last_attempt_only: bool = False) -> dict:
    """A webhook delivery (`record.row`) with its attempts (`record.attempts`), or only the latest."""
    row = record.row
    body = {
        "id": ids.encode("webhook_delivery", row.id),
        "subscription_id": ids.encode("webhook_subscription", row.subscription_id),
        "event_id": ids.encode("event", row.event_id),
        "event_type": row.event_type,
        "status": row.status,
        "attempts": row.attempts,
        "next_attempt_at": iso(row.next_attempt_at) if row.status in ("pending", "delivering") else None,
        "last_status_code": row.last_status_code,
        "last_error": row.last_error,
        "created_at": iso(row.created_at),
        "finished_at": iso(row.finished_at),
    }
    if last_attempt_only:
        body["last_attempt"] = attempt(record.attempts[-1]) if record.attempts else None
    else:
        body["attempts"] = [attempt(a) for a in record.attempts]
    return body


# --- inventory feeds ------------------------------------------------------------------------


def feed(row) -> dict:
    pull = row.kind == "pull"
    return {
        "id": ids.encode("feed", row.id),
        "store_id": ids.encode("store", row.store_id),
        "provider_id": ids.encode("dropship_provider", row.provider_id) if row.provider_id else None,
        "name": row.name,
        "kind": row.kind,
        "auto_connect": row.auto_connect,
        "sku_match": row.sku_match,
        "source_url": row.source_url,
        "has_credentials": bool(row.credentials_sealed),
        "format": row.format,
        "mapping": json.loads(row.mapping) if row.mapping else None,
        "fetch_frequency": row.fetch_frequency,
        "delta": row.delta,
        "missing_items": row.missing_items,
        "enabled": row.enabled,
        "fetch": {
            "next_at": iso(row.next_fetch_at) if pull and row.enabled and row.lease_until is None else None,
            "last_at": iso(row.last_fetch_at),
            "last_status": row.last_fetch_status,
            "last_error": row.last_error,
            "failures": row.failures,
            "last_upload_id": ids.encode("upload", row.last_upload_id) if row.last_upload_id else None,
        }
        if pull
        else None,
        "created_at": iso(row.created_at),
        "updated_at": iso(row.updated_at),
    }


def feed_item(row) -> dict:
    return {
        "id": ids.encode("feed_item", row.id),
        "feed_id": ids.encode("feed", row.feed_id),
        "external_id": row.external_id,
        "vendor_sku": row.vendor_sku,
        "barcode": row.barcode,
        "quantity": row.quantity,
        "price": to_decimal_string(row.price_minor, row.currency) if row.price_minor is not None else None,
        "currency": row.currency,
        "product": row.identifier,
        "connected_by": row.connected_by,
        "status": row.status,
        "reason": row.reason,
        "created_at": iso(row.created_at),
        "updated_at": iso(row.updated_at),
    }


def feed_batch(row) -> dict:
    result = json.loads(row.result) if row.result else None
    given = json.loads(row.items)
    counts = {"items": len(given)}
    if result is not None:
        for status in ("applied", "unmapped", "held", "refused"):
            counts[status] = sum(1 for r in result if r["status"] == status)
    return {
        "id": ids.encode("feed_batch", row.id),
        "feed_id": ids.encode("feed", row.feed_id),
        "status": row.status,
        "received_at": iso(row.received_at),
        "finished_at": iso(row.finished_at),
        "counts": counts,
        "items": result,
        "error": row.error,
    }
