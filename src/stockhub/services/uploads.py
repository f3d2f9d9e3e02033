"""Uploads: signed upload URLs, receiving a file durably, and the upload records people read."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, NamedTuple
from pathlib import Path
from urllib.parse import urlencode

import anyio
from sqlalchemy import exists, select
from sqlalchemy.exc import IntegrityError

from stockhub import ids, security
from stockhub.db.engine import new_work, reading, transaction
from stockhub.db.locks import lock_upload_intake
from stockhub.db.tables import stores, upload_rejections, uploads
from stockhub.errors import FieldError, Malformed, Refused, ServiceError, TooLarge, conflict, not_found
from stockhub.services.context import Hub
from stockhub.services.paging import Page, page_of
from stockhub.domain.access import Scope
from stockhub.services.scope import any_store_number, as_scope, store_number, visible
from stockhub.services.tenancy import store_for_upload_key

KINDS = ("stock", "products")
PRODUCTS_FILENAME = "products.csv"  # reserved (NearSt): custom product data; any other name is a stock file
_CHUNK = 1024 * 1024


# --- step 1: the signed URL ------------------------------------------------------------------


def upload_url(hub: Hub, upload_key: str, kind: str, base_url: str) -> str:
    """The absolute URL a POS PUTs one file to: bound to the store and kind, expiring, single-use."""
    if kind not in KINDS:
        raise Malformed(f"type must be one of {', '.join(KINDS)}", [FieldError("type", "unknown upload type")])
    store = store_for_upload_key(hub, upload_key)
    if store is None:
        raise not_found("an upload key like this")
    store_id = ids.encode("store", store.id)
    expires = int(time.time()) + hub.settings.upload_url_ttl_seconds
    nonce = secrets.token_urlsafe(16)
    key_id = _key_id(hub, store.upload_key_hash)
    signature = security.sign(hub.secret, _signed_message(store_id, kind, expires, nonce, key_id))
    base = (hub.settings.public_url or base_url).rstrip("/")
    query = {"expires": expires, "nonce": nonce, "key_id": key_id, "signature": signature}
    return f"{base}/incoming/{store_id}/{kind}?" + urlencode(query)


def _signed_message(store_id: str, kind: str, expires: int, nonce: str, key_id: str) -> str:
    return f"upload|{store_id}|{kind}|{expires}|{nonce}|{key_id}"


def _key_id(hub: Hub, upload_key_hash: str) -> str:
    """Which upload key a URL was issued under (revealing nothing of it): rotating the key revokes the URL."""
    return security.sign(hub.secret, f"upload-key-id|{upload_key_hash}")[:16]


@dataclass(frozen=True)
class UploadGrant:
    store: int
    organization: int
    kind: str
    nonce: str | None  # None: not through a signed URL (CLI import)
    key_id: str | None = None  # the upload key a signed URL was issued under: must still be current at commit


def check_upload_url(hub: Hub, store_id: str, kind: str, expires: int, nonce: str, key_id: str, signature: str) -> UploadGrant:
    if not security.signature_valid(hub.secret, _signed_message(store_id, kind, expires, nonce, key_id), signature):
        raise Refused("the upload URL's signature does not match: ask for a new URL")
    if expires < time.time():
        raise Refused("the upload URL has expired: ask for a new URL")
    with reading(hub.engine) as conn:
        store = conn.execute(
            select(stores.c.id, stores.c.organization_id, stores.c.upload_key_hash).where(stores.c.id == ids.decode("store", store_id))
        ).first()
        used = conn.execute(select(exists().where(uploads.c.url_nonce == nonce))).scalar()
    if store is None:
        raise not_found(f"store {store_id}")
    if not hmac.compare_digest(_key_id(hub, store.upload_key_hash), key_id):
        raise _revoked()
    if used:
        raise conflict("this upload URL has been used already: ask for a new URL for each upload")
    return UploadGrant(store.id, store.organization_id, kind, nonce, key_id)


def _revoked() -> Refused:
    return Refused("the upload URL was revoked: the store's upload key has been rotated since. Ask for a new URL with the new key")


# --- step 2: receiving the file --------------------------------------------------------------


@dataclass(frozen=True)
class ReceivedFile:
    key: str  # where it is kept (hub.storage), already durable
    size: int
    sha256: str
    is_xlsx: bool


def _new_key(store: int) -> str:
    return f"uploads/{store}/{time.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(12)}"


class _Receiving:
    """A file streaming into storage: hashed, measured against the size cap, kept only on commit."""

    def __init__(self, hub: Hub, store: int):
        self.hub, self.key = hub, _new_key(store)
        self.out = hub.storage.writer(self.key)
        self.digest, self.head = hashlib.sha256(), b""

    def write(self, chunk: bytes) -> None:
        if self.out.size + len(chunk) > self.hub.settings.upload_max_bytes:
            raise too_large(self.hub)
        if len(self.head) < 4:
            self.head += chunk[:4]
        self.digest.update(chunk)
        self.out.write(chunk)

    def received(self) -> ReceivedFile:
        return ReceivedFile(self.key, self.out.size, self.digest.hexdigest(), self.head.startswith(b"PK\x03\x04"))


async def receive_stream(hub: Hub, grant: UploadGrant, chunks: AsyncIterator[bytes]) -> ReceivedFile:
    """Stream a request body into storage, never whole in memory; refuse it past the size cap."""
    receiving = _Receiving(hub, grant.store)
    with receiving.out:
        async for chunk in chunks:
            receiving.write(chunk)
        await anyio.to_thread.run_sync(receiving.out.commit)
    return receiving.received()


def receive_file(hub: Hub, grant: UploadGrant, source: Path, progress: Callable[[int], None] = lambda _: None) -> ReceivedFile:
    """Copy a local file in (the CLI's import, a file received over FTP); `progress` is told each chunk's size."""
    if source.stat().st_size > hub.settings.upload_max_bytes:
        raise too_large(hub)
    receiving = _Receiving(hub, grant.store)
    with receiving.out, open(source, "rb") as file:
        while chunk := file.read(_CHUNK):
            receiving.write(chunk)
            progress(len(chunk))
        receiving.out.commit()
    return receiving.received()


def too_large(hub: Hub) -> TooLarge:
    return TooLarge(f"the file is larger than the limit of {hub.settings.upload_max_bytes} bytes")


def record_upload(
    hub: Hub, grant: UploadGrant, received: ReceivedFile, source: str, filename: str | None = None
) -> dict:
    """Record a received (stored, durable) file as an upload; once this returns, the upload survives a crash."""
    filename = filename or f"{grant.kind}.{'xlsx' if received.is_xlsx else 'csv'}"
    try:
        with transaction(hub.engine) as conn:
            lock_upload_intake(conn, grant.store)
            if grant.key_id is not None:  # the key may have been rotated while the file streamed in
                current = conn.execute(select(stores.c.upload_key_hash).where(stores.c.id == grant.store)).scalar_one()
                if not hmac.compare_digest(_key_id(hub, current), grant.key_id):
                    raise _revoked()
            upload_id = conn.execute(
                uploads.insert().values(
                    organization_id=grant.organization,
                    store_id=grant.store,
                    kind=grant.kind,
                    source=source,
                    url_nonce=grant.nonce,
                    filename=filename,
                    path=received.key,
                    size_bytes=received.size,
                    sha256=received.sha256,
                    status="received",
                )
            ).inserted_primary_key[0]
            new_work(conn)
    except ServiceError:
        hub.storage.delete(received.key)
        raise
    except IntegrityError:
        hub.storage.delete(received.key)
        if grant.nonce is None:  # not through a signed URL: nothing a client could have reused
            raise
        raise conflict("this upload URL has been used already: ask for a new URL for each upload") from None
    return {"upload_id": ids.encode("upload", upload_id), "status": "received"}


def stored_file(hub: Hub, path: str) -> bytes:
    """An upload's file by its `uploads.path`: a storage key, or (rows from before keys, outside the
    data folder) an absolute local path."""
    if os.path.isabs(path):
        return Path(path).read_bytes()
    return hub.storage.read_bytes(path)


def import_file(hub: Hub, store_id: str, source: Path, progress: Callable[[int], None] = lambda _: None) -> dict:
    """Take a local file in as an upload of the store (the CLI's `import`)."""
    with reading(hub.engine) as conn:
        number = any_store_number(conn, store_id)
        organization = conn.execute(select(stores.c.organization_id).where(stores.c.id == number)).scalar_one()
    grant = UploadGrant(number, organization, kind_for_filename(source.name), nonce=None)
    return record_upload(hub, grant, receive_file(hub, grant, source, progress), source="cli", filename=source.name)


def kind_for_filename(filename: str) -> str:
    return "products" if filename.lower() == PRODUCTS_FILENAME else "stock"


# --- reading upload records ------------------------------------------------------------------


class UploadRecord(NamedTuple):
    row: Any
    rejections: list  # the first rejected rows: row, field, value, reason


def get_upload(hub: Hub, scope: Scope | int | None, upload_id: str) -> UploadRecord:
    """An upload record with its first rejected rows (scope None: the operator's CLI and the workers)."""
    with reading(hub.engine) as conn:
        row = conn.execute(select(uploads).where(*_owned(scope, upload_id))).first()
        if row is None:
            raise not_found(f"upload {upload_id}")
        sample = conn.execute(
            select(upload_rejections.c.row, upload_rejections.c.field, upload_rejections.c.value, upload_rejections.c.reason)
            .where(upload_rejections.c.upload_id == row.id)
            .order_by(upload_rejections.c.row, upload_rejections.c.id)
            .limit(100)
        ).all()
    return UploadRecord(row, sample)


def list_uploads(hub: Hub, scope: Scope | int, store_id: str, limit: int, token: str | None) -> Page:
    with reading(hub.engine) as conn:
        number = store_number(conn, scope, store_id)
        query = select(uploads).where(uploads.c.store_id == number)
        # newest first: page by descending id
        return page_of(conn, query, uploads.c.id, limit, token, descending=True)


def rejections_csv(hub: Hub, scope: Scope | int, upload_id: str) -> str:
    """Every rejected row of an upload as CSV: row, field, value, reason."""
    with reading(hub.engine) as conn:
        if conn.execute(select(uploads.c.id).where(*_owned(scope, upload_id))).first() is None:
            raise not_found(f"upload {upload_id}")
        rows = conn.execute(
            select(upload_rejections.c.row, upload_rejections.c.field, upload_rejections.c.value, upload_rejections.c.reason)
            .where(upload_rejections.c.upload_id == ids.decode("upload", upload_id))
            .order_by(upload_rejections.c.row, upload_rejections.c.id)
        ).all()
    return "".join(",".join(map(csv_field, row)) + "\r\n" for row in [("row", "field", "value", "reason"), *rows])


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: str) -> str:
    """A cell a spreadsheet would run as a formula (=, +, -, @, tab, CR first) with a ' in front,
    as OWASP recommends for CSV injection; any other text as it is."""
    return "'" + value if value.startswith(_FORMULA_START) else value


def csv_field(value) -> str:
    """One CSV field: quoted when it needs to be, and always when it was made spreadsheet-safe."""
    if value is None:
        return ""
    text = str(value)
    safe = spreadsheet_safe(text)
    if safe != text or any(c in text for c in ',"\r\n'):
        return '"' + safe.replace('"', '""') + '"'
    return text


def _owned(scope: Scope | int | None, upload_id: str) -> list:
    number = uploads.c.id == ids.decode("upload", upload_id)
    return [number] if scope is None else [number, *visible(as_scope(scope), uploads.c.organization_id, uploads.c.store_id)]



