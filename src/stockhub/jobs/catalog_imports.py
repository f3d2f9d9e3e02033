"""Claiming catalog imports: like uploads (jobs/queue.py), under a lease, SKIP LOCKED on
PostgreSQL, and one organization's imports in the order they were received."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from sqlalchemy import select

from stockhub.jobs.leases import claim_oldest, held
from stockhub.db.engine import transaction
from stockhub.db.tables import catalog_imports
from stockhub.feeds.sandbox import ReaderFailed
from stockhub.services.catalog_import import ClaimLost, process_import
from stockhub.services.context import Hub

log = logging.getLogger(__name__)


def claim_import(hub: Hub, worker_id: str) -> int | None:
    """The oldest import a worker may take: an organization's imports go in the order they arrived."""
    return claim_oldest(hub, catalog_imports, worker_id, waiting="queued", in_order_of="organization_id", stamp_started=True)


def process_one_import(hub: Hub, worker_id: str) -> bool:
    """Claim and process one catalog import; True if there was one. A failure goes back in the
    queue until UPLOAD_MAX_ATTEMPTS, then the import is `failed` with the reason."""
    number = claim_import(hub, worker_id)
    if number is None:
        return False
    try:
        with held(hub, catalog_imports, number, worker_id):
            process_import(hub, number, worker_id)
    except ClaimLost:
        log.warning("catalog import %s was taken over by another worker", number)
    except ReaderFailed as failure:
        log.warning("catalog import %s: %s", number, failure)
        _fail(hub, number, worker_id, str(failure))
    except Exception as error:
        log.exception("catalog import %s failed", number)
        _fail(hub, number, worker_id, f"processing failed: {type(error).__name__}")
    return True


def _fail(hub: Hub, number: int, worker_id: str, error: str) -> None:
    with transaction(hub.engine) as conn:
        c = catalog_imports.c
        attempts = conn.execute(select(c.attempts).where(c.id == number)).scalar_one()
        done = attempts >= hub.settings.upload_max_attempts
        conn.execute(
            catalog_imports.update()
            .where(c.id == number, c.worker_id == worker_id, c.status == "processing")
            .values(
                status="failed" if done else "queued",
                error=error if done else None,
                finished_at=datetime.now(UTC) if done else None,
                lease_until=None,
            )
        )
