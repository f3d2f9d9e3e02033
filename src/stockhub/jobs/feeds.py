"""Feed work for the workers, claimed from the database like uploads (leases; SKIP LOCKED on
PostgreSQL): pushed batches, applied in the order each feed received them, and (pull feeds)
fetches that are due."""

from __future__ import annotations

import json
import logging
import ssl
from datetime import UTC, datetime, timedelta

from urllib.parse import urlsplit

from sqlalchemy import or_, select

from stockhub import ids
from stockhub.jobs.leases import claim_oldest
from stockhub.db.engine import reading, transaction
from stockhub.db.tables import feed_batches
from stockhub.db.tables import feeds as feeds_table
from stockhub.errors import ServiceError
from stockhub.feeds import documents, fetch
from stockhub.feeds.decode import Limits
from stockhub.feeds.sandbox import Sandbox
from stockhub.services import events, feeds, uploads
from stockhub.services.context import Hub
from stockhub.timefmt import iso

log = logging.getLogger(__name__)

BATCH_MAX_ATTEMPTS = 3


def claim_batch(hub: Hub, worker_id: str) -> int | None:
    """The oldest received batch (or one whose worker's lease lapsed) with no older unfinished batch of its feed."""
    return claim_oldest(hub, feed_batches, worker_id, waiting="received", in_order_of="feed_id")


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


# --- pull feeds --------------------------------------------------------------------------------


def claim_due_feed(hub: Hub, worker_id: str) -> int | None:
    """A pull feed whose fetch is due (and no live worker's lease on it), leased to this worker."""
    now = datetime.now(UTC)
    conditions = (
        feeds_table.c.kind == "pull",
        feeds_table.c.enabled.is_(True),
        feeds_table.c.next_fetch_at <= now,
        or_(feeds_table.c.lease_until.is_(None), feeds_table.c.lease_until < now),
    )
    with reading(hub.engine) as conn:  # most loops find nothing due: no write transaction for that (SQLite's one writer)
        if conn.execute(select(feeds_table.c.id).where(*conditions).limit(1)).first() is None:
            return None
    due = select(feeds_table.c.id).where(*conditions).order_by(feeds_table.c.next_fetch_at).limit(1).with_for_update(skip_locked=True)
    with transaction(hub.engine) as conn:
        feed_id = conn.execute(due).scalar()
        if feed_id is None:
            return None
        conn.execute(
            feeds_table.update()
            .where(feeds_table.c.id == feed_id)
            .values(worker_id=worker_id, lease_until=now + timedelta(seconds=hub.settings.worker_lease_seconds))
        )
        return feed_id


def pull_feed(hub: Hub, feed_id: int, worker_id: str) -> str:
    """Fetch a claimed feed's document; a new one becomes an upload of the feed's store (marked
    with the feed), applied by the upload workers like any other. Returns the outcome: fetched,
    not_modified or failed (the reason is kept on the feed, and told as feed.fetch_failed)."""
    with reading(hub.engine) as conn:
        feed = conn.execute(select(feeds_table).where(feeds_table.c.id == feed_id)).first()
    if feed is None or feed.worker_id != worker_id or feed.kind != "pull":
        return "lost"
    username, password = feeds.credentials_of(hub, feed)
    source = fetch.Source(feed.source_url, username, password)
    try:
        got = fetch.fetch(
            source,
            etag=feed.etag,
            last_modified=feed.last_modified,
            timeout=hub.settings.feed_fetch_timeout_seconds,
            max_bytes=min(hub.settings.feed_fetch_max_bytes, hub.settings.upload_max_bytes),
            settings=hub.settings,
            tls_context=_tls_context(hub),
        )
        if isinstance(got, fetch.NotModified):  # not modified since the last fetch: nothing to apply
            _fetched(hub, feed, worker_id, "not_modified")
            return "not_modified"
        body = got.body
        if feed.format in ("xml", "json"):
            mapping = feeds.as_document_mapping(feed.format, json.loads(feed.mapping))
            body = documents.stock_csv_from_document(body, feed.format, mapping, sandbox=_sandbox(hub))
    except fetch.FetchFailed as failure:
        _failed(hub, feed, worker_id, failure.reason, failure.retryable)
        return "failed"
    except ServiceError as refused:  # the document was refused (malformed, entities, a bad path)
        _failed(hub, feed, worker_id, f"the document was refused: {refused.detail or refused.title}", False)
        return "failed"
    grant = uploads.UploadGrant(feed.store_id, feed.organization_id, "stock", nonce=None)
    filename = _filename(feed.source_url, feed.format)
    recorded = uploads.record_upload(hub, grant, uploads.receive_bytes(hub, grant, body), source="feed", filename=filename, feed_id=feed.id)
    _fetched(hub, feed, worker_id, "fetched", got.etag, got.last_modified, ids.decode("upload", recorded["upload_id"]))
    return "fetched"


def _sandbox(hub: Hub) -> Sandbox:
    """The limits an uploaded file is read under (memory, time, columns, rows, cell size)."""
    s = hub.settings
    return Sandbox(s.parse_max_memory_mb, s.parse_timeout_seconds, Limits(s.parse_max_columns, s.parse_max_rows, s.parse_max_cell_chars))


def _tls_context(hub: Hub) -> ssl.SSLContext | None:
    if hub.settings.feed_tls_ca_file is None:
        return None
    context = ssl.create_default_context()
    context.load_verify_locations(cafile=str(hub.settings.feed_tls_ca_file))
    return context


def _filename(url: str, fmt: str) -> str:
    name = urlsplit(url).path.rsplit("/", 1)[-1][:200] or "feed"
    return name if fmt in ("csv", "xlsx") else f"{name}.csv"


def _fetched(hub: Hub, feed, worker_id: str, status: str, etag: str | None = None, last_modified: str | None = None, upload: int | None = None) -> None:
    now = datetime.now(UTC)
    values = {
        "last_fetch_at": now,
        "last_fetch_status": status,
        "last_error": None,
        "failures": 0,
        "next_fetch_at": now + timedelta(minutes=feed.fetch_frequency),
        "lease_until": None,
        "worker_id": None,
    }
    if status == "fetched":
        values |= {"etag": etag[:500] if etag else None, "last_modified": last_modified[:100] if last_modified else None, "last_upload_id": upload}
    with transaction(hub.engine) as conn:
        conn.execute(feeds_table.update().where(feeds_table.c.id == feed.id, feeds_table.c.worker_id == worker_id).values(**values))


def _failed(hub: Hub, feed, worker_id: str, reason: str, retryable: bool) -> None:
    """Retry soon (with backoff) when trying again may help, else at the next scheduled fetch."""
    now = datetime.now(UTC)
    schedule = hub.settings.feed_retry_seconds
    regular = timedelta(minutes=feed.fetch_frequency)
    wait = min(timedelta(seconds=schedule[feed.failures]), regular) if retryable and feed.failures < len(schedule) else regular
    with transaction(hub.engine) as conn:
        updated = conn.execute(
            feeds_table.update()
            .where(feeds_table.c.id == feed.id, feeds_table.c.worker_id == worker_id)
            .values(
                last_fetch_at=now, last_fetch_status="failed", last_error=reason, failures=feeds_table.c.failures + 1,
                next_fetch_at=now + wait, lease_until=None, worker_id=None,
            )
        ).rowcount
        if updated and (feed.failures == 0 or feed.last_error != reason):  # told once per failure, not per retry
            data = {"feed_id": ids.encode("feed", feed.id), "name": feed.name, "reason": reason, "next_fetch_at": iso(now + wait)}
            events.emit(conn, "feed.fetch_failed", feed.organization_id, feed.store_id, data, now=now)


def run_one_pull(hub: Hub, worker_id: str) -> bool:
    feed_id = claim_due_feed(hub, worker_id)
    if feed_id is None:
        return False
    run_claimed_pull(hub, feed_id, worker_id)
    return True


def run_claimed_pull(hub: Hub, feed_id: int, worker_id: str) -> None:
    try:
        pull_feed(hub, feed_id, worker_id)
    except Exception as error:
        log.exception("pulling feed %s failed", feed_id)
        with reading(hub.engine) as conn:
            feed = conn.execute(select(feeds_table).where(feeds_table.c.id == feed_id)).first()
        if feed is not None:
            _failed(hub, feed, worker_id, f"the fetch could not be completed ({type(error).__name__}): it is tried again", True)
