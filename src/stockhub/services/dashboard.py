"""What the dashboard shows that no other use case reads: each store's feed health (status, last
upload, uploads per day, success rate), a store's upload history for its chart, and a partner's
connected stores with their connection stability over 30 days. Reach is decided by services/scope."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, and_, desc, func, select

from stockhub import ids
from stockhub.db.engine import reading
from stockhub.db.tables import organizations, stores, uploads
from stockhub.domain.access import Scope
from stockhub.domain.store_status import stability
from stockhub.services.context import Hub
from stockhub.services.scope import as_scope, partner_scope, partner_scopes, store_number, visible
from stockhub.timefmt import iso

HEALTH_DAYS = 7
HISTORY_UPLOADS = 30
STABILITY_DAYS = 30
FINISHED = ("applied", "invalid", "failed")


def store_health(hub: Hub, scope: Scope | int, now: datetime | None = None) -> list[dict]:
    """Every store the scope reaches, with its status and the last 7 days of uploads."""
    scope, now = as_scope(scope), now or datetime.now(UTC)
    with reading(hub.engine) as conn:
        rows = conn.execute(select(stores).where(*visible(scope, stores.c.organization_id, stores.c.id)).order_by(stores.c.name, stores.c.id)).all()
        return [_health(conn, row, now) for row in rows]


def _health(conn: Connection, row, now: datetime) -> dict:
    since = now - timedelta(days=HEALTH_DAYS)
    counts = dict(
        conn.execute(
            select(uploads.c.status, func.count())
            .where(uploads.c.store_id == row.id, uploads.c.kind == "stock", uploads.c.received_at >= since)
            .group_by(uploads.c.status)
        ).all()
    )
    last = conn.execute(select(uploads).where(uploads.c.store_id == row.id).order_by(desc(uploads.c.id)).limit(1)).first()
    finished = sum(counts.get(s, 0) for s in FINISHED)
    return {
        "id": ids.encode("store", row.id),
        "name": row.name,
        "city": row.city,
        "status": row.status,
        "warnings": json.loads(row.status_warnings) if row.status_warnings else [],
        "last_upload": None if last is None else {"id": ids.encode("upload", last.id), "status": last.status, "received_at": iso(last.received_at)},
        "uploads_per_day": round(sum(counts.values()) / HEALTH_DAYS, 1),
        "success_rate": None if finished == 0 else round(100 * counts.get("applied", 0) / finished),
    }


def upload_history(hub: Hub, scope: Scope | int, store_id: str, limit: int = HISTORY_UPLOADS) -> list[dict]:
    """The store's last finished stock uploads, oldest first: valid and rejected rows of each."""
    with reading(hub.engine) as conn:
        number = store_number(conn, scope, store_id)
        rows = conn.execute(
            select(uploads.c.id, uploads.c.received_at, uploads.c.status, uploads.c.valid_count, uploads.c.rejected_count)
            .where(uploads.c.store_id == number, uploads.c.kind == "stock", uploads.c.status.in_(FINISHED))
            .order_by(desc(uploads.c.id))
            .limit(limit)
        ).all()
    return [
        {"id": ids.encode("upload", r.id), "received_at": iso(r.received_at), "status": r.status, "valid": r.valid_count or 0, "rejected": r.rejected_count or 0}
        for r in reversed(rows)
    ]


def partner_stores(hub: Hub, partner: int, now: datetime | None = None) -> list[dict]:
    """The stores connected to a partner, by retailer: status and connection stability over 30 days."""
    now = now or datetime.now(UTC)
    with reading(hub.engine) as conn:
        found = []
        for scope, partner_store_id in partner_scopes(conn, partner):
            row = conn.execute(select(stores).where(stores.c.id == scope.store)).one()
            retailer = conn.execute(select(organizations.c.name).where(organizations.c.id == scope.organization)).scalar_one()
            days = _stability(conn, hub, scope.store, now)
            found.append(
                _health(conn, row, now)
                | {"retailer": retailer, "partner_store_id": partner_store_id, "stability": days, "stable_percent": round(100 * sum(days) / len(days))}
            )
    return found


def _stability(conn: Connection, hub: Hub, store: int, now: datetime) -> list[bool]:
    window = hub.settings.store_disconnected_after_days
    since = now - timedelta(days=STABILITY_DAYS + window)
    received = conn.execute(
        select(uploads.c.received_at).where(
            and_(uploads.c.store_id == store, uploads.c.kind == "stock", uploads.c.status == "applied", uploads.c.received_at >= since)
        )
    ).scalars()
    return stability({r.date() for r in received}, now.date(), window, STABILITY_DAYS)


def partner_store(hub: Hub, partner: int, store_id: str) -> Scope:
    """The scope of one of the partner's connected stores (not found otherwise)."""
    with reading(hub.engine) as conn:
        return partner_scope(conn, partner, store_id)
