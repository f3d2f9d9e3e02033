"""Periodic sweeps: products that no upload has reported for the expiry period become expired;
event and delivery history past its retention period is purged."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from stockhub.db.engine import transaction
from sqlalchemy import delete, exists, select

from stockhub.db.tables import events, inventory_changes, stock_levels, webhook_attempts, webhook_deliveries
from stockhub.services.context import Hub


def expire_stale_stock(hub: Hub, now: datetime | None = None) -> int:
    now = now or datetime.now(UTC)
    cutoff = now.date() - timedelta(days=hub.settings.expiry_days)
    with transaction(hub.engine) as conn:
        return conn.execute(
            stock_levels.update()
            .where(stock_levels.c.last_reported_on < cutoff, stock_levels.c.expired.is_(False))
            .values(expired=True, updated_at=now)
        ).rowcount


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
        old = select(d.id).where(d.next_attempt_at.is_(None), d.created_at < cutoff, d.status != "held")
        conn.execute(delete(webhook_attempts).where(webhook_attempts.c.delivery_id.in_(old)))
        conn.execute(delete(webhook_deliveries).where(d.id.in_(old)))
        unneeded = select(events.c.id).where(events.c.occurred_at < cutoff, ~exists().where(d.event_id == events.c.id))
        conn.execute(delete(inventory_changes).where(inventory_changes.c.event_id.in_(unneeded)))
        return conn.execute(delete(events).where(events.c.id.in_(unneeded))).rowcount
