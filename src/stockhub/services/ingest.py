"""Ingest an upload: parse and validate the file, then apply it to the store's stock in one transaction."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
from sqlalchemy import Connection, select

from stockhub import feeds
from stockhub.db.bulk import insert_frame
from stockhub.db.engine import reading, transaction
from stockhub.db.locks import lock_store
from stockhub.db.stock_apply import apply_snapshot
from stockhub.db.tables import stores, upload_rejections, uploads
from stockhub.services import events, store_status
from stockhub.services.catalog import apply_products
from stockhub.services.context import Hub
from stockhub.services.upload_log import write_upload_log
from stockhub.services.uploads import render_upload

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
            select(stores.c.currency, stores.c.custom_products, stores.c.feed_quantity_means).where(stores.c.id == upload.store_id)
        ).one()
    data = Path(upload.path).read_bytes()
    threshold = hub.settings.invalid_threshold
    if upload.kind == "products":
        parsed = feeds.read_product_file(data, custom_identifiers=store.custom_products, invalid_threshold=threshold)
    else:
        parsed = feeds.read_stock_file(
            data, default_currency=store.currency, invalid_threshold=threshold, custom_identifiers=store.custom_products
        )
    fatal = parsed.invalid_reason
    now = datetime.now(UTC)
    with transaction(hub.engine) as conn:
        lock_store(conn, upload.store_id)
        still_ours = conn.execute(
            select(uploads.c.id).where(
                uploads.c.id == upload_id, uploads.c.status == "processing", uploads.c.worker_id == worker_id
            )
        ).first()
        if still_ours is None:
            return None
        changed, warnings = 0, []
        if fatal is None and upload.kind == "products":
            changed = apply_products(conn, upload.organization_id, upload.store_id, upload_id, parsed.rows, now)
        elif fatal is None:

            def inventory_updated(conn, changes, count):
                events.emit_inventory_changes(conn, upload.organization_id, upload.store_id, upload_id, changes, count, now)

            applied = apply_snapshot(
                conn,
                upload.store_id,
                upload_id,
                parsed.rows,
                now,
                means_available=store.feed_quantity_means == "available",
                on_changes=inventory_updated,
            )
            changed = applied.changed
            if applied.held_back:
                warnings.append(
                    f"{applied.held_back} products reported fewer units than are committed to open orders:"
                    " their on_hand was kept at the committed quantity, so none of them is available"
                )
        outcome = Outcome("invalid" if fatal else "applied", changed)
        _record_outcome(conn, upload_id, outcome, parsed, fatal, now, warnings)
        emit_upload_processed(conn, upload_id, now)
        store_status.refresh(conn, hub.settings, upload.store_id, now)
    _log_for_the_store(hub, upload.store_id, upload_id)
    return outcome


def emit_upload_processed(conn: Connection, upload_id: int, now: datetime) -> None:
    """upload.processed: the upload's final status, counts and warnings, in the transaction that records them."""
    row = conn.execute(select(uploads).where(uploads.c.id == upload_id)).one()
    record = render_upload(row)
    data = {key: record[key] for key in ("status", "type", "source", "filename", "received_at", "finished_at", "counts", "warnings", "error")}
    events.emit(conn, "upload.processed", row.organization_id, row.store_id, {"upload_id": record["id"], **data}, now=now)


def _log_for_the_store(hub: Hub, store: int, upload_id: int) -> None:
    """Rewrite the store's upload_log.txt; the upload stands even if this fails."""
    try:
        write_upload_log(hub, store, upload_id)
    except OSError:
        log.exception("could not write upload_log.txt for upload %s", upload_id)


def _record_outcome(
    conn: Connection, upload_id: int, outcome: Outcome, parsed, fatal: str | None, now: datetime, warnings: list[str]
) -> None:
    """`parsed` is a feeds.StockFile or feeds.ProductFile: the same counts and rejections."""
    is_stock = "quantity" in parsed.rows.columns
    counts = {
        "line_count": parsed.line_count,
        "valid_count": parsed.rows.height,
        "rejected_count": parsed.rejections.height - parsed.superseded_count,
        "superseded_count": parsed.superseded_count,
        "in_stock_count": parsed.rows.filter(pl.col("quantity") >= 1).height if is_stock else None,
        "warnings": json.dumps([*parsed.warnings, *warnings]),
    }
    insert_frame(conn, upload_rejections, parsed.rejections.select("row", "field", "value", "reason").with_columns(upload_id=pl.lit(upload_id)))
    conn.execute(
        uploads.update()
        .where(uploads.c.id == upload_id)
        .values(status=outcome.status, changed_count=outcome.changed, error=fatal, finished_at=now, lease_until=None, **counts)
    )
