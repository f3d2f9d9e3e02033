"""Feed work for the workers, claimed from the database like uploads (leases; SKIP LOCKED on
PostgreSQL): pushed batches, applied in the order each feed received them, and (pull feeds)
fetches that are due."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta

from sqlalchemy import and_, exists, or_, select
from sqlalchemy.orm import aliased

from stockhub.db.engine import transaction
from stockhub.db.tables import feed_batches
from stockhub.services import feeds
from stockhub.services.context import Hub

log = logging.getLogger(__name__)

BATCH_MAX_ATTEMPTS = 3


def claim_batch(hub: Hub, worker_id: str) -> int | None:
    """The oldest received batch (or one whose worker's lease lapsed) with no older unfinished batch of its feed."""
    now = datetime.now(UTC)
    older = aliased(feed_batches)
    claimable = (
        select(feed_batches.c.id)
        .where(
            or_(feed_batches.c.status == "received", and_(feed_batches.c.status == "processing", feed_batches.c.lease_until < now)),
            ~exists().where(
                older.c.feed_id == feed_batches.c.feed_id, older.c.id < feed_batches.c.id, older.c.status.in_(("received", "processing"))
            ),
        )
        .order_by(feed_batches.c.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    with transaction(hub.engine) as conn:
        batch_id = conn.execute(claimable).scalar()
        if batch_id is None:
            return None
        conn.execute(
            feed_batches.update()
            .where(feed_batches.c.id == batch_id)
            .values(
                status="processing",
                worker_id=worker_id,
                lease_until=now + timedelta(seconds=hub.settings.worker_lease_seconds),
                attempts=feed_batches.c.attempts + 1,
            )
        )
        return batch_id


def process_batch(hub: Hub, batch_id: int, worker_id: str) -> bool:
    """Apply a claimed batch in one transaction; False when the claim was lost."""
    now = datetime.now(UTC)
    with transaction(hub.engine) as conn:
        batch = conn.execute(
            select(feed_batches).where(
                feed_batches.c.id == batch_id, feed_batches.c.status == "processing", feed_batches.c.worker_id == worker_id
            ).with_for_update()
        ).first()
        if batch is None:
            return False
        outcomes = feeds.apply_batch(conn, batch, now)
        conn.execute(
            feed_batches.update()
            .where(feed_batches.c.id == batch_id)
            .values(status="done", result=json.dumps(outcomes), finished_at=now, lease_until=None)
        )
    return True


def fail_batch(hub: Hub, batch_id: int, worker_id: str, error: str) -> None:
    with transaction(hub.engine) as conn:
        attempts = conn.execute(select(feed_batches.c.attempts).where(feed_batches.c.id == batch_id)).scalar_one()
        done = attempts >= BATCH_MAX_ATTEMPTS
        conn.execute(
            feed_batches.update()
            .where(feed_batches.c.id == batch_id, feed_batches.c.worker_id == worker_id, feed_batches.c.status == "processing")
            .values(
                status="failed" if done else "received",
                error=error if done else None,
                finished_at=datetime.now(UTC) if done else None,
                lease_until=None,
            )
        )


def run_one_batch(hub: Hub, worker_id: str) -> bool:
    batch_id = claim_batch(hub, worker_id)
    if batch_id is None:
        return False
    try:
        process_batch(hub, batch_id, worker_id)
    except Exception as error:
        log.exception("feed batch %s failed", batch_id)
        fail_batch(hub, batch_id, worker_id, f"processing failed: {type(error).__name__}")
    return True
