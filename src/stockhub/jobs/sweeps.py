"""Periodic sweeps: products that no upload has reported for the expiry period become expired."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from stockhub.db.engine import transaction
from stockhub.db.tables import stock_levels
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
