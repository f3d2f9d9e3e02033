"""Periodic sweeps: products that no upload has reported for the expiry period become expired
(and subscribers are told);
event and delivery history past its retention period is purged."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, exists, select

from stockhub.db.engine import reading, transaction
from stockhub.db.locks import lock_store
from stockhub.db.tables import events, stock_levels, stores, webhook_attempts, webhook_deliveries
from stockhub.services import events as outbox
from stockhub.services.context import Hub


def expire_stale_stock(hub: Hub, now: datetime | None = None) -> int:
    """Expire what no upload reported for the expiry period, a store at a time (its lock first, as
    every writer of its stock), telling subscribers with inventory.updated. Returns levels expired."""
    now = now or datetime.now(UTC)
    cutoff = now.date() - timedelta(days=hub.settings.expiry_days)
    stale = (stock_levels.c.last_reported_on < cutoff, stock_levels.c.expired.is_(False))
    with reading(hub.engine) as conn:
        found = conn.execute(
            select(stores.c.id, stores.c.organization_id)
            .where(stores.c.id.in_(select(stock_levels.c.store_id).where(*stale).distinct()))
            .order_by(stores.c.id)
        ).all()
    expired = 0
    for store, organization in found:
        with transaction(hub.engine) as conn:
            lock_store(conn, store)
            rows = conn.execute(
                stock_levels.update()
                .where(stock_levels.c.store_id == store, *stale)
                .values(expired=True, updated_at=now)
                .returning(*(stock_levels.c[name] for name in _CHANGE_COLUMNS))
            ).all()
            changes = [row._asdict() | {"on_hand_before": row.on_hand, "expired": True} for row in rows]
            outbox.emit_level_changes(conn, organization, store, sorted(changes, key=lambda c: c["identifier"]), now)
            expired += len(rows)
    return expired


_CHANGE_COLUMNS = ("identifier", "on_hand", "committed", "safety_stock", "price_minor", "currency", "promotion_minor")


def purge_event_history(hub: Hub, now: datetime | None = None) -> int:
    """Forget what is older than the retention period: finished deliveries with their attempts,
    deliveries held that long, then events no delivery still needs. Returns the events removed."""
    now = now or datetime.now(UTC)
    cutoff = now - timedelta(days=hub.settings.event_retention_days)
    d = webhook_deliveries.c
    with transaction(hub.engine) as conn:
        conn.execute(
            webhook_deliveries.update()
            .where(d.status == "held", d.created_at < cutoff)
            .values(status="cancelled", finished_at=now, last_error="held longer than the retention period")
        )
        old = select(d.id).where(d.finished_at.is_not(None), d.created_at < cutoff)
        conn.execute(delete(webhook_attempts).where(webhook_attempts.c.delivery_id.in_(old)))
        conn.execute(delete(webhook_deliveries).where(d.id.in_(old)))
        unneeded = select(events.c.id).where(
            events.c.occurred_at < cutoff, events.c.sequence.is_not(None), ~exists().where(d.event_id == events.c.id)
        )
        return conn.execute(delete(events).where(events.c.id.in_(unneeded))).rowcount
