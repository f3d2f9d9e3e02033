"""Catalog imports (NewStore's Import API, in stockhub's style): a JSON or NDJSON document of
products, taken in as a job, read and applied by the workers with progress and a reason for
every item refused.

- `receive` streams the document into the file storage (bounded by CATALOG_IMPORT_MAX_BYTES);
  a small one (up to CATALOG_IMPORT_SANDBOX_BYTES) is read at once, so a document that is not
  JSON, too deep or empty is refused (422) before it becomes a job.
- `create_import` makes the job (`queued`) once per `Idempotency-Key` and wakes the workers.
- `process_import` (a worker, under its lease): reads the document — in the sandbox when it is
  large — checks every item (`check_item`), keeps the rejected ones with their reasons, then
  applies the accepted ones in parts of `apply_part_rows`, each part one short transaction that
  also advances the job's counts and emits product.updated for what it changed. A retry after a
  crash resumes after the last part applied. A bad item never stops the others.

An item describes a product whole for what imports describe (SKU, title, brand, description,
categories, images, attributes, prices): what it leaves out is emptied, and a product it does
not change is neither written nor told. What products.csv alone describes (link, condition,
colour, size, ...) is kept.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

import anyio
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator
from sqlalchemy import Connection, select

from stockhub import ids, representations
from stockhub.db.engine import insert_new, new_work, reading, transaction, upsert
from stockhub.db.tables import catalog_import_rejections, catalog_imports, catalog_prices, catalog_products, catalogs, stores
from stockhub.domain import places
from stockhub.domain.money import to_minor
from stockhub.errors import FieldError, Invalid, TooLarge, not_found
from stockhub.feeds.catalog_document import CatalogDocument, read_catalog_document
from stockhub.feeds.decode import Limits
from stockhub.feeds.identifiers import InvalidIdentifier, IdentifierRule, rule_for
from stockhub.feeds.sandbox import Sandbox, read_isolated
from stockhub.services import idempotency
from stockhub.services.catalog import IMPORT_DESCRIBED, catalog_name, category_path, emit_product_changes, search_keys
from stockhub.services.context import Hub
from stockhub.services.fields import Amount, Currency
from stockhub.services.paging import Page, page_of

FORMATS = {"application/json": "json", "application/x-ndjson": "ndjson"}
STATUSES = ("queued", "processing", "succeeded", "failed")
IDEMPOTENCY_SCOPE = "catalog_import"
MAX_LENGTH = {"title": 500, "brand": 200, "description": 20_000, "sku": 64, "barcode": 64}
_IDENTIFIER_LENGTH = catalog_products.c.identifier.type.length
MAX_CATEGORIES, MAX_IMAGES, MAX_ATTRIBUTES, MAX_PRICES = 20, 20, 100, 50


# --- what an item must hold -------------------------------------------------------------------


def _text(field: str, required: bool = False):
    kind = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_LENGTH[field])]
    return kind if required else kind | None


def _url(value: str) -> str:
    if not value.startswith(("https://", "http://")) or len(value) > 2000 or any(c.isspace() for c in value) or "://" == value[-3:]:
        raise ValueError("must be an http:// or https:// address of at most 2000 characters, without spaces")
    return value


def _locale(value: str) -> str:
    language, _, region = value.strip().partition("-")
    if not (2 <= len(language) <= 3 and language.isascii() and language.isalpha()) or not places.is_country(region.upper()):
        raise ValueError(f"{value!r} is not a locale: a language and a country, e.g. en-GB")
    return f"{language.lower()}-{region.upper()}"


def _path(value: str) -> str:
    path = category_path(value)
    if len(path) > 750:
        raise ValueError("a category path is at most 750 characters")
    return path


Barcode, Sku, Title, Brand, Description = (_text("barcode"), _text("sku"), _text("title", True), _text("brand"), _text("description"))
CategoryPath = Annotated[str, AfterValidator(_path)]
ImageUrl = Annotated[str, AfterValidator(_url)]
Locale = Annotated[str, AfterValidator(_locale)]


class Price(BaseModel):
    """A product's price in one catalog: `{"catalog": "en-GB/GBP", "price": "6.99"}`, or the
    catalog's `locale` and `currency` given apart."""

    model_config = ConfigDict(extra="forbid")
    locale: Locale
    currency: Currency
    price: Amount

    @model_validator(mode="before")
    @classmethod
    def _split_catalog(cls, value):
        if isinstance(value, dict) and "catalog" in value:
            catalog = value["catalog"]
            if not isinstance(catalog, str) or catalog.count("/") != 1:
                raise ValueError("catalog must be a locale and a currency, e.g. en-GB/GBP")
            locale, currency = catalog.split("/")
            return {k: v for k, v in value.items() if k != "catalog"} | {"locale": locale, "currency": currency}
        return value


Scalar = Annotated[str, StringConstraints(max_length=1000)] | int | float | bool
AttributeKey = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


class ImportProduct(BaseModel):
    """One product of a catalog import (the README shows one)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    barcode: Barcode = None  # a GTIN or ISBN (any spelling); `gtin` is the same
    sku: Sku = None
    title: Title
    brand: Brand = None
    description: Description = None
    categories: list[CategoryPath] = Field(default_factory=list, max_length=MAX_CATEGORIES)
    images: list[ImageUrl] = Field(default_factory=list, max_length=MAX_IMAGES)
    attributes: dict[AttributeKey, Scalar] = Field(default_factory=dict, max_length=MAX_ATTRIBUTES)
    prices: list[Price] = Field(default_factory=list, max_length=MAX_PRICES)

    @model_validator(mode="before")
    @classmethod
    def _gtin_is_barcode(cls, value):
        if isinstance(value, dict) and "gtin" in value and "barcode" not in value:
            return {("barcode" if k == "gtin" else k): v for k, v in value.items()}
        return value


@dataclass(frozen=True)
class Checked:
    record: dict | None  # the product as stored (None: rejected)
    identifier: str | None  # as canonical as it could be made, else as given
    errors: list[tuple[str, str]]  # (field, reason)


def check_item(item, rule: IdentifierRule) -> Checked:
    """One item of a document: the product it describes, or every reason it is refused."""
    if not isinstance(item, dict):
        return Checked(None, None, [("item", "an item must be a JSON object describing one product")])
    given = item.get("barcode", item.get("gtin", item.get("sku")))
    given = given[:64] if isinstance(given, str) and _storable(given) else None
    unclean = _unclean(item)
    if unclean:
        return Checked(None, given, [(field, "must not contain NUL characters and must be valid UTF-8") for field in unclean])
    errors: list[tuple[str, str]] = []
    try:
        product = ImportProduct.model_validate(item)
    except ValidationError as error:
        product = None
        errors += [(".".join(str(part) for part in e["loc"]), _message(e)) for e in error.errors()]
    identifier, sku = None, None
    raw = {"barcode": item.get("barcode", item.get("gtin")), "sku": item.get("sku")}
    for field, value in raw.items():
        if not isinstance(value, str):
            continue  # missing, or refused above as not text
        try:
            canonical = rule.one(value)
        except InvalidIdentifier as error:
            errors.append((field, str(error)))
            continue
        if len(canonical) > _IDENTIFIER_LENGTH:  # what the catalog stores (the rule may allow longer SKUs)
            errors.append((field, f"the catalog keeps identifiers of at most {_IDENTIFIER_LENGTH} characters"))
            continue
        if field == "sku":
            sku = canonical
        identifier = identifier or canonical
    if raw["barcode"] is None and raw["sku"] is None:
        errors.append(("barcode", "a product needs a barcode (GTIN or ISBN) or a sku"))
    prices: dict[tuple[str, str], int] = {}
    for n, price in enumerate(product.prices if product is not None else []):
        key = (price.locale, price.currency)
        try:
            minor = to_minor(price.price, price.currency)
        except ValueError as error:
            errors.append((f"prices.{n}.price", str(error)))
            continue
        if minor < 1:
            errors.append((f"prices.{n}.price", "must be more than 0"))
        elif key in prices:
            errors.append((f"prices.{n}", f"a second price in catalog {catalog_name(*key)}"))
        else:
            prices[key] = minor
    if errors or product is None:
        return Checked(None, identifier or given, errors)
    record = {
        "identifier": identifier,
        "sku": sku if sku != identifier else None,
        "title": product.title,
        "brand": product.brand,
        "description": product.description,
        "image_url": product.images[0] if product.images else None,
        "category": product.categories[0] if product.categories else None,
        "categories": json.dumps(product.categories, ensure_ascii=False),
        "images": json.dumps(product.images, ensure_ascii=False),
        "attributes": json.dumps(product.attributes, ensure_ascii=False, sort_keys=True),
        **search_keys(product.title, product.brand, product.categories),
        "prices": prices,
    }
    return Checked(record, identifier, [])


def _message(error: dict) -> str:
    message = error["msg"]
    return message.removeprefix("Value error, ")


def _storable(text: str) -> bool:
    if "\x00" in text:
        return False
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _unclean(value, path: str = "") -> list[str]:
    """Where a JSON value holds text no database stores alike (NUL, a lone surrogate)."""
    if isinstance(value, str):
        return [] if _storable(value) else [path or "item"]
    pairs = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else []
    found = []
    for key, item in pairs:
        name = f"{path}.{key}" if path else str(key)
        found += [name] if isinstance(key, str) and not _storable(key) else _unclean(item, name)
    return found


def check_items(document: CatalogDocument, rule: IdentifierRule) -> tuple[list[dict], list[dict]]:
    """Every item of a read document: the accepted products in identifier order (the last item
    of an identifier wins; an earlier one is rejected as superseded), and the rejections."""
    rejections = [
        {"item": r["row"], "identifier": None, "field": r["field"], "reason": r["reason"]} for r in document.rejections.to_dicts()
    ]
    accepted: dict[str, tuple[int, dict]] = {}
    for index, text in document.rows.iter_rows():
        checked = check_item(json.loads(text), rule)
        if checked.record is None:
            rejections += [{"item": index, "identifier": checked.identifier, "field": f, "reason": r} for f, r in checked.errors]
            continue
        earlier = accepted.get(checked.identifier)
        if earlier is not None:
            rejections.append({"item": earlier[0], "identifier": checked.identifier, "field": "barcode", "reason": f"superseded by item {index}"})
        accepted[checked.identifier] = (index, checked.record)
    rejections.sort(key=lambda r: r["item"])
    return [accepted[key][1] for key in sorted(accepted)], rejections


# --- taking a document in ---------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    key: str
    size: int
    sha256: str
    format: str


def format_of(content_type: str | None) -> str | None:
    """json or ndjson by the body's media type; None for any other."""
    return FORMATS.get((content_type or "").split(";")[0].strip().lower())


def too_large(hub: Hub) -> TooLarge:
    return TooLarge(f"the document is larger than the limit of {hub.settings.catalog_import_max_bytes} bytes")


async def receive(hub: Hub, organization: int, fmt: str, chunks: AsyncIterator[bytes]) -> Received:
    """Stream the document into the file storage, refused past the size limit; durable once this returns."""
    key = f"catalog-imports/{organization}/{time.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(12)}.{fmt}"
    digest, limit = hashlib.sha256(), hub.settings.catalog_import_max_bytes
    with hub.storage.writer(key) as out:
        async for chunk in chunks:
            if out.size + len(chunk) > limit:
                raise too_large(hub)
            digest.update(chunk)
            out.write(chunk)
        await anyio.to_thread.run_sync(out.commit)
    return Received(key, out.size, digest.hexdigest(), fmt)


def _limits(hub: Hub) -> Limits:
    return Limits(max_rows=hub.settings.catalog_import_max_items)


def create_import(hub: Hub, organization: int, key: str | None, received: Received) -> dict:
    """The import job for a received document, made once per Idempotency-Key (the same key and
    document again: the same job; another document: 409). A small document that cannot be read
    as a whole is refused here (422) and kept nowhere."""
    try:
        idempotency.check_key(key)
        if received.size == 0:
            raise Invalid("the body is empty: send the products", [FieldError("body", "empty")])
        if received.size <= hub.settings.catalog_import_sandbox_bytes:
            read = read_catalog_document(hub.storage.read_bytes(received.key), ndjson=received.format == "ndjson", limits=_limits(hub))
            if read.invalid_reason:
                raise Invalid(read.invalid_reason, [FieldError("body", read.invalid_reason)])
    except Exception:
        hub.storage.delete(received.key)
        raise
    made: list[int] = []

    def act(conn: Connection) -> dict:
        number = conn.execute(
            catalog_imports.insert().values(
                organization_id=organization, format=received.format, path=received.key, size_bytes=received.size,
                sha256=received.sha256, status="queued", received_at=datetime.now(UTC), attempts=0,
                rejected_count=0, created_count=0, updated_count=0, unchanged_count=0,
            )
        ).inserted_primary_key[0]  # fmt: skip
        new_work(conn)
        made.append(number)
        # the answer kept for the key: the job as it was made (poll it for what happened since)
        return representations.catalog_import(conn.execute(select(catalog_imports).where(catalog_imports.c.id == number)).one())

    request = {"format": received.format, "sha256": received.sha256, "size": received.size}
    try:
        return idempotency.once(hub.engine, organization, IDEMPOTENCY_SCOPE, key, request, act)
    finally:
        if not made:  # answered before (or refused): this copy of the document is not needed
            hub.storage.delete(received.key)


# --- reading jobs -----------------------------------------------------------------------------


def _job(conn: Connection, organization: int, import_id: str):
    number = ids.decode("catalog_import", import_id)
    row = None
    if number is not None:
        row = conn.execute(
            select(catalog_imports).where(catalog_imports.c.id == number, catalog_imports.c.organization_id == organization)
        ).first()
    if row is None:
        raise not_found(f"catalog import {import_id}")
    return row


def get_import(hub: Hub, organization: int, import_id: str):
    """The import job's row (representations.catalog_import renders it)."""
    with reading(hub.engine) as conn:
        return _job(conn, organization, import_id)


def list_rejections(hub: Hub, organization: int, import_id: str, limit: int, token: str | None) -> Page:
    """The import's rejected items, in item order, each field refused with its reason (rows;
    representations.import_rejection renders them)."""
    with reading(hub.engine) as conn:
        job = _job(conn, organization, import_id)
        r = catalog_import_rejections.c
        query = select(r.id, r.item, r.identifier, r.field, r.reason).where(r.import_id == job.id)
        return page_of(conn, query, r.id, limit, token)


# --- processing (a worker, under its lease) ---------------------------------------------------


class ClaimLost(Exception):
    """Another worker owns the import now: this one's work is discarded."""


def process_import(hub: Hub, import_id: int, worker_id: str) -> str:
    """Read, check and apply a claimed import; returns its final status. ReaderFailed (the
    sandbox's reader died) and ClaimLost escape to the worker."""
    with reading(hub.engine) as conn:
        job = conn.execute(select(catalog_imports).where(catalog_imports.c.id == import_id)).one()
        custom = conn.execute(
            select(stores.c.id).where(stores.c.organization_id == job.organization_id, stores.c.custom_products.is_(True)).limit(1)
        ).first() is not None  # fmt: skip
    if job.attempts > hub.settings.upload_max_attempts:  # earlier attempts died with their process
        reason = f"the import could not be processed: {job.attempts - 1} attempts to process it were interrupted"
        _finish(hub, job.id, worker_id, "failed", reason)
        return "failed"
    document = _read(hub, job)
    if document.invalid_reason:
        _finish(hub, job.id, worker_id, "failed", document.invalid_reason)
        return "failed"
    # An organization with custom product data in any store names products as those stores do.
    records, rejections = check_items(document, rule_for(custom))
    with transaction(hub.engine) as conn:
        current = _ours(conn, job.id, worker_id)
        if current.total_count is None:  # the first attempt to get this far
            if rejections:
                conn.execute(catalog_import_rejections.insert(), [r | {"import_id": job.id} for r in rejections])
            conn.execute(
                catalog_imports.update()
                .where(catalog_imports.c.id == job.id)
                .values(total_count=document.line_count, rejected_count=len({r["item"] for r in rejections}))
            )
    size = hub.settings.apply_part_rows
    while True:
        with transaction(hub.engine) as conn:
            current = _ours(conn, job.id, worker_id)
            done = current.created_count + current.updated_count + current.unchanged_count
            part = records[done : done + size]
            if not part:
                break
            counts = _apply_part(conn, job.organization_id, job.id, part, datetime.now(UTC))
            conn.execute(
                catalog_imports.update()
                .where(catalog_imports.c.id == job.id)
                .values(
                    created_count=catalog_imports.c.created_count + counts["created"],
                    updated_count=catalog_imports.c.updated_count + counts["updated"],
                    unchanged_count=catalog_imports.c.unchanged_count + counts["unchanged"],
                )
            )
    _finish(hub, job.id, worker_id, "succeeded", None)
    return "succeeded"


def _read(hub: Hub, job) -> CatalogDocument:
    data = hub.storage.read_bytes(job.path)
    options = {"ndjson": job.format == "ndjson"}
    settings = hub.settings
    if len(data) <= settings.catalog_import_sandbox_bytes:
        return read_catalog_document(data, limits=_limits(hub), **options)
    sandbox = Sandbox(settings.parse_max_memory_mb, settings.parse_timeout_seconds, _limits(hub))
    return read_isolated("catalog", data, options, sandbox)


def _ours(conn: Connection, import_id: int, worker_id: str):
    c = catalog_imports.c
    row = conn.execute(
        select(catalog_imports).where(c.id == import_id, c.status == "processing", c.worker_id == worker_id).with_for_update()
    ).first()
    if row is None:
        raise ClaimLost(import_id)
    return row


def _finish(hub: Hub, import_id: int, worker_id: str, status: str, error: str | None) -> None:
    with transaction(hub.engine) as conn:
        _ours(conn, import_id, worker_id)
        conn.execute(
            catalog_imports.update()
            .where(catalog_imports.c.id == import_id)
            .values(status=status, error=error, finished_at=datetime.now(UTC), lease_until=None)
        )


def _apply_part(conn: Connection, organization: int, import_id: int, part: list[dict], now: datetime) -> dict:
    """Write the products of `part` (in identifier order) that differ from the catalog, with their
    prices, and tell subscribers; counts of created, updated and unchanged."""
    p = catalog_products.c
    wanted = [record["identifier"] for record in part]
    before = {
        row.identifier: row
        for row in conn.execute(select(catalog_products).where(p.organization_id == organization, p.identifier.in_(wanted)))
    }
    prices_before: dict[str, dict] = {}
    for row in conn.execute(
        select(catalog_prices.c.identifier, catalog_prices.c.price_minor, catalogs.c.locale, catalogs.c.currency)
        .join(catalogs, catalogs.c.id == catalog_prices.c.catalog_id)
        .where(catalogs.c.organization_id == organization, catalog_prices.c.identifier.in_(wanted))
    ):
        prices_before.setdefault(row.identifier, {})[(row.locale, row.currency)] = row.price_minor
    created, updated = [], []
    for record in part:
        old = before.get(record["identifier"])
        if old is None:
            created.append(record)
        elif tuple(getattr(old, n) for n in IMPORT_DESCRIBED) != tuple(record[n] for n in IMPORT_DESCRIBED) or prices_before.get(
            record["identifier"], {}
        ) != record["prices"]:
            updated.append(record)
    changed = created + updated
    if changed:
        rows = [
            {n: record[n] for n in ("identifier", *IMPORT_DESCRIBED)} | {"organization_id": organization, "import_id": import_id, "updated_at": now}
            for record in sorted(changed, key=lambda r: r["identifier"])
        ]
        statement = upsert(conn, catalog_products)
        conn.execute(
            statement.on_conflict_do_update(
                index_elements=["organization_id", "identifier"],
                set_={n: statement.excluded[n] for n in (*IMPORT_DESCRIBED, "import_id", "updated_at")},
            ),
            rows,
        )
        _write_prices(conn, organization, changed, now)
        emit_product_changes(conn, organization, None, {"import_id": ids.encode("catalog_import", import_id)}, [r["identifier"] for r in changed], now)
    return {"created": len(created), "updated": len(updated), "unchanged": len(part) - len(changed)}


def _write_prices(conn: Connection, organization: int, changed: list[dict], now: datetime) -> None:
    """The changed products' prices become exactly the imported ones; catalogs are made as first priced."""
    wanted = sorted({key for record in changed for key in record["prices"]})
    if wanted:
        conn.execute(
            insert_new(conn, catalogs, ["organization_id", "locale", "currency"]),
            [{"organization_id": organization, "locale": locale, "currency": currency, "created_at": now} for locale, currency in wanted],
        )
    number = {
        (row.locale, row.currency): row.id
        for row in conn.execute(select(catalogs.c.id, catalogs.c.locale, catalogs.c.currency).where(catalogs.c.organization_id == organization))
    }
    org_catalogs = list(number.values())
    identifiers = [record["identifier"] for record in changed]
    if org_catalogs:
        conn.execute(catalog_prices.delete().where(catalog_prices.c.catalog_id.in_(org_catalogs), catalog_prices.c.identifier.in_(identifiers)))
    rows = [
        {"catalog_id": number[key], "identifier": record["identifier"], "price_minor": minor, "updated_at": now}
        for record in changed
        for key, minor in sorted(record["prices"].items())
    ]
    if rows:
        conn.execute(catalog_prices.insert(), rows)

