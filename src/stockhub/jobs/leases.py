"""Claiming queued work under a lease: the one rule for uploads, catalog imports and feed batches.

A row is claimable when it waits, or when it is being processed but its worker's lease ran
out (the worker died). Rows of one group (a store's uploads, an organization's imports, a
feed's batches) are taken in arrival order: none while an older one of its group is unfinished.
`FOR UPDATE SKIP LOCKED` on PostgreSQL, so workers never wait on each other; SQLite has one
writer, so an empty queue is seen in a read, without taking the write lock.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Table, and_, exists, or_, select
from sqlalchemy.orm import aliased

from stockhub.db.engine import reading, transaction
from stockhub.services.context import Hub


def claim_oldest(hub: Hub, table: Table, worker_id: str, *, waiting: str, in_order_of: str, stamp_started: bool = False) -> int | None:
    """Claim the oldest claimable row of `table` (status `waiting`, or `processing` past its lease)
    whose group (`in_order_of`) has no older unfinished row; returns its id, or None."""
    now = datetime.now(UTC)
    c = table.c
    older = aliased(table)
    unfinished = (waiting, "processing")
    with reading(hub.engine) as conn:
        if conn.execute(select(c.id).where(c.status.in_(unfinished)).limit(1)).first() is None:
            return None
    claimable = (
        select(c.id)
        .where(
            or_(c.status == waiting, and_(c.status == "processing", c.lease_until < now)),
            ~exists().where(older.c[in_order_of] == c[in_order_of], older.c.id < c.id, older.c.status.in_(unfinished)),
        )
        .order_by(c.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    with transaction(hub.engine) as conn:
        number = conn.execute(claimable).scalar()
        if number is None:
            return None
        claimed = {
            "status": "processing",
            "worker_id": worker_id,
            "lease_until": now + timedelta(seconds=hub.settings.worker_lease_seconds),
            "attempts": c.attempts + 1,
        }
        conn.execute(table.update().where(c.id == number).values(**claimed, **({"started_at": now} if stamp_started else {})))
        return number
