"""Applying a reported stock snapshot to a store's levels: set-based, on both engines.

The reported rows are staged in a temporary table (COPY on PostgreSQL), then four statements
do the diff where the data lives, instead of shipping the store's whole stock to Python:

1. ledger: a movement for every product whose count changes (new products start from 0);
2. update: products whose count, price, currency, promotion or expiry differ;
3. touch: unchanged products last reported on an earlier day get today's date (day
   granularity, so a 15-minute re-upload rewrites nothing);
4. insert: products the store did not have.

Products absent from the snapshot are left alone: an upload never zeroes what it does not
mention. The caller holds the store lock (db/locks.py) and the transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import polars as pl
from sqlalchemy import BigInteger, Column, Connection, Integer, MetaData, String, Table, and_, exists, func, insert, literal, or_, select, update

from stockhub.db.bulk import insert_frame
from stockhub.db.engine import is_postgres
from stockhub.db.tables import stock_levels, stock_movements
from stockhub.domain.stock import MovementReason

snapshot = Table(
    "snapshot_rows",
    MetaData(),
    Column("identifier", String(40), primary_key=True),
    Column("quantity", Integer, nullable=False),
    Column("price_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("promotion_minor", BigInteger),
    prefixes=["TEMPORARY"],
    postgresql_on_commit="DROP",
)
REPORTED = [column.name for column in snapshot.columns]
BULK_LOAD_ROWS = 10_000


@dataclass(frozen=True)
class Applied:
    inserted: int
    updated: int
    touched: int
    moved: int

    @property
    def changed(self) -> int:
        return self.inserted + self.updated


def apply_snapshot(conn: Connection, store_id: int, upload_id: int | None, rows: pl.DataFrame, now: datetime) -> Applied:
    conn = conn.execution_options(preserve_rowcount=True)  # rowcount of INSERT ... SELECT too
    snapshot.drop(conn, checkfirst=True)
    snapshot.create(conn)
    insert_frame(conn, snapshot, rows.select(REPORTED))
    today = now.date()
    level = stock_levels.c
    s = snapshot.c
    this_store = and_(level.store_id == store_id, level.identifier == s.identifier)

    if is_postgres(conn):
        conn.exec_driver_sql("SET LOCAL work_mem = '64MB'")  # the diff's hash joins fit in memory
        conn.exec_driver_sql(f"ANALYZE {snapshot.name}")  # temp tables have no statistics: plan the joins right

    current = stock_levels.alias("current")
    joined = snapshot.outerjoin(current, and_(current.c.store_id == store_id, current.c.identifier == s.identifier))
    on_hand_before = func.coalesce(current.c.on_hand, 0)
    committed_before = func.coalesce(current.c.committed, 0)
    moved = conn.execute(
        insert(stock_movements).from_select(
            ["store_id", "identifier", "reason", "on_hand_before", "on_hand_after", "committed_before", "committed_after", "upload_id", "created_at"],
            select(
                literal(store_id),
                s.identifier,
                literal(MovementReason.FEED.value),
                on_hand_before,
                s.quantity,
                committed_before,
                committed_before,
                literal(upload_id, BigInteger),
                literal(now, stock_movements.c.created_at.type),
            )
            .select_from(joined)
            .where(s.quantity != on_hand_before),
        )
    ).rowcount

    differs = or_(
        level.on_hand != s.quantity,
        level.price_minor != s.price_minor,
        level.currency != s.currency,
        level.promotion_minor.is_distinct_from(s.promotion_minor),
        level.expired.is_(True),
    )
    updated = conn.execute(
        update(stock_levels)
        .where(this_store, differs)
        .values(
            on_hand=s.quantity,
            price_minor=s.price_minor,
            currency=s.currency,
            promotion_minor=s.promotion_minor,
            expired=False,
            last_reported_on=today,
            updated_at=now,
        )
    ).rowcount
    touched = conn.execute(
        update(stock_levels).where(this_store, level.last_reported_on < today).values(last_reported_on=today)
    ).rowcount

    known = exists().where(level.store_id == store_id, level.identifier == s.identifier)
    inserted = conn.execute(
        insert(stock_levels).from_select(
            ["store_id", "identifier", "on_hand", "committed", "safety_stock", "price_minor", "currency", "promotion_minor", "last_reported_on", "expired", "updated_at"],
            select(
                literal(store_id),
                s.identifier,
                s.quantity,
                literal(0),
                literal(0),
                s.price_minor,
                s.currency,
                s.promotion_minor,
                literal(today, stock_levels.c.last_reported_on.type),
                literal(False),
                literal(now, stock_levels.c.updated_at.type),
            ).where(~known),
        )
    ).rowcount
    if is_postgres(conn) and inserted >= BULK_LOAD_ROWS:
        # A store's first big load: refresh statistics now rather than when autovacuum gets to it,
        # or the next upload's diff is planned for a near-empty table (nested loops, ten times slower).
        conn.exec_driver_sql(f"ANALYZE {stock_levels.name}")
    snapshot.drop(conn)
    return Applied(inserted, updated, touched, moved)
