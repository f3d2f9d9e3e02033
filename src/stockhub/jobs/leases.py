"""Claiming queued work under a lease: the one rule for uploads, catalog imports and feed batches.

A row is claimable when it waits, or when it is being processed but its worker's lease ran
out (the worker died: a live worker keeps renewing its lease, see `held`). Rows of one group (a store's uploads, an organization's imports, a
feed's batches) are taken in arrival order: none while an older one of its group is unfinished.
`FOR UPDATE SKIP LOCKED` on PostgreSQL, so workers never wait on each other; SQLite has one
writer, so an empty queue is seen in a read, without taking the write lock.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from sqlalchemy import Table, and_, exists, or_, select
from sqlalchemy.orm import aliased

from stockhub.db.engine import reading, transaction
from stockhub.services.context import Hub

log = logging.getLogger(__name__)


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


@contextmanager
def held(hub: Hub, table: Table, number: int, worker_id: str) -> Iterator[None]:
    """Keep renewing the lease on a claimed row while the block runs, so only a dead worker's
    lease runs out: a live one that is slow (a large file, a loaded machine) would otherwise see
    its work taken over and redone, and each takeover counted as an interrupted attempt."""
    lease = hub.settings.worker_lease_seconds
    done = threading.Event()

    def renew() -> None:
        c = table.c
        while not done.wait(lease / 3):
            try:
                with transaction(hub.engine) as conn:
                    mine = conn.execute(
                        table.update()
                        .where(c.id == number, c.worker_id == worker_id, c.status == "processing")
                        .values(lease_until=datetime.now(UTC) + timedelta(seconds=lease))
                    ).rowcount
            except Exception:  # the database is busy or away: try again at the next beat
                log.warning("could not renew the lease on %s %s", table.name, number, exc_info=True)
                continue
            if not mine:  # finished, or taken over: nothing left to hold
                return

    beat = threading.Thread(target=renew, name=f"stockhub-lease-{table.name}-{number}", daemon=True)
    beat.start()
    try:
        yield
    finally:
        done.set()
        beat.join()
