"""Ingest an upload: parse and validate the file, then apply it to the store's stock in one transaction."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

import polars as pl
from sqlalchemy import Connection, select

from stockhub import feeds
from stockhub.db.bulk import insert_frame
from stockhub.db.engine import reading, transaction
from stockhub.db.locks import lock_store
from stockhub.db.stock_apply import apply_snapshot
from stockhub.db.tables import stores, upload_rejections, uploads
from stockhub.services.context import Hub

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    status: str
    changed: int = 0


def process_upload(hub: Hub, upload_id: int, worker_id: str) -> Outcome | None:
    """Process a claimed upload. Returns None when the claim was lost (another worker owns it now)."""
    with reading(hub.engine) as conn:
        upload = conn.execute(select(uploads).where(uploads.c.id == upload_id)).one()
        store = conn.execute(select(stores.c.currency, stores.c.feed_quantity_means).where(stores.c.id == upload.store_id)).one()
    currency = store.currency
    if upload.kind != "stock":
        parsed, fatal = None, "custom product data (products.csv) is not processed yet: only stock files are"
    else:
        data = open(upload.path, "rb").read()
        parsed = feeds.read_stock_file(data, default_currency=currency, invalid_threshold=hub.settings.invalid_threshold)
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
        if fatal is None:
            applied = apply_snapshot(
                conn, upload.store_id, upload_id, parsed.rows, now, means_available=store.feed_quantity_means == "available"
            )
            changed = applied.changed
            if applied.held_back:
                warnings.append(
                    f"{applied.held_back} products reported fewer units than are committed to open orders:"
                    " their on_hand was kept at the committed quantity, so none of them is available"
                )
        outcome = Outcome("invalid" if fatal else "applied", changed)
        _record_outcome(conn, upload_id, outcome, parsed, fatal, now, warnings)
    return outcome


def _record_outcome(
    conn: Connection, upload_id: int, outcome: Outcome, parsed, fatal: str | None, now: datetime, warnings: list[str]
) -> None:
    counts = {}
    if parsed is not None:
        rejected = parsed.rejections.height - parsed.superseded_count
        counts = {
            "line_count": parsed.line_count,
            "valid_count": parsed.rows.height,
            "rejected_count": rejected,
            "superseded_count": parsed.superseded_count,
            "in_stock_count": parsed.rows.filter(pl.col("quantity") >= 1).height,
            "warnings": json.dumps([*parsed.warnings, *warnings]),
        }
        insert_frame(conn, upload_rejections, parsed.rejections.select("row", "field", "value", "reason").with_columns(upload_id=pl.lit(upload_id)))
    conn.execute(
        uploads.update()
        .where(uploads.c.id == upload_id)
        .values(status=outcome.status, changed_count=outcome.changed, error=fatal, finished_at=now, lease_until=None, **counts)
    )
