"""Keeping each store's status (domain/store_status.py) and telling of its changes.

`refresh(conn, settings, store, now)` runs in the transaction that records a processed upload
and in the periodic sweep (a store turns `disconnected` by time alone). A change is written to
the store, emits `store.status_changed` and queues the mails: the first processed upload to the
connected partners, a store turning invalid or disconnected to the retailer (once a day at most).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, and_, desc, exists, or_, select

from stockhub import ids
from stockhub.db.engine import reading, transaction
from stockhub.db.locks import lock_store
from stockhub.db.tables import store_connections, stores, uploads
from stockhub.domain.store_status import LastUpload, Status, StoreStatus, store_status
from stockhub.errors import FieldError, Malformed
from stockhub.services import events, mail
from stockhub.services.context import Hub
from stockhub.settings import Settings

FINISHED = ("applied", "invalid", "failed")


def parse_status(value: str | None) -> StoreStatus | None:
    if value is None or value == "":
        return None
    try:
        return StoreStatus(value)
    except ValueError:
        allowed = ", ".join(s.value for s in StoreStatus)
        raise Malformed(f"status must be one of {allowed}", [FieldError("status", f"unknown status {value!r}")]) from None


def last_stock_upload(conn: Connection, store: int) -> LastUpload | None:
    row = conn.execute(
        select(uploads.c.received_at, uploads.c.status, uploads.c.in_stock_count)
        .where(uploads.c.store_id == store, uploads.c.kind == "stock", uploads.c.status.in_(FINISHED))
        .order_by(desc(uploads.c.id))
        .limit(1)
    ).first()
    return None if row is None else LastUpload(row.received_at, row.status, row.in_stock_count)


def status_now(conn: Connection, settings: Settings, store: int, now: datetime) -> Status:
    return store_status(
        last_stock_upload(conn, store),
        now,
        timedelta(days=settings.store_disconnected_after_days),
        settings.store_min_in_stock_items,
    )


def refresh(conn: Connection, settings: Settings, store: int, now: datetime | None = None) -> Status | None:
    """Recompute the store's status; returns the new one when it changed (and was told of)."""
    now = now or datetime.now(UTC)
    row = conn.execute(select(stores.c.organization_id, stores.c.status, stores.c.status_warnings).where(stores.c.id == store)).one()
    new = status_now(conn, settings, store, now)
    warnings = json.dumps(list(new.warnings)) if new.warnings else None
    if row.status == new.status and row.status_warnings == warnings:
        return None
    conn.execute(stores.update().where(stores.c.id == store).values(status=new.status.value, status_warnings=warnings, status_changed_at=now))
    store_id = ids.encode("store", store)
    data = {"store_id": store_id, "status": new.status.value, "previous_status": row.status, "warnings": list(new.warnings)}
    events.emit(conn, "store.status_changed", row.organization_id, store, data, now=now)
    if row.status == StoreStatus.PENDING:
        partners = conn.execute(select(store_connections.c.partner_id).where(store_connections.c.store_id == store)).scalars()
        for partner in partners:
            mail.queue(conn, "first_upload", f"first_upload:{store}:{partner}", row.organization_id, store, partner, data)
    if new.status in (StoreStatus.INVALID, StoreStatus.DISCONNECTED):
        key = f"store_status:{store}:{now.date().isoformat()}"
        mail.queue(conn, "store_status", key, row.organization_id, store, None, data)
    return new


def refresh_all(hub: Hub, now: datetime | None = None) -> int:
    """The sweep: stores whose last upload has grown too old turn disconnected, and a store whose
    upload was finished outside an ingest (a failed one) gets its status. Returns changes."""
    now = now or datetime.now(UTC)
    finished = exists().where(uploads.c.store_id == stores.c.id, uploads.c.kind == "stock", uploads.c.status.in_(FINISHED))
    with reading(hub.engine) as conn:
        candidates = conn.execute(
            select(stores.c.id)
            .where(or_(stores.c.status.in_((StoreStatus.CONNECTED.value, StoreStatus.INVALID.value)), and_(stores.c.status == StoreStatus.PENDING.value, finished)))
            .order_by(stores.c.id)
        ).scalars().all()
    changed = 0
    for store in candidates:
        with transaction(hub.engine) as conn:
            lock_store(conn, store)  # as the ingest that records an upload does
            changed += refresh(conn, hub.settings, store, now) is not None
    return changed
