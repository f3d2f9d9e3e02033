"""Claiming uploads to process: per-store order, leases, and SKIP LOCKED on PostgreSQL.

An upload is claimable when it is `received` (or `processing` with a lapsed lease: its worker
died) and no older upload of the same store is unfinished, so one store's uploads apply in
the order they arrived. A worker id is `host:pid:process:n`, so a restarted worker knows which
`processing` uploads were its host's dead processes' and takes them back at once.
"""

from __future__ import annotations

import os
import socket
import uuid
from datetime import UTC, datetime

from sqlalchemy import select

from stockhub.jobs.leases import claim_oldest
from stockhub.db.engine import transaction
from stockhub.db.tables import uploads
from stockhub.services.context import Hub
from stockhub.services.ingest import emit_upload_processed

_PROCESS = uuid.uuid4().hex[:8]  # this process, as against an earlier one that had the same pid


def new_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{_PROCESS}:{uuid.uuid4().hex[:6]}"


def _is_dead(worker_id: str) -> bool:
    """A worker of this host whose process is gone (or was this pid before this process started)."""
    host, pid, process, *_ = [*worker_id.split(":"), "", "", ""]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    if int(pid) == os.getpid():
        return process != _PROCESS
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:  # alive, someone else's
        return False
    return False


def release_orphaned_uploads(hub: Hub) -> int:
    """Put uploads that dead processes of this host were processing back in the queue now, rather
    than when their lease runs out. Safe even if wrong: a worker whose claim was taken discards its work."""
    with transaction(hub.engine) as conn:
        held = conn.execute(
            select(uploads.c.id, uploads.c.worker_id).where(
                uploads.c.status == "processing", uploads.c.worker_id.like(f"{socket.gethostname()}:%")
            )
        ).all()
        orphans = [row.id for row in held if _is_dead(row.worker_id)]
        if orphans:
            conn.execute(
                uploads.update()
                .where(uploads.c.id.in_(orphans), uploads.c.status == "processing")
                .values(status="received", worker_id=None, lease_until=None)
            )
    if orphans:
        hub.ring()
    return len(orphans)


def claim_upload(hub: Hub, worker_id: str) -> int | None:
    """The oldest upload a worker may take: a store's uploads go in the order they arrived."""
    return claim_oldest(hub, uploads, worker_id, waiting="received", in_order_of="store_id", stamp_started=True)


def fail_upload(hub: Hub, upload_id: int, worker_id: str, error: str) -> None:
    """After an unexpected error: give up once attempts are spent, else let the lease lapse and retry."""
    with transaction(hub.engine) as conn:
        attempts = conn.execute(select(uploads.c.attempts).where(uploads.c.id == upload_id)).scalar_one()
        done = attempts >= hub.settings.upload_max_attempts
        now = datetime.now(UTC)
        failed = conn.execute(
            uploads.update()
            .where(uploads.c.id == upload_id, uploads.c.worker_id == worker_id, uploads.c.status == "processing")
            .values(
                status="failed" if done else "received",
                error=error if done else None,
                finished_at=now if done else None,
                lease_until=None,
            )
        ).rowcount
        if done and failed:
            emit_upload_processed(conn, upload_id, now)


def release_held(hub: Hub, worker_id: str) -> dict[str, int]:
    """A stopping worker gives back what it still holds — its uploads, webhook deliveries and mail
    — so another worker takes them at once instead of when their leases run out. Each goes back
    as it was before the claim (the attempt it began is not counted against it). Safe against
    the work finishing meanwhile: only rows still held by this worker change, and a worker whose
    claim is gone discards its work (process_upload, deliver.record and mail check the claim)."""
    from stockhub.db.tables import mail_outbox, webhook_deliveries

    now = datetime.now(UTC)
    with transaction(hub.engine) as conn:
        u, d, m = uploads.c, webhook_deliveries.c, mail_outbox.c
        released = {
            "uploads": conn.execute(
                uploads.update()
                .where(u.worker_id == worker_id, u.status == "processing")
                .values(status="received", worker_id=None, lease_until=None, started_at=None, attempts=u.attempts - 1)
            ).rowcount,
            "deliveries": conn.execute(
                webhook_deliveries.update()
                .where(d.worker_id == worker_id, d.status == "delivering")
                .values(status="pending", worker_id=None, lease_until=None, next_attempt_at=now, attempts=d.attempts - 1)
            ).rowcount,
            "mail": conn.execute(
                mail_outbox.update()
                .where(m.worker_id == worker_id, m.status == "sending")
                .values(status="pending", worker_id=None, lease_until=None, next_attempt_at=now, attempts=m.attempts - 1)
            ).rowcount,
        }
    if any(released.values()):
        hub.ring()
    return released
