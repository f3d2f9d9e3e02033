"""Applying a reported stock snapshot to a store's levels: set-based, on both engines.

The reported rows are staged in a temporary table (COPY on PostgreSQL) and joined once with
the store's levels; only the rows that differ land in a second temporary table, `changes`.
From it, small statements write

1. the ledger: a movement for every product whose count changes (new products start at 0);
2. updates: products whose count, price, currency, promotion or expiry differ;
3. touches: unchanged products last reported on an earlier day get today's date (day
   granularity, so a 15-minute re-upload rewrites nothing);
4. inserts: products the store did not have.

Products absent from the snapshot are left alone: an upload never zeroes what it does not
mention. The caller holds the store lock (db/locks.py) and the transaction.

A store's first load has nothing to diff against: its levels go straight into `stock_levels`
and the ledger is read from them (`_first_load`).

The hook (`on_changes`) gets the levels that changed as a frame of CHANGED columns: the levels
after the change, with `on_hand_before` (null: new to the store).

On SQLite, whose one write lock every writer shares, a large snapshot is instead staged and
diffed in a read transaction (`stage_snapshot`: temporary tables live in the connection's
own temp database) and applied in parts (`apply_staged_part`), each in its own short write
transaction and each diffed again under the lock, by the same statements.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import polars as pl
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Integer,
    MetaData,
    String,
    Table,
    and_,
    case,
    func,
    insert,
    literal,
    literal_column,
    or_,
    select,
    update,
)

from stockhub.db.bulk import insert_frame, read_frame
from stockhub.db.engine import is_postgres
from stockhub.db.tables import stock_levels, stock_movements, stores
from stockhub.domain.stock import MovementReason

_temporary = MetaData()


def _temp_table(name: str, *columns: Column) -> Table:
    # no keys or indexes: the feed reader already made identifiers unique, and the joins hash
    return Table(name, _temporary, *columns, prefixes=["TEMPORARY"], postgresql_on_commit="DROP")


def _reported_columns() -> list[Column]:
    return [
        Column("identifier", String(64), nullable=False),
        Column("quantity", Integer, nullable=False),
        Column("price_minor", BigInteger, nullable=False),
        Column("currency", String(3), nullable=False),
        Column("promotion_minor", BigInteger),
        Column("safety_stock", Integer),  # the product's own, when the file has the column; else null
    ]


snapshot = _temp_table("snapshot_rows", *_reported_columns())
changes = _temp_table(  # its `quantity` is the new on_hand the reported count means
    "snapshot_changes",
    *_reported_columns(),
    Column("on_hand_before", Integer),  # null: a product new to the store
    Column("committed_before", Integer),
    Column("safety_stock_before", Integer),
    Column("safety_in_force", Integer, nullable=False),  # the product's own, else the store's
    Column("override_after", Integer),
    Column("differs", Boolean, nullable=False),
    Column("held_back", Boolean, nullable=False),  # reported fewer than orders hold: kept at committed
)
staged = _temp_table("snapshot_staged", *_reported_columns())  # SQLite: a large snapshot, applied in parts
REPORTED = [column.name for column in snapshot.columns]
BULK_LOAD_ROWS = 10_000


@dataclass(frozen=True)
class Applied:
    inserted: int
    updated: int
    touched: int
    moved: int
    held_back_identifiers: tuple[str, ...] = ()  # products whose reported count was below what orders hold

    @property
    def held_back(self) -> int:
        return len(self.held_back_identifiers)

    @property
    def changed(self) -> int:
        return self.inserted + self.updated


# What the hook gets: the changed levels as they are after the change (an applied report always
# un-expires the product), with the count before (null: new to the store).
CHANGED = {
    "identifier": pl.String, "on_hand_before": pl.Int64, "on_hand": pl.Int64, "committed": pl.Int64, "safety_stock": pl.Int64,
    "expired": pl.Boolean, "price_minor": pl.Int64, "currency": pl.String, "promotion_minor": pl.Int64,
}
ChangesHook = Callable[[Connection, pl.DataFrame], None]


def in_identifier_order(frame: pl.DataFrame) -> pl.DataFrame:
    """`frame` sorted by its `identifier`, in byte order (Python's, and the C collation's)."""
    identifier = frame["identifier"]
    if identifier.flags["SORTED_ASC"]:
        return frame
    if frame.select(pl.col("identifier").str.contains(r"^[0-9]{14}$").all()).item():
        # canonical GTINs (feeds/identifiers.py): equal-length digits sort as numbers, ~4x faster than as strings
        return frame.sort(pl.col("identifier").cast(pl.Int64)).with_columns(pl.col("identifier").set_sorted())
    return frame.sort("identifier")


def _reported(rows: pl.DataFrame) -> pl.DataFrame:
    """The snapshot's columns; `safety_stock` only when the file had the column (else null: keep the product's own)."""
    if "safety_stock" not in rows.columns:
        rows = rows.with_columns(safety_stock=pl.lit(None, pl.Int64))
    return rows.select(REPORTED)


def apply_snapshot(
    conn: Connection,
    store_id: int,
    upload_id: int | None,
    rows: pl.DataFrame,
    now: datetime,
    *,
    means_available: bool = False,
    on_changes: ChangesHook | None = None,
) -> Applied:
    """`rows` hold reported counts in `quantity`; `means_available`: they count units available to
    sell. `on_changes(conn, changed)` gets the changed levels (CHANGED columns)."""
    conn = conn.execution_options(preserve_rowcount=True)  # rowcount of INSERT ... SELECT too
    if is_postgres(conn):
        conn.exec_driver_sql("SET LOCAL work_mem = '64MB'")  # the join's hash table fits in memory
    if not _has_levels(conn, store_id):
        return _first_load(conn, store_id, upload_id, rows, now, means_available, on_changes)
    _create(conn, snapshot, changes)
    insert_frame(conn, snapshot, _reported(rows))
    applied = _apply_snapshot_table(conn, store_id, upload_id, now, means_available, on_changes)
    for table in (snapshot, changes):
        table.drop(conn)
    return applied


def _has_levels(conn: Connection, store_id: int) -> bool:
    return conn.execute(select(literal(1)).where(stock_levels.c.store_id == store_id).limit(1)).first() is not None


def _store_safety_stock(conn: Connection, store_id: int) -> int:
    return conn.execute(select(stores.c.safety_stock).where(stores.c.id == store_id)).scalar() or 0


def _first_load(
    conn: Connection, store_id: int, upload_id: int | None, rows: pl.DataFrame, now: datetime, means_available: bool, on_changes: ChangesHook | None
) -> Applied:
    """A store with no levels: every product is new, so the levels `_find_changes` and
    `_write_changes` would write go straight in (in identifier order: the key's index is
    appended to, not scattered), the ledger is read back from them, and the hook gets them
    without a read. Tests hold the two paths to the same levels, ledger and changes."""
    levels = _first_levels(rows, store_id, _store_safety_stock(conn, store_id), means_available, now)
    insert_frame(conn, stock_levels, levels)
    level = stock_levels.c
    moved = conn.execute(
        insert(stock_movements).from_select(
            ["store_id", "identifier", "reason", "on_hand_before", "on_hand_after", "committed_before", "committed_after", "upload_id", "created_at"],
            select(
                level.store_id, level.identifier, literal(MovementReason.FEED.value), literal(0), level.on_hand, literal(0), literal(0),
                literal(upload_id, BigInteger), literal(now, stock_movements.c.created_at.type),
            ).where(level.store_id == store_id, level.on_hand != 0),  # a new product starts at 0
        )
    ).rowcount
    _analyze_after_bulk_load(conn, levels.height)
    if on_changes is not None:
        on_changes(conn, levels.select(pl.col("identifier"), pl.lit(None, pl.Int64).alias("on_hand_before"), *list(CHANGED)[2:]))
    return Applied(levels.height, 0, 0, moved)


def _first_levels(rows: pl.DataFrame, store_id: int, store_safety_stock: int, means_available: bool, now: datetime) -> pl.DataFrame:
    """The levels of a store's first load, in identifier order: committed 0, so
    domain.stock.reported_on_hand is the reported count (a count of available units: at least 0),
    nothing held back."""
    reported = _reported(rows)
    quantity = pl.col("quantity").clip(lower_bound=0) if means_available else pl.col("quantity")
    return in_identifier_order(reported).select(
        pl.lit(store_id, pl.Int64).alias("store_id"),
        "identifier",
        quantity.alias("on_hand"),
        pl.lit(0, pl.Int64).alias("committed"),
        pl.col("safety_stock").fill_null(store_safety_stock).alias("safety_stock"),  # the product's own, else the store's
        pl.col("safety_stock").alias("safety_stock_override"),
        "price_minor",
        "currency",
        "promotion_minor",
        pl.lit(now.date()).alias("last_reported_on"),
        pl.lit(False).alias("expired"),
        pl.lit(now).dt.convert_time_zone("UTC").alias("updated_at"),
    )


def _analyze_after_bulk_load(conn: Connection, inserted: int) -> None:
    if is_postgres(conn) and inserted >= BULK_LOAD_ROWS:
        # A store's first big load: refresh statistics now rather than when autovacuum gets to it,
        # or the next upload's join is planned for a near-empty table. The join needs the row
        # count and how many rows a store has, not fine histograms: the key's columns from a
        # 3,000-row sample (~0.03 s at 200,000 rows, against ~0.2 s for every column from 30,000).
        conn.exec_driver_sql("SET LOCAL default_statistics_target = 10")  # until the commit
        conn.exec_driver_sql(f"ANALYZE {stock_levels.name} (store_id, identifier)")


# --- SQLite: a large snapshot in parts, each its own short write transaction -----------------


def stage_snapshot(conn: Connection, store_id: int, rows: pl.DataFrame, today, *, means_available: bool = False) -> int:
    """Stage a snapshot for `apply_staged_part`, in a read transaction (SQLite: temporary tables
    live in the connection's own temp database, so this takes no write lock). Keeps, in
    identifier order, only the rows that may change something — new, different, stale or held
    back — against the levels as they are now; returns how many (the parts are `range(0, n, size)`)."""
    conn = conn.execution_options(preserve_rowcount=True)
    _create(conn, snapshot, changes, staged)
    insert_frame(conn, snapshot, _reported(rows))
    _find_changes(conn, store_id, today, means_available)
    s = snapshot.c
    kept = conn.execute(
        insert(staged).from_select(
            REPORTED, select(*s).where(s.identifier.in_(select(changes.c.identifier))).order_by(s.identifier)
        )
    ).rowcount
    conn.execute(snapshot.delete())
    conn.execute(changes.delete())
    return kept


def apply_staged_part(
    conn: Connection,
    store_id: int,
    upload_id: int | None,
    first: int,
    size: int,
    now: datetime,
    *,
    means_available: bool = False,
    on_changes: ChangesHook | None = None,
) -> Applied:
    """Apply staged rows first..first+size-1 (0-based, identifier order) in the caller's write
    transaction, exactly as `apply_snapshot` applies a whole one: the diff is taken again under
    the lock, against the levels as they are then (bookings may have moved them meanwhile)."""
    conn = conn.execution_options(preserve_rowcount=True)
    st = staged.c
    part = select(*st).where(literal_column("rowid").between(first + 1, first + size))  # rowids 1..n in insertion order
    conn.execute(insert(snapshot).from_select(REPORTED, part))
    applied = _apply_snapshot_table(conn, store_id, upload_id, now, means_available, on_changes)
    conn.execute(snapshot.delete())
    conn.execute(changes.delete())
    return applied


def drop_staged(conn: Connection) -> None:
    for table in (snapshot, changes, staged):
        table.drop(conn, checkfirst=True)


def _create(conn: Connection, *tables: Table) -> None:
    for table in tables:
        table.drop(conn, checkfirst=True)
        table.create(conn)


def _apply_snapshot_table(
    conn: Connection, store_id: int, upload_id: int | None, now: datetime, means_available: bool, on_changes: ChangesHook | None
) -> Applied:
    """Apply the rows in `snapshot`: the diff into `changes`, then the ledger, updates, touches, inserts."""
    held_back = _find_changes(conn, store_id, now.date(), means_available)
    return _write_changes(conn, store_id, upload_id, now, held_back, on_changes)


def _write_changes(
    conn: Connection, store_id: int, upload_id: int | None, now: datetime, held_back: tuple[str, ...], on_changes: ChangesHook | None
) -> Applied:
    """The rows in `changes` written: the ledger, updates, touches, inserts; then the hook."""
    today = now.date()
    c = changes.c
    is_new = c.on_hand_before.is_(None)
    moved = conn.execute(
        insert(stock_movements).from_select(
            ["store_id", "identifier", "reason", "on_hand_before", "on_hand_after", "committed_before", "committed_after", "upload_id", "created_at"],
            select(
                literal(store_id),
                c.identifier,
                literal(MovementReason.FEED.value),
                func.coalesce(c.on_hand_before, 0),
                c.quantity,
                func.coalesce(c.committed_before, 0),
                func.coalesce(c.committed_before, 0),
                literal(upload_id, BigInteger),
                literal(now, stock_movements.c.created_at.type),
            ).where(c.quantity != func.coalesce(c.on_hand_before, 0)),
        )
    ).rowcount

    updated, touched = _update_levels(conn, store_id, today, now)
    inserted = conn.execute(
        insert(stock_levels).from_select(
            ["store_id", "identifier", "on_hand", "committed", "safety_stock", "safety_stock_override", "price_minor", "currency", "promotion_minor", "last_reported_on", "expired", "updated_at"],
            select(
                literal(store_id),
                c.identifier,
                c.quantity,
                literal(0),
                c.safety_in_force,
                c.override_after,
                c.price_minor,
                c.currency,
                c.promotion_minor,
                literal(today, stock_levels.c.last_reported_on.type),
                literal(False),
                literal(now, stock_levels.c.updated_at.type),
            ).where(is_new),
        )
    ).rowcount

    _analyze_after_bulk_load(conn, inserted)
    if on_changes is not None:
        on_changes(conn, _changed_levels(conn) if inserted + updated else pl.DataFrame(schema=CHANGED))
    return Applied(inserted, updated, touched, moved, held_back)


def _changed_levels(conn: Connection) -> pl.DataFrame:
    """The hook's frame: the levels the rows in `changes` that differ were written as."""
    c = changes.c
    query = select(
        c.identifier,
        c.on_hand_before,
        c.quantity.label("on_hand"),
        func.coalesce(c.committed_before, 0).label("committed"),
        c.safety_in_force.label("safety_stock"),
        literal(False).label("expired"),  # an applied report always un-expires the product
        c.price_minor,
        c.currency,
        c.promotion_minor,
    ).where(c.differs)
    return read_frame(conn, query, CHANGED)


def _update_levels(conn: Connection, store_id: int, today, now: datetime) -> tuple[int, int]:
    """Products the store had: the different updated, the unchanged but stale touched."""
    c = changes.c
    is_new = c.on_hand_before.is_(None)
    this_store = and_(stock_levels.c.store_id == store_id, stock_levels.c.identifier == c.identifier)
    updated = conn.execute(
        update(stock_levels)
        .where(this_store, ~is_new, c.differs)
        .values(
            on_hand=c.quantity,
            price_minor=c.price_minor,
            currency=c.currency,
            promotion_minor=c.promotion_minor,
            safety_stock=c.safety_in_force,
            safety_stock_override=c.override_after,
            expired=False,
            last_reported_on=today,
            updated_at=now,
        )
    ).rowcount
    touched = conn.execute(
        update(stock_levels).where(this_store, ~is_new, ~c.differs).values(last_reported_on=today)
    ).rowcount
    return updated, touched


def _find_changes(conn: Connection, store_id: int, today, means_available: bool) -> tuple[str, ...]:
    """One join of the snapshot with the store's levels; keep the new, the different, the stale and
    the held back. Returns the products held back."""
    s, level = snapshot.c, stock_levels.c
    default = _store_safety_stock(conn, store_id)
    safety = func.coalesce(s.safety_stock, level.safety_stock, default)  # a new product takes the store's
    override = func.coalesce(s.safety_stock, level.safety_stock_override)
    on_hand = _reported_on_hand(s.quantity, func.coalesce(level.committed, 0), means_available)
    held_back = literal(False) if means_available else func.coalesce(level.committed, 0) > _at_least_zero(s.quantity)
    differs = or_(
        level.on_hand != on_hand,
        level.price_minor != s.price_minor,
        level.currency != s.currency,
        level.promotion_minor.is_distinct_from(s.promotion_minor),
        level.expired.is_(True),
        level.safety_stock != safety,
        level.safety_stock_override.is_distinct_from(override),
    )
    joined = snapshot.outerjoin(stock_levels, and_(level.store_id == store_id, level.identifier == s.identifier))
    conn.execute(
        insert(changes).from_select(
            [*REPORTED, "on_hand_before", "committed_before", "safety_stock_before", "safety_in_force", "override_after", "differs", "held_back"],
            select(
                s.identifier,
                on_hand,
                s.price_minor,
                s.currency,
                s.promotion_minor,
                s.safety_stock,
                level.on_hand,
                level.committed,
                level.safety_stock,
                safety,
                override,
                func.coalesce(differs, True),
                func.coalesce(held_back, False),
            )
            .select_from(joined)
            .where(or_(level.identifier.is_(None), differs, level.last_reported_on < today, held_back)),
        )
    )
    return tuple(conn.execute(select(changes.c.identifier).where(changes.c.held_back)).scalars())


def _at_least_zero(value):
    return case((value > 0, value), else_=0)


def _reported_on_hand(reported, committed, means_available: bool):
    """domain.stock.reported_on_hand, set-based (tests/db hold the two to the same answers)."""
    if means_available:
        return _at_least_zero(reported) + committed
    return case((committed > _at_least_zero(reported), committed), else_=reported)
