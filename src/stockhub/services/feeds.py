"""Inventory feeds: pushed items kept by the sender's externalId, connected to products, and pull
feeds fetched on a schedule (jobs/feeds.py). Stockhub's `/v1/feeds` and Jetti's `/api/...`
dialect (api/jetti.py) are two faces of these use cases.

- A feed belongs to one store. `push`: an external system upserts items one at a time
  (synchronously) or in batches of up to 50 (received at once, applied by the workers).
  `pull`: the workers fetch its source on schedule; each document becomes an upload.
- An item connects to a product (a canonical identifier, feeds/identifiers.py) per the feed's
  `auto_connect`: `by_barcode` — a valid GTIN/ISBN barcode names the product itself, in any
  spelling; `by_sku` — a product the organization already has (stock at any of its stores, or
  its catalog) whose identifier is the item's `vendor_sku`, exactly or ignoring case
  (`sku_match`); `off` — by hand only. An item that connects nowhere is `unmapped` and holds
  its quantity until it is mapped (`map_item`), which applies it at once.
- A connected item's quantity is the store's report of that product: it goes through
  `stock_moves.write` (ledger, inventory.updated, webhooks), with the store's feed rules
  (`feed_quantity_means`, never below what orders hold), and marks the product reported today.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Literal
from urllib.parse import unquote, urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection, delete, func, insert, select, union, update
from sqlalchemy.exc import IntegrityError

from stockhub import feeds as identifiers
from stockhub import ids
from stockhub.db.engine import new_work, reading, transaction
from stockhub.feeds import documents
from stockhub.db.locks import lock_feed_item
from stockhub.db.tables import catalog_products, dropship_providers, feed_batches, feed_items, stock_levels, stores
from stockhub.db.tables import feeds as feeds_table
from stockhub.domain import places, stock
from stockhub.domain.access import Scope
from stockhub.domain.money import to_decimal_string, to_minor
from stockhub.domain.stock import MovementReason
from stockhub.errors import FieldError, Invalid, ServiceError, conflict, invalid, not_found
from stockhub.services import item_limits, stock_moves, vault
from stockhub.services.context import Hub
from stockhub.services.fields import Amount, Bool, Int, Quantity
from stockhub.services.paging import Page, page_of
from stockhub.services.scope import as_scope, store_number, visible
from stockhub.timefmt import iso

BATCH_MAX_ITEMS = 50
SCHEMES = ("http", "https", "ftp", "ftps")
FORMATS = ("csv", "xlsx", "xml", "json")


# --- what clients send -----------------------------------------------------------------------


class Mapping(BaseModel):
    """Where a pulled XML or JSON document keeps its items: `items` is an XPath (XML) or a
    JMESPath expression (JSON) selecting each item; `fields` maps stock file columns (barcode or
    sku, quantity and price; currency, promotion_amount, safety_stock optional; or their
    aliases) to an expression relative to the item;
    `namespaces` (XML) maps prefixes to namespace URIs."""

    model_config = ConfigDict(extra="forbid")
    items: str = Field(min_length=1, max_length=1000)
    fields: dict[str, str] = Field(min_length=1, max_length=20)
    namespaces: dict[str, str] | None = Field(None, max_length=20)


AutoConnect = Literal["by_sku", "by_barcode", "off"]
SkuMatch = Literal["exact", "case_insensitive"]
MissingItems = Literal["expire", "out_of_stock"]


class FeedIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    name: str = Field(min_length=1, max_length=200)
    kind: Literal["push", "pull"]
    auto_connect: AutoConnect = "by_sku"
    sku_match: SkuMatch = "exact"
    source_url: str | None = Field(None, max_length=2000, description="pull: http, https, ftp or ftps; credentials may be in it (RFC 1738)")
    username: str | None = Field(None, max_length=200, description="pull: stored encrypted, never returned")
    password: str | None = Field(None, max_length=200, description="pull: stored encrypted, never returned")
    format: Literal["csv", "xlsx", "xml", "json"] | None = None
    mapping: Mapping | None = Field(None, description="pull, xml and json only")
    fetch_frequency: Int = Field(15, ge=1, le=10080, description="pull: minutes between fetches")
    delta: Bool = Field(False, description="pull: a document holds only changed items (else it is a full snapshot)")
    missing_items: MissingItems = Field("expire", description="full snapshots: items missing go out of stock at once, or expire as usual")
    enabled: Bool = True


class FeedPatch(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    name: str | None = Field(None, min_length=1, max_length=200)
    auto_connect: AutoConnect | None = None
    sku_match: SkuMatch | None = None
    source_url: str | None = Field(None, max_length=2000)
    username: str | None = Field(None, max_length=200)
    password: str | None = Field(None, max_length=200)
    format: Literal["csv", "xlsx", "xml", "json"] | None = None
    mapping: Mapping | None = None
    fetch_frequency: Int | None = Field(None, ge=1, le=10080)
    delta: Bool | None = None
    missing_items: MissingItems | None = None
    enabled: Bool | None = None


class ItemFields(BaseModel):
    """One pushed item without its external id (stockhub's PUT names it in the path)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    vendor_sku: str | None = Field(None, max_length=255)
    barcode: str | None = Field(None, max_length=64)
    quantity: Quantity
    price: Amount | None = Field(None, gt=0)
    currency: str | None = Field(None, min_length=3, max_length=3)


class ItemIn(ItemFields):
    external_id: str = Field(min_length=1, max_length=255)


class ProductChoice(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    identifier: str = Field(min_length=1, max_length=64, description="the product: a barcode in any spelling, or a SKU")


# --- feeds -----------------------------------------------------------------------------------


def create_feed(hub: Hub, scope: Scope | int, store_id: str, body: FeedIn, provider: int | None = None):
    now = datetime.now(UTC)
    config = _config(hub, body.model_dump(), body.model_fields_set)
    with transaction(hub.engine) as conn:
        store = store_number(conn, scope, store_id)
        feed_id = conn.execute(
            insert(feeds_table).values(
                organization_id=as_scope(scope).organization,
                store_id=store,
                provider_id=provider,
                **config,
                failures=0,
                next_fetch_at=now if config["kind"] == "pull" and config["enabled"] else None,
                created_at=now,
                updated_at=now,
            )
        ).inserted_primary_key[0]
        if config["kind"] == "pull":
            new_work(conn)
        return (_feed(conn, scope, ids.encode("feed", feed_id)))


def list_feeds(hub: Hub, scope: Scope | int, store_id: str, limit: int, token: str | None) -> Page:
    scope = as_scope(scope)
    with reading(hub.engine) as conn:
        store = store_number(conn, scope, store_id)
        query = select(feeds_table).where(*visible(scope, feeds_table.c.organization_id, feeds_table.c.store_id), feeds_table.c.store_id == store)
        return page_of(conn, query, feeds_table.c.id, limit, token)  # rows: faces render them (representations.feed)


def get_feed(hub: Hub, scope: Scope | int, feed_id: str):
    with reading(hub.engine) as conn:
        return (_feed(conn, scope, feed_id))


def update_feed(hub: Hub, scope: Scope | int, feed_id: str, body: FeedPatch):
    now = datetime.now(UTC)
    with transaction(hub.engine) as conn:
        row = _feed(conn, scope, feed_id)
        merged = _as_given(hub, row) | {name: getattr(body, name) for name in body.model_fields_set}
        if {"source_url"} & body.model_fields_set and not {"username", "password"} & body.model_fields_set:
            if _userinfo(body.source_url):  # new credentials in the URL replace the stored ones
                merged["username"] = merged["password"] = None
        config = _config(hub, merged | {"kind": row.kind}, set(merged))
        refetch = row.kind == "pull" and config["enabled"] and (
            not row.enabled or {"source_url", "username", "password", "format", "mapping"} & body.model_fields_set
        )
        values = config | {"updated_at": now}
        if refetch:
            values |= {"next_fetch_at": now, "etag": None, "last_modified": None, "failures": 0}
            new_work(conn)
        elif row.kind == "pull" and not config["enabled"]:
            values |= {"next_fetch_at": None}
        conn.execute(update(feeds_table).where(feeds_table.c.id == row.id).values(**values))
        return (_feed(conn, scope, feed_id))


def fetch_now(hub: Hub, scope: Scope | int, feed_id: str):
    """A pull feed fetched as soon as a worker is free (conditionally: an unchanged document is not applied again)."""
    now = datetime.now(UTC)
    with transaction(hub.engine) as conn:
        row = _feed(conn, scope, feed_id)
        if row.kind != "pull":
            raise conflict(f"feed {feed_id} is a push feed: there is nothing to fetch")
        if not row.enabled:
            raise conflict(f"feed {feed_id} is disabled: enable it to fetch")
        conn.execute(update(feeds_table).where(feeds_table.c.id == row.id).values(next_fetch_at=now))
        new_work(conn)
        return (_feed(conn, scope, feed_id))


def delete_feed(hub: Hub, scope: Scope | int, feed_id: str) -> None:
    """The feed, its items and batches go; the stock they reported stays (and expires as usual)."""
    with transaction(hub.engine) as conn:
        row = _feed(conn, scope, feed_id)
        conn.execute(delete(feed_items).where(feed_items.c.feed_id == row.id))
        conn.execute(delete(feed_batches).where(feed_batches.c.feed_id == row.id))
        conn.execute(delete(feeds_table).where(feeds_table.c.id == row.id))


def _feed(conn: Connection, scope: Scope | int, feed_id: str):
    scope = as_scope(scope)
    number = ids.decode("feed", feed_id)
    row = None
    if number is not None:
        row = conn.execute(
            select(feeds_table).where(feeds_table.c.id == number, *visible(scope, feeds_table.c.organization_id, feeds_table.c.store_id))
        ).first()
    if row is None:
        raise not_found(f"feed {feed_id}")
    return row


def _as_given(hub: Hub, row) -> dict:
    """A stored feed as the fields a client would send (credentials unsealed)."""
    credentials = credentials_of(hub, row)
    return {
        "name": row.name,
        "auto_connect": row.auto_connect,
        "sku_match": row.sku_match,
        "source_url": row.source_url,
        "username": credentials[0],
        "password": credentials[1],
        "format": row.format,
        "mapping": Mapping.model_validate(json.loads(row.mapping)) if row.mapping else None,
        "fetch_frequency": row.fetch_frequency,
        "delta": row.delta,
        "missing_items": row.missing_items,
        "enabled": row.enabled,
    }


def credentials_of(hub: Hub, row) -> tuple[str | None, str | None]:
    if not row.credentials_sealed:
        return None, None
    opened = vault.unseal(hub.secret, row.credentials_sealed, vault.FEED_CREDENTIALS)
    if opened is None:  # sealed under another server secret: as good as none
        return None, None
    found = json.loads(opened)
    return found.get("username"), found.get("password")


def _userinfo(url: str | None) -> bool:
    try:
        return bool(url) and "@" in (urlsplit(url).netloc or "")
    except ValueError:
        return False


def _config(hub: Hub, given: dict, named: set[str]) -> dict:
    """The columns of a feed from what a client gave, every rule checked at once."""
    errors: list[FieldError] = []
    kind = given["kind"]
    mapping = given.get("mapping")
    if isinstance(mapping, dict):
        mapping = Mapping.model_validate(mapping)
    url, username, password = given.get("source_url"), given.get("username"), given.get("password")
    source = None
    if kind == "push":
        errors += [
            FieldError(name, "a push feed has no source: its items are sent to it")
            for name in ("source_url", "username", "password", "format", "mapping")
            if given.get(name) is not None
        ]
    else:
        if not url:
            errors.append(FieldError("source_url", "a pull feed needs the URL to fetch"))
        else:
            source, in_url, problem = _split_url(url)
            if problem:
                errors.append(FieldError("source_url", problem))
            elif in_url[0] is not None:
                if username is not None or password is not None:
                    errors.append(FieldError("source_url", "credentials are given both in the URL and as username/password: give one"))
                username, password = in_url
        if password is not None and username is None:
            errors.append(FieldError("username", "a password needs a username"))
        fmt = given.get("format")
        if fmt is None:
            errors.append(FieldError("format", f"a pull feed needs its format: one of {', '.join(FORMATS)}"))
        elif fmt in ("xml", "json") and mapping is None:
            errors.append(FieldError("mapping", f"a {fmt} feed needs a mapping: an items expression and field expressions"))
        elif fmt in ("csv", "xlsx") and mapping is not None:
            errors.append(FieldError("mapping", f"a {fmt} file is read like an uploaded stock file (its header names the columns): no mapping"))
        elif mapping is not None:
            errors += _mapping_errors(fmt, mapping)
    if errors:
        raise invalid("the feed has invalid fields", errors)
    sealed = None
    if username is not None:
        sealed = vault.seal(hub.secret, json.dumps({"username": username, "password": password}), vault.FEED_CREDENTIALS)
    return {
        "name": given["name"],
        "kind": kind,
        "auto_connect": given.get("auto_connect") or "by_sku",
        "sku_match": given.get("sku_match") or "exact",
        "source_url": source,
        "credentials_sealed": sealed,
        "format": given.get("format"),
        "mapping": json.dumps(mapping.model_dump(exclude_none=True)) if mapping is not None else None,
        "fetch_frequency": given.get("fetch_frequency") or 15,
        "delta": bool(given.get("delta")),
        "missing_items": given.get("missing_items") or "expire",
        "enabled": given.get("enabled") if given.get("enabled") is not None else True,
    }


def _split_url(url: str) -> tuple[str | None, tuple[str | None, str | None], str | None]:
    """(the URL without credentials, (username, password) from it, or what is wrong with it)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        return None, (None, None), f"not a URL: {error}"
    if parts.scheme.lower() not in SCHEMES:
        return None, (None, None), f"the scheme must be one of {', '.join(SCHEMES)}"
    if not parts.hostname:
        return None, (None, None), "the URL names no host"
    if any(char in url for char in " \t\r\n"):
        return None, (None, None), "the URL holds white space"
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    netloc = host + (f":{port}" if port is not None else "")
    username = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password) if parts.password is not None else None
    return urlunsplit((parts.scheme.lower(), netloc, parts.path, parts.query, "")), (username, password), None


def _mapping_errors(fmt: str, mapping: Mapping) -> list[FieldError]:
    """What the document mapper (feeds/documents.py, the one rule) says is wrong with the mapping."""
    try:
        documents.validate_mapping(fmt, as_document_mapping(fmt, mapping.model_dump(exclude_none=True)))
    except Invalid as refused:
        return refused.errors or [FieldError("mapping", refused.detail)]
    return []


def as_document_mapping(fmt: str, given: dict) -> documents.Mapping:
    """A stored mapping as the document mapper takes it."""
    if fmt == "xml":
        return documents.XmlMapping(items=given["items"], fields=given["fields"], namespaces=given.get("namespaces") or {})
    return documents.JsonMapping(items=given["items"], fields=given["fields"])


# --- pushed items ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    """A pushed item as the use cases take it, from either face."""

    external_id: str
    quantity: int
    vendor_sku: str | None = None
    barcode: str | None = None
    price: Decimal | None = None
    currency: str | None = None


def item_of(external_id: str, fields: ItemFields) -> Item:
    return Item(external_id, fields.quantity, fields.vendor_sku or None, fields.barcode or None, fields.price, fields.currency)


def upsert_item(hub: Hub, scope: Scope | int, feed_id: str, item: Item):
    """Create or update the feed's item with this external id, connect it, apply its quantity;
    answers the item. Counts one item update against the organization's daily limit."""
    now = datetime.now(UTC)
    try:
        with transaction(hub.engine) as conn:
            feed = _push_feed(conn, scope, feed_id)
            _check_money(conn, feed, [item])
            item_limits.count(conn, hub.settings, feed.organization_id, 1, now, refuse=True)
            number = apply_item(conn, feed, item, now)
            return (conn.execute(select(feed_items).where(feed_items.c.id == number)).one())
    except IntegrityError:  # two first sends of one item (or one product) at once: this one lost
        raise conflict("the item was created concurrently: send it again") from None


def update_item(hub: Hub, scope: Scope | int, item_id: str, changes: dict):
    """Jetti's PUT of one inventory-feed-variant by its id: the given fields over the stored ones."""
    with reading(hub.engine) as conn:
        row = _item_row(conn, scope, item_id)
        feed_id = ids.encode("feed", row.feed_id)
        currency = row.currency
        stored = Item(
            row.external_id,
            row.quantity,
            row.vendor_sku,
            row.barcode,
            Decimal(to_decimal_string(row.price_minor, currency)) if row.price_minor is not None else None,
            currency,
        )
    return upsert_item(hub, scope, feed_id, replace(stored, **changes))


def accept_batch(hub: Hub, scope: Scope | int, feed_id: str, items: list[Item]):
    """Up to 50 items, kept at once and applied by the workers in the order received (poll the batch)."""
    if not items:
        raise invalid("a batch holds at least one item", [FieldError("items", "empty")])
    if len(items) > BATCH_MAX_ITEMS:
        raise invalid(f"a batch holds at most {BATCH_MAX_ITEMS} items, not {len(items)}", [FieldError("items", f"at most {BATCH_MAX_ITEMS}")])
    seen: dict[str, int] = {}
    for n, item in enumerate(items):
        if item.external_id in seen:
            raise invalid("a batch names an item twice", [FieldError(f"{n}.externalId", f"the same as item {seen[item.external_id]}")])
        seen[item.external_id] = n
    now = datetime.now(UTC)
    with transaction(hub.engine) as conn:
        feed = _push_feed(conn, scope, feed_id)
        _check_money(conn, feed, items)
        item_limits.count(conn, hub.settings, feed.organization_id, len(items), now, refuse=True)
        body = [
            {
                "external_id": i.external_id,
                "quantity": i.quantity,
                "vendor_sku": i.vendor_sku,
                "barcode": i.barcode,
                "price": str(i.price) if i.price is not None else None,
                "currency": i.currency,
            }
            for i in items
        ]
        number = conn.execute(
            insert(feed_batches).values(
                organization_id=feed.organization_id, store_id=feed.store_id, feed_id=feed.id, status="received",
                items=json.dumps(body), attempts=0, received_at=now,
            )
        ).inserted_primary_key[0]
        new_work(conn)
        return (conn.execute(select(feed_batches).where(feed_batches.c.id == number)).one())


def get_batch(hub: Hub, scope: Scope | int, batch_id: str):
    scope = as_scope(scope)
    number = ids.decode("feed_batch", batch_id)
    with reading(hub.engine) as conn:
        row = None
        if number is not None:
            row = conn.execute(
                select(feed_batches).where(feed_batches.c.id == number, *visible(scope, feed_batches.c.organization_id, feed_batches.c.store_id))
            ).first()
        if row is None:
            raise not_found(f"batch {batch_id}")
        return (row)


def apply_batch(conn: Connection, batch, now: datetime) -> list[dict]:
    """A worker applies a received batch (jobs/feeds.py): each item in its own savepoint, so one
    item refused (its feed changed since, a race) leaves the others applied. Returns each outcome."""
    feed = conn.execute(select(feeds_table).where(feeds_table.c.id == batch.feed_id)).first()
    facts = store_facts(conn, feed.store_id) if feed is not None else None
    outcomes = []
    for given in json.loads(batch.items):
        item = Item(**(given | {"price": Decimal(given["price"]) if given["price"] is not None else None}))
        try:
            if feed is None:
                raise not_found("the feed (deleted since)")
            with conn.begin_nested():
                number = apply_item(conn, feed, item, now, facts)
            row = conn.execute(select(feed_items).where(feed_items.c.id == number)).one()
            outcomes.append({"external_id": item.external_id, "id": ids.encode("feed_item", number), "status": row.status, "reason": row.reason})
        except (ServiceError, IntegrityError) as error:
            reason = error.detail if isinstance(error, ServiceError) else "the item was changed concurrently"
            outcomes.append({"external_id": item.external_id, "id": None, "status": "refused", "reason": reason})
    return outcomes


def _push_feed(conn: Connection, scope: Scope | int, feed_id: str):
    feed = _feed(conn, scope, feed_id)
    if feed.kind != "push":
        raise conflict(f"feed {feed_id} is a pull feed: its items come from its source, not from pushes")
    if not feed.enabled:
        raise conflict(f"feed {feed_id} is disabled: enable it to send items")
    return feed


def _check_money(conn: Connection, feed, items: list[Item]) -> None:
    currency = _store_currency(conn, feed.store_id)
    errors = []
    for n, item in enumerate(items):
        code = (item.currency or currency).upper()
        if item.currency is not None and not places.is_currency(code):
            errors.append(FieldError(f"{n}.currency" if len(items) > 1 else "currency", f"{item.currency!r} is not an ISO 4217 currency code"))
        elif item.price is not None:
            try:
                to_minor(item.price, code)
            except ValueError as error:
                errors.append(FieldError(f"{n}.price" if len(items) > 1 else "price", str(error)))
    if errors:
        raise invalid("some items have invalid prices", errors)


@dataclass(frozen=True)
class StoreFacts:
    """What applying items needs of the feed's store, read once per request or batch."""

    rule: identifiers.IdentifierRule
    currency: str
    means_available: bool


def store_facts(conn: Connection, store: int) -> StoreFacts:
    row = conn.execute(select(stores.c.custom_products, stores.c.currency, stores.c.feed_quantity_means).where(stores.c.id == store)).one()
    return StoreFacts(identifiers.rule_for(row.custom_products), row.currency, row.feed_quantity_means == "available")


def _store_currency(conn: Connection, store: int) -> str:
    return conn.execute(select(stores.c.currency).where(stores.c.id == store)).scalar_one()


def apply_item(conn: Connection, feed, item: Item, now: datetime, facts: StoreFacts | None = None) -> int:
    """Upsert the item, connect it (if it is not yet, or its SKU or barcode changed), and apply its
    quantity to the connected product. Returns the item's row id."""
    existing = lock_feed_item(conn, feed.id, item.external_id)
    facts = facts or store_facts(conn, feed.store_id)
    rule = facts.rule
    currency = (item.currency or facts.currency).upper()
    price_minor = to_minor(item.price, currency) if item.price is not None else None
    if price_minor is None and existing is not None and existing.price_minor is not None:
        price_minor, currency = existing.price_minor, existing.currency
    keeps_connection = existing is not None and existing.identifier is not None and (
        existing.connected_by == "manual" or (existing.vendor_sku, existing.barcode) == (item.vendor_sku, item.barcode)
    )
    if keeps_connection:
        identifier, by, reason = existing.identifier, existing.connected_by, None
    else:
        identifier, by, reason = _auto_connect(conn, feed, rule, item)
    values = {
        "vendor_sku": item.vendor_sku,
        "barcode": item.barcode,
        "sku_folded": _folded(rule, item.vendor_sku),
        "quantity": item.quantity,
        "price_minor": price_minor,
        "currency": currency if price_minor is not None else None,
        "identifier": identifier,
        "connected_by": by,
        "status": "unmapped",
        "reason": reason,
        "updated_at": now,
    }
    if identifier is not None:
        values["status"], values["reason"] = _apply_level(conn, feed, identifier, item.quantity, price_minor, currency, now, facts.means_available)
    if existing is None:
        return conn.execute(
            insert(feed_items).values(
                feed_id=feed.id, organization_id=feed.organization_id, store_id=feed.store_id, external_id=item.external_id, created_at=now, **values
            )
        ).inserted_primary_key[0]
    conn.execute(update(feed_items).where(feed_items.c.id == existing.id).values(**values))
    return existing.id


def _apply_level(
    conn: Connection, feed, identifier: str, quantity: int, price_minor: int | None, currency: str, now: datetime, means_available: bool
) -> tuple[str, str | None]:
    """The item's quantity as the store's report of the product: (status, reason)."""
    key = (feed.store_id, identifier)
    row = stock_moves.lock(conn, [key]).get(key)
    if row is None and price_minor is None:
        return "held", "the product is new to the store: send the item's price to apply it"
    current = stock_moves.level_of(row)
    on_hand = stock.reported_on_hand(quantity, current.committed, means_available)
    after = replace(current, on_hand=on_hand, expired=False)
    price = None
    if price_minor is not None:
        promotion = row.promotion_minor if row is not None and row.currency == currency else None
        price = stock_moves.Price(price_minor, currency, promotion)
    stock_moves.write(
        conn, feed.organization_id, [stock_moves.Change(key, current, after, row, price)], MovementReason.FEED, now, reported_on=now.date()
    )
    if on_hand != quantity and not means_available:
        return "applied", f"{quantity} is below the {current.committed} units committed to orders: on_hand was kept at {on_hand}"
    return "applied", None


def _auto_connect(conn: Connection, feed, rule: identifiers.IdentifierRule, item: Item) -> tuple[str | None, str | None, str | None]:
    """(identifier, how, None) or (None, None, why it stays unmapped)."""
    if feed.auto_connect == "off":
        return None, None, "automatic connection is off for this feed: map the item to a product"
    if feed.auto_connect == "by_barcode":
        if not item.barcode:
            return None, None, "the item has no barcode to connect by"
        try:
            canonical = identifiers.canonical_identifier(item.barcode)
        except identifiers.InvalidIdentifier as error:
            return None, None, f"barcode {item.barcode!r}: {error}"
        if not (canonical.isdigit() and len(canonical) == 14):
            return None, None, f"barcode {item.barcode!r} is not a GTIN or ISBN"
        return canonical, "barcode", None
    if not item.vendor_sku:
        return None, None, "the item has no vendor SKU to connect by"
    try:
        canonical = rule.one(item.vendor_sku)
    except identifiers.InvalidIdentifier as error:
        return None, None, f"vendor SKU {item.vendor_sku!r}: {error}"
    if _known(conn, feed.organization_id, stock_levels.c.identifier == canonical, catalog_products.c.identifier == canonical):
        return canonical, "sku", None
    if feed.sku_match == "case_insensitive":
        folded = canonical.lower()
        found = _known(conn, feed.organization_id, func.lower(stock_levels.c.identifier) == folded, func.lower(catalog_products.c.identifier) == folded)
        if len(found) == 1:
            return found[0], "sku", None
        if len(found) > 1:
            return None, None, f"vendor SKU {item.vendor_sku!r} matches several products ignoring case ({', '.join(sorted(found)[:5])}): map it"
    return None, None, f"no product of the organization has the SKU {item.vendor_sku!r}: map the item to one"


def _known(conn: Connection, organization: int, level_condition, catalog_condition) -> list[str]:
    """Identifiers of products the organization has (stock at any store, or its catalog) meeting the conditions."""
    own_stores = select(stores.c.id).where(stores.c.organization_id == organization)
    query = union(
        select(stock_levels.c.identifier).where(stock_levels.c.store_id.in_(own_stores), level_condition),
        select(catalog_products.c.identifier).where(catalog_products.c.organization_id == organization, catalog_condition),
    ).limit(6)
    return [row[0] for row in conn.execute(query)]


def _folded(rule: identifiers.IdentifierRule, sku: str | None) -> str | None:
    """The SKU as an order line naming it would be read, lower-cased (how unmapped items are found)."""
    if not sku:
        return None
    try:
        return rule.one(sku).lower()[:255]
    except identifiers.InvalidIdentifier:
        return sku.strip().lower()[:255]


# --- mapping ---------------------------------------------------------------------------------


def list_items(hub: Hub, scope: Scope | int, feed_id: str | None, limit: int, token: str | None, status: str | None = None) -> Page:
    scope = as_scope(scope)
    with reading(hub.engine) as conn:
        query = select(feed_items).where(*visible(scope, feed_items.c.organization_id, feed_items.c.store_id))
        if feed_id is not None:
            query = query.where(feed_items.c.feed_id == _feed(conn, scope, feed_id).id)
        if status is not None:
            query = query.where(feed_items.c.status == status)
        return page_of(conn, query, feed_items.c.id, limit, token)  # rows: faces render them (representations.feed_item)


def get_item(hub: Hub, scope: Scope | int, feed_id: str, external_id: str):
    with reading(hub.engine) as conn:
        feed = _feed(conn, scope, feed_id)
        row = conn.execute(select(feed_items).where(feed_items.c.feed_id == feed.id, feed_items.c.external_id == external_id)).first()
        if row is None:
            raise not_found(f"item {external_id} of feed {feed_id}")
        return (row)


def map_item(hub: Hub, scope: Scope | int, feed_id: str, external_id: str, choice: ProductChoice):
    """Connect the item to a product by hand; its held quantity applies at once."""
    now = datetime.now(UTC)
    try:
        with transaction(hub.engine) as conn:
            feed = _feed(conn, scope, feed_id)
            row = lock_feed_item(conn, feed.id, external_id)
            if row is None:
                raise not_found(f"item {external_id} of feed {feed_id}")
            facts = store_facts(conn, feed.store_id)
            try:
                identifier = facts.rule.one(choice.identifier)
            except identifiers.InvalidIdentifier as error:
                raise invalid("invalid product identifier", [FieldError("identifier", str(error))]) from None
            status, reason = _apply_level(conn, feed, identifier, row.quantity, row.price_minor, row.currency or facts.currency, now, facts.means_available)
            conn.execute(
                update(feed_items)
                .where(feed_items.c.id == row.id)
                .values(identifier=identifier, connected_by="manual", status=status, reason=reason, updated_at=now)
            )
            return (conn.execute(select(feed_items).where(feed_items.c.id == row.id)).one())
    except IntegrityError:
        raise conflict("the product's stock level was created concurrently: retry") from None


def _item_row(conn: Connection, scope: Scope | int, item_id: str):
    scope = as_scope(scope)
    number = ids.decode("feed_item", item_id)
    row = None
    if number is not None:
        row = conn.execute(
            select(feed_items).where(feed_items.c.id == number, *visible(scope, feed_items.c.organization_id, feed_items.c.store_id))
        ).first()
    if row is None:
        raise not_found(f"inventory feed variant {item_id}")
    return row


def unmapped_named(conn: Connection, lines: list[tuple[int, str, str]]) -> list[dict]:
    """Unmapped feed items an order's lines name by SKU: (store, canonical identifier, as given)."""
    found = []
    for store, identifier, given in lines:
        names = {identifier.lower(), given.strip().lower()}
        row = conn.execute(
            select(feed_items.c.feed_id, feed_items.c.external_id, feed_items.c.reason)
            .where(feed_items.c.store_id == store, feed_items.c.sku_folded.in_(sorted(names)), feed_items.c.status == "unmapped")
            .order_by(feed_items.c.id)
            .limit(1)
        ).first()
        if row is not None:
            found.append(
                {
                    "identifier": given,
                    "store_id": ids.encode("store", store),
                    "feed_id": ids.encode("feed", row.feed_id),
                    "external_id": row.external_id,
                    "reason": row.reason,
                }
            )
    return found


# --- pull feeds: what a fetched document does beyond an upload ----------------------------------


def clear_missing(conn: Connection, feed_id: int, store: int, rows, now: datetime) -> int:
    """A full snapshot of a feed whose missing items go out of stock at once: every product of the
    store holding available units that the document does not report is reported as 0 (ledger,
    inventory.updated). Delta documents, and feeds whose missing items expire as usual, change
    nothing here. Called by the ingest in the transaction that applies the document, under the
    store's lock. Returns how many levels changed."""
    feed = conn.execute(select(feeds_table.c.delta, feeds_table.c.missing_items, feeds_table.c.organization_id).where(feeds_table.c.id == feed_id)).first()
    if feed is None or feed.delta or feed.missing_items != "out_of_stock":
        return 0
    reported = set(rows["identifier"].to_list())
    holding = conn.execute(
        select(stock_levels.c.identifier).where(
            stock_levels.c.store_id == store, stock_levels.c.on_hand > stock_levels.c.committed, stock_levels.c.expired.is_(False)
        )
    ).scalars()
    keys = [(store, identifier) for identifier in holding if identifier not in reported]
    if not keys:
        return 0
    locked = stock_moves.lock(conn, keys, stores_shared=True)
    means_available = conn.execute(select(stores.c.feed_quantity_means).where(stores.c.id == store)).scalar_one() == "available"
    changes = []
    for key, row in sorted(locked.items()):
        current = stock_moves.level_of(row)
        changes.append(stock_moves.Change(key, current, replace(current, on_hand=stock.reported_on_hand(0, current.committed, means_available)), row))
    stock_moves.write(conn, feed.organization_id, changes, MovementReason.FEED, now)
    return sum(1 for c in changes if c.changes_anything)


def failing_feeds_of(hub: Hub, store: int) -> list[dict]:
    with reading(hub.engine) as conn:
        return failing_feeds(conn, store)


def failing_feeds(conn: Connection, store: int) -> list[dict]:
    """The store's enabled pull feeds whose last fetch failed, with the reason (shown on the store)."""
    rows = conn.execute(
        select(feeds_table.c.id, feeds_table.c.name, feeds_table.c.last_error, feeds_table.c.last_fetch_at, feeds_table.c.failures)
        .where(feeds_table.c.store_id == store, feeds_table.c.kind == "pull", feeds_table.c.enabled.is_(True), feeds_table.c.last_fetch_status == "failed")
        .order_by(feeds_table.c.id)
    ).all()
    return [
        {"id": ids.encode("feed", r.id), "name": r.name, "error": r.last_error, "failed_at": iso(r.last_fetch_at), "failures": r.failures}
        for r in rows
    ]


# --- dropship providers (Jetti's dialect) ----------------------------------------------------


def create_provider(hub: Hub, scope: Scope | int, name: str, store_id: str | None) -> dict:
    now = datetime.now(UTC)
    with transaction(hub.engine) as conn:
        store = store_number(conn, scope, store_id) if store_id else None
        number = conn.execute(
            insert(dropship_providers).values(organization_id=as_scope(scope).organization, store_id=store, name=name, created_at=now)
        ).inserted_primary_key[0]
        return {
            "id": ids.encode("dropship_provider", number),
            "name": name,
            "store_id": ids.encode("store", store) if store else None,
            "created_at": iso(now),
        }


def store_for_new_feed(hub: Hub, scope: Scope | int, store_id: str | None, provider_id: str | None) -> tuple[str, int | None]:
    """Jetti's feeds name no store: the one given, else the provider's, else the organization's only store."""
    scope = as_scope(scope)
    with reading(hub.engine) as conn:
        provider = None
        if provider_id is not None:
            number = ids.decode("dropship_provider", provider_id)
            provider = conn.execute(
                select(dropship_providers).where(dropship_providers.c.id == number, dropship_providers.c.organization_id == scope.organization)
            ).first() if number is not None else None
            if provider is None:
                raise invalid("unknown dropship provider", [FieldError("dropshipProviderId", f"no dropship provider {provider_id}")])
        if store_id:
            return store_id, provider.id if provider else None
        if provider is not None and provider.store_id is not None:
            return ids.encode("store", provider.store_id), provider.id
        if scope.store is not None:
            return ids.encode("store", scope.store), provider.id if provider else None
        own = conn.execute(select(stores.c.id).where(stores.c.organization_id == scope.organization).limit(2)).scalars().all()
        if len(own) != 1:
            raise Invalid(
                "name the store this feed supplies: storeId (on the feed or its dropship provider)",
                [FieldError("storeId", f"the organization has {len(own)} stores")],
            )
        return ids.encode("store", own[0]), provider.id if provider else None

