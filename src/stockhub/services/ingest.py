"""Ingest an upload: parse and validate the file, then apply it to the store's stock in one transaction."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

import polars as pl
from sqlalchemy import Connection, func, select

from stockhub.db.bulk import insert_frame
from stockhub.db.engine import is_postgres, let_waiting_writers_in, reading, transaction
from stockhub.db.locks import lock_store
from stockhub.db.stock_apply import apply_snapshot, apply_staged_part, drop_staged, stage_snapshot
from stockhub.db.tables import stores, upload_rejections, uploads
from stockhub.feeds.decode import Limits
from stockhub.feeds.product_file import PRODUCT_SCHEMA, ProductFile
from stockhub.feeds.sandbox import ReaderFailed, Sandbox, read_isolated
from stockhub.feeds.stock_file import ROW_SCHEMA, StockFile, unusable
from stockhub import representations
from stockhub.services import events, feeds, item_limits, previous_feed, store_status
from stockhub.services.catalog import apply_products
from stockhub.services.context import Hub
from stockhub.services.upload_log import write_upload_log
from stockhub.services.uploads import stored_file

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    status: str
    changed: int = 0


def process_upload(hub: Hub, upload_id: int, worker_id: str) -> Outcome | None:
    """Process a claimed upload. Returns None when the claim was lost (another worker owns it now)."""
    with reading(hub.engine) as conn:
        upload = conn.execute(select(uploads).where(uploads.c.id == upload_id)).one()
        store = conn.execute(
            select(
                stores.c.currency, stores.c.custom_products, stores.c.feed_quantity_means, stores.c.location_name, stores.c.column_mapping
            ).where(stores.c.id == upload.store_id)
        ).one()
    parsed = _parse(hub, upload, store)
    fatal = parsed.invalid_reason
    now = datetime.now(UTC)
    means_available = store.feed_quantity_means == "available"
    applies_stock = fatal is None and upload.kind == "stock"
    previous = previous_feed.load(hub, upload.store_id, means_available, now) if applies_stock else None
    held_back_rows: set[str] = set()

    def on_changes(conn, changed):
        events.emit_inventory_changes(conn, upload.organization_id, upload.store_id, upload_id, changed, now)

    in_parts = applies_stock and not is_postgres(hub.engine) and parsed.rows.height > hub.settings.apply_part_rows
    held_back = 0
    if in_parts:
        staged = _apply_in_parts(hub, upload, worker_id, parsed.rows, now, means_available, on_changes, previous)
        if staged is None:
            return None
        staged_after_event, held_back_rows = staged
        held_back = len(held_back_rows)
    rejections_kept = not is_postgres(hub.engine) and parsed.rejections.height > hub.settings.apply_part_rows
    if rejections_kept and not _keep_rejections_in_parts(hub, upload_id, worker_id, parsed.rejections):
        return None
    with transaction(hub.engine) as conn:
        lock_store(conn, upload.store_id)
        if not _still_ours(conn, upload_id, worker_id):
            return None
        changed, warnings = 0, []
        if in_parts:  # each part added its changes as it went
            changed = conn.execute(select(uploads.c.changed_count).where(uploads.c.id == upload_id)).scalar_one() or 0
        elif fatal is None and upload.kind == "products":
            changed = apply_products(conn, upload.organization_id, upload.store_id, upload_id, parsed.rows, now)
        elif fatal is None:
            sent = previous_feed.rows_to_send(conn, upload.store_id, previous, parsed.rows)
            with previous_feed.probing(conn, sent, parsed.rows):
                applied = apply_snapshot(conn, upload.store_id, upload_id, sent, now, means_available=means_available, on_changes=on_changes)
            changed, held_back = applied.changed, applied.held_back
            held_back_rows = set(applied.held_back_identifiers)
        if fatal is None and upload.kind == "stock" and upload.feed_id is not None:  # a pull feed's full snapshot
            cleared = feeds.clear_missing(conn, upload.feed_id, upload.store_id, parsed.rows, now)
            changed += cleared
            if cleared:
                warnings.append(f"{cleared} products missing from the feed's full snapshot went out of stock")
        if fatal is None and upload.kind == "stock":  # a file applies in full, and counts
            passed = item_limits.count(conn, hub.settings, upload.organization_id, parsed.rows.height, now, refuse=False)
            warnings += [passed] if passed else []
        if held_back:
            warnings.append(
                f"{held_back} products reported fewer units than are committed to open orders:"
                " their on_hand was kept at the committed quantity, so none of them is available"
            )
        outcome = Outcome("invalid" if fatal else "applied", changed)
        _record_outcome(conn, upload_id, outcome, parsed, fatal, now, warnings, rejections_kept)
        emit_upload_processed(conn, upload_id, now)
        store_status.refresh(conn, hub.settings, upload.store_id, now)
        kept = applies_stock and _record_previous_feed(conn, upload, now, means_available, staged_after_event if in_parts else None)
    _log_for_the_store(hub, upload.store_id, upload_id)
    if kept:
        previous_feed.keep(hub, upload.store_id, upload_id, parsed.rows, held_back_rows, kept.replaced)
    return outcome


@dataclass(frozen=True)
class _Recorded:
    replaced: int | None


def _record_previous_feed(conn: Connection, upload, now: datetime, means_available: bool, staged_after_event: int | None) -> _Recorded | None:
    """The applied file is the store's previous file: every event after the watermark may have
    changed a level it reports. Applied whole, under the store's lock, that is the last event
    now (the upload's own changes and upload.processed included); applied in parts, the last
    event before it was staged, if that event is still there to keep later ids above it."""
    if staged_after_event is None:
        watermark = previous_feed.latest_event(conn)
    elif previous_feed.event_exists(conn, staged_after_event):
        watermark = staged_after_event
    else:
        previous_feed.forget(conn, upload.store_id)
        return None
    return _Recorded(previous_feed.record(conn, upload.store_id, upload.id, now, means_available, watermark))


def _parse(hub: Hub, upload, store) -> StockFile | ProductFile:
    """The upload's file parsed in the sandbox. A reader failure is retried (ReaderFailed raised:
    the worker puts the upload back) until the upload has had UPLOAD_MAX_ATTEMPTS; then the file
    is refused as invalid with the reason, and the store's next upload goes on."""
    settings = hub.settings
    empty = (ProductFile, PRODUCT_SCHEMA) if upload.kind == "products" else (StockFile, ROW_SCHEMA)
    if upload.attempts > settings.upload_max_attempts:  # earlier attempts died with their process
        return unusable(*empty, f"the file could not be read: {upload.attempts - 1} attempts to process it were interrupted")
    options = {"invalid_threshold": settings.invalid_threshold, "custom_identifiers": store.custom_products}
    if upload.kind != "products":
        options["default_currency"] = store.currency
        options["location_name"] = store.location_name
        options["column_mapping"] = json.loads(store.column_mapping) if store.column_mapping else None
    limits = Limits(settings.parse_max_columns, settings.parse_max_rows, settings.parse_max_cell_chars)
    sandbox = Sandbox(settings.parse_max_memory_mb, settings.parse_timeout_seconds, limits)
    try:
        with stored_file(hub, upload.path) as path:  # never whole in this process's memory
            return read_isolated(upload.kind, path, options, sandbox)
    except ReaderFailed as failure:
        if upload.attempts < settings.upload_max_attempts:
            raise
        return unusable(*empty, str(failure))


def _still_ours(conn: Connection, upload_id: int, worker_id: str) -> bool:
    mine = uploads.c.id == upload_id, uploads.c.status == "processing", uploads.c.worker_id == worker_id
    return conn.execute(select(uploads.c.id).where(*mine)).first() is not None


def _apply_in_parts(
    hub: Hub, upload, worker_id: str, rows: pl.DataFrame, now: datetime, means_available: bool, on_changes, previous
) -> tuple[int, set[str]] | None:
    """SQLite, a large stock file: stage it and take the diff without the write lock, then apply
    what may change in parts of `apply_part_rows` rows, each its own short write transaction under the
    same lock and rules as a whole apply, so other writers (bookings at any store) wait
    milliseconds, not the whole upload. A reader may meanwhile see the upload partly applied.

    Each part adds its changes to the upload's `changed_count` (the worker renews the lease meanwhile:
    jobs/leases.held); after a
    crash the retry stages the file again and finds only what is still to do (a snapshot applied
    twice changes nothing twice). Only the rows that may change something are staged
    (services/previous_feed.py). Returns the last event id before staging and the products held
    back; None if the claim was lost."""
    with hub.engine.connect() as conn:
        try:
            with conn.execution_options(sqlite_begin="DEFERRED").begin():
                last_event = previous_feed.latest_event(conn)  # the read transaction's first read: the levels staged are as of it
                sent = previous_feed.rows_to_send(conn, upload.store_id, previous, rows)
                staged = stage_snapshot(conn, upload.store_id, sent, now.date(), means_available=means_available)
            conn.execution_options(sqlite_begin="IMMEDIATE")
            held_back_rows: set[str] = set()
            size = hub.settings.apply_part_rows
            for first in range(0, staged, size):
                let_waiting_writers_in(hub.engine)
                with conn.begin():
                    lock_store(conn, upload.store_id)
                    if not _still_ours(conn, upload.id, worker_id):
                        return None
                    applied = apply_staged_part(
                        conn, upload.store_id, upload.id, first, size, now, means_available=means_available, on_changes=on_changes
                    )
                    held_back_rows.update(applied.held_back_identifiers)
                    conn.execute(
                        uploads.update()
                        .where(uploads.c.id == upload.id)
                        .values(
                            changed_count=func.coalesce(uploads.c.changed_count, 0) + applied.changed,
                        )
                    )
            return last_event, held_back_rows
        finally:
            conn.rollback()
            with conn.execution_options(sqlite_begin="DEFERRED").begin():
                drop_staged(conn)


def _keep_rejections_in_parts(hub: Hub, upload_id: int, worker_id: str, rejections: pl.DataFrame) -> bool:
    """SQLite, many rejected rows: kept before the outcome in parts of `apply_part_rows`, each a
    short write transaction (the first clears what an interrupted attempt kept). False if the
    claim was lost."""
    rows, size = _rejection_rows(rejections, upload_id), hub.settings.apply_part_rows
    for first in range(0, rows.height, size):
        let_waiting_writers_in(hub.engine)
        with transaction(hub.engine) as conn:
            if not _still_ours(conn, upload_id, worker_id):
                return False
            if first == 0:
                conn.execute(upload_rejections.delete().where(upload_rejections.c.upload_id == upload_id))
            insert_frame(conn, upload_rejections, rows.slice(first, size))
    return True


def _rejection_rows(rejections: pl.DataFrame, upload_id: int) -> pl.DataFrame:
    return rejections.select("row", "field", "value", "reason").with_columns(upload_id=pl.lit(upload_id))


def emit_upload_processed(conn: Connection, upload_id: int, now: datetime) -> None:
    """upload.processed: the upload's final status, counts and warnings, in the transaction that records them."""
    row = conn.execute(select(uploads).where(uploads.c.id == upload_id)).one()
    record = representations.upload(row)
    data = {key: record[key] for key in ("status", "type", "source", "feed_id", "filename", "received_at", "finished_at", "counts", "warnings", "error")}
    events.emit(conn, "upload.processed", row.organization_id, row.store_id, {"upload_id": record["id"], **data}, now=now)


def _log_for_the_store(hub: Hub, store: int, upload_id: int) -> None:
    """Rewrite the store's upload_log.txt; the upload stands even if this fails."""
    try:
        write_upload_log(hub, store, upload_id)
    except OSError:
        log.exception("could not write upload_log.txt for upload %s", upload_id)


def _record_outcome(
    conn: Connection, upload_id: int, outcome: Outcome, parsed, fatal: str | None, now: datetime, warnings: list[str],
    rejections_kept: bool = False,
) -> None:
    """`parsed` is a feeds.StockFile or feeds.ProductFile: the same counts and rejections
    (`rejections_kept`: already written, in parts)."""
    is_stock = "quantity" in parsed.rows.columns
    counts = {
        "line_count": parsed.line_count,
        "valid_count": parsed.rows.height,
        "rejected_count": parsed.rejections.height - parsed.superseded_count,
        "superseded_count": parsed.superseded_count,
        "in_stock_count": parsed.rows.filter(pl.col("quantity") >= 1).height if is_stock else None,
        "warnings": json.dumps([*parsed.warnings, *warnings]),
        "skipped_count": getattr(parsed, "skipped_count", None) if is_stock else None,
        "preset": getattr(parsed, "preset", None),
    }
    if not rejections_kept:
        insert_frame(conn, upload_rejections, _rejection_rows(parsed.rejections, upload_id))
    conn.execute(
        uploads.update()
        .where(uploads.c.id == upload_id)
        .values(status=outcome.status, changed_count=outcome.changed, error=fatal, finished_at=now, lease_until=None, **counts)
    )
