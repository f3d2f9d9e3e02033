"""A re-ingest in proportion to what changed: each store's last applied stock file is kept, and
the next file sends the database only the rows that may change something.

After a stock file applies, its reported rows (the columns db/stock_apply.py diffs, and whether
each was held back) are kept in storage as `previous/<store>/<upload>.arrow`, and the store's
`previous_feeds` row, written in the transaction that applied the file, names them with the last
event id that transaction could see (`event_watermark`). The next file of the store is diffed
against them in the worker, and the apply gets only

- the rows new to the kept file or different from it in a reported column;
- the rows held back last time (reported fewer units than orders hold): they are counted, and
  touched, again;
- the rows whose level another writer changed since. Every change of a level commits with an
  inventory.updated naming it (the outbox), and every writer of a store's stock waits for the
  store lock an upload holds (db/locks.py), so those are the identifiers in the store's events
  after the watermark (ids are handed out in order, and the watermark, at or after the applying
  upload's own upload.processed, outlives the cached file: purging keeps the last
  `event_retention_days`).

Every other row of the file reports what the last apply reported, onto a level no one changed
since, the same day: the full diff would find it not new, not different, not stale and not held
back, and do nothing with it. So the levels, ledger, events and counts are the full diff's
(tests/db/test_previous_feed.py holds the two paths to each other). Products absent from the
file change nothing either way; what reads the whole file (a pull feed's missing items, the
counts) still gets the whole file.

Without a usable kept file the whole file is sent, as before: the store's first file, a file on
another UTC day than the last (unchanged rows are touched once a day), the store's quantities
meaning something else since, another upload applied since, the kept file lost or unreadable.
"""

from __future__ import annotations

import io
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from weakref import WeakKeyDictionary
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

import polars as pl
from sqlalchemy import Connection, Engine, func, select

from stockhub.db.engine import is_postgres, reading, upsert
from stockhub.db.stock_apply import REPORTED
from stockhub.db.availability import changed_in
from stockhub.db.tables import events, previous_feeds
from stockhub.services.context import Hub

log = logging.getLogger(__name__)

KEPT = {
    "identifier": pl.String,
    "quantity": pl.Int64,
    "price_minor": pl.Int64,
    "currency": pl.String,
    "promotion_minor": pl.Int64,
    "safety_stock": pl.Int64,
    "held_back": pl.Boolean,
}
assert list(KEPT)[:-1] == REPORTED


@dataclass(frozen=True)
class Previous:
    """A store's last applied file, as kept."""

    upload_id: int
    event_watermark: int
    rows: pl.DataFrame  # KEPT


def _key(store_id: int, upload_id: int) -> str:
    return f"previous/{store_id}/{upload_id}.arrow"


def load(hub: Hub, store_id: int, means_available: bool, now: datetime) -> Previous | None:
    """The store's kept file, if the next file applied at `now` may be diffed against it."""
    with reading(hub.engine) as conn:
        row = conn.execute(select(previous_feeds).where(previous_feeds.c.store_id == store_id)).first()
    if row is None or row.means_available != means_available or row.applied_at.date() != now.date():
        return None
    if now - row.applied_at >= timedelta(days=hub.settings.event_retention_days):  # events since may be purged
        return None
    rows = _kept(hub).recalled(store_id, row.upload_id)
    if rows is None:
        try:
            with hub.storage.local_copy(_key(store_id, row.upload_id)) as path:
                rows = pl.read_ipc(path)
        except FileNotFoundError:
            return None
        except Exception:  # an unreadable copy costs a full diff, never the upload
            log.exception("could not read the kept file of store %s (upload %s)", store_id, row.upload_id)
            return None
    if rows.schema != pl.Schema(KEPT):
        return None
    return Previous(row.upload_id, row.event_watermark, rows)


def rows_to_send(conn: Connection, store_id: int, previous: Previous | None, rows: pl.DataFrame) -> pl.DataFrame:
    """The rows of the file (a StockFile's `rows`) the apply needs: all of them without a usable
    kept file. Read where the apply reads the levels: under the store's lock, or in the read
    transaction that stages the file (SQLite's large files)."""
    if previous is None:
        return rows
    p = previous_feeds.c
    current = conn.execute(select(p.upload_id, p.event_watermark).where(p.store_id == store_id)).first()
    if current is None or (current.upload_id, current.event_watermark) != (previous.upload_id, previous.event_watermark):
        return rows  # another upload applied since
    touched = conn.execute(changed_in(conn, events.c.store_id == store_id, events.c.id > previous.event_watermark)).scalars().all()
    may_change = _differs(reported(rows), previous.rows)
    if touched:
        may_change |= rows.get_column("identifier").is_in(pl.Series(touched, dtype=pl.String).implode())
    return rows.filter(may_change)


def _differs(new: pl.DataFrame, kept: pl.DataFrame) -> pl.Series:
    """Per row of `new`: new to `kept`, different from it in a reported column, or held back in it."""
    if new.get_column("identifier").equals(kept.get_column("identifier")):  # the same products in the same order: no join
        before = {name: kept.get_column(name) for name in KEPT}
    else:
        new = new.join(kept, on="identifier", how="left", suffix="_kept", maintain_order="left")
        before = {name: pl.col(f"{name}_kept") for name in REPORTED[1:]} | {"held_back": pl.col("held_back").fill_null(True)}
    differs = pl.any_horizontal([~pl.col(name).eq_missing(before[name]) for name in REPORTED[1:]])
    return new.select(differs | before["held_back"]).to_series()


@contextmanager
def probing(conn: Connection, sent: pl.DataFrame, rows: pl.DataFrame) -> Iterator[None]:
    """PostgreSQL, while the apply joins what was sent with the store's levels: when that is at
    most a tenth of the file, by index probes of those levels rather than by hashing all of
    them, which the planner's costs (pages on disk) prefer from a few thousand rows on, and
    which takes 3 times as long with the levels in memory."""
    few = is_postgres(conn) and sent.height * 10 <= rows.height
    if few:
        conn.exec_driver_sql("SET LOCAL enable_hashjoin = off")
        conn.exec_driver_sql("SET LOCAL enable_mergejoin = off")
    yield
    if few:
        conn.exec_driver_sql("SET LOCAL enable_hashjoin TO DEFAULT")
        conn.exec_driver_sql("SET LOCAL enable_mergejoin TO DEFAULT")


def reported(rows: pl.DataFrame) -> pl.DataFrame:
    """The columns the apply diffs (db/stock_apply.REPORTED), `safety_stock` null when the file has none."""
    if "safety_stock" not in rows.columns:
        rows = rows.with_columns(safety_stock=pl.lit(None, pl.Int64))
    return rows.select(REPORTED).cast({name: dtype for name, dtype in KEPT.items() if name in REPORTED})


def latest_event(conn: Connection) -> int:
    return conn.execute(select(func.max(events.c.id))).scalar() or 0


def record(conn: Connection, store_id: int, upload_id: int, now: datetime, means_available: bool, event_watermark: int) -> int | None:
    """In the transaction that applied the upload: its file is the store's previous file (kept
    after commit, by `keep`). Returns the upload whose file it replaces."""
    replaced = conn.execute(select(previous_feeds.c.upload_id).where(previous_feeds.c.store_id == store_id)).scalar()
    values = dict(upload_id=upload_id, applied_at=now, event_watermark=event_watermark, means_available=means_available)
    statement = upsert(conn, previous_feeds).values(store_id=store_id, **values)
    conn.execute(statement.on_conflict_do_update(index_elements=["store_id"], set_=values))
    return replaced


def forget(conn: Connection, store_id: int) -> None:
    """The store's next file is diffed in full."""
    conn.execute(previous_feeds.delete().where(previous_feeds.c.store_id == store_id))


def event_exists(conn: Connection, event_id: int) -> bool:
    return event_id == 0 or conn.execute(select(events.c.id).where(events.c.id == event_id)).first() is not None


def keep(hub: Hub, store_id: int, upload_id: int, rows: pl.DataFrame, held_back: set[str], replacing: int | None) -> None:
    """After the apply committed: keep its file for the next one (and forget the one it
    replaces). The file is written beside the worker's next steps, and this process remembers
    the rows meanwhile; a failure only costs the next file a full diff."""
    frame = reported(rows).with_columns(held_back=pl.col("identifier").is_in(pl.Series(sorted(held_back), dtype=pl.String).implode()))
    _kept(hub).keep(hub, store_id, upload_id, frame, replacing)


def wait_kept(hub: Hub) -> None:
    """Until the files being kept are written (tests; a process about to end need not wait)."""
    _kept(hub).wait()


def forget_kept(hub: Hub) -> None:
    """Forget the rows this process remembers (as a restarted process would)."""
    _kept(hub).wait()
    _by_database.pop(hub.engine, None)


class _Kept:
    """This process's kept files: the last few stores' rows in memory, and their writing to
    storage on one thread of its own."""

    MEMORY_ROWS = 1_000_000  # rows remembered across stores (~70 MB), the least recently kept forgotten first

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._memory: OrderedDict[int, tuple[int, pl.DataFrame]] = OrderedDict()
        self._writer: ThreadPoolExecutor | None = None
        self._writing: dict[int, Future] = {}
        self._pid = os.getpid()

    def _forked(self) -> None:
        if self._pid != os.getpid():  # a forked process has none of its parent's threads
            self._lock, self._memory, self._writer, self._writing, self._pid = threading.Lock(), OrderedDict(), None, {}, os.getpid()

    def keep(self, hub: Hub, store_id: int, upload_id: int, frame: pl.DataFrame, replacing: int | None) -> None:
        self._forked()
        with self._lock:
            self._memory.pop(store_id, None)
            self._memory[store_id] = (upload_id, frame)
            while sum(kept.height for _, kept in self._memory.values()) > self.MEMORY_ROWS and len(self._memory) > 1:
                self._memory.popitem(last=False)
            if self._writer is None:
                self._writer = ThreadPoolExecutor(1, thread_name_prefix="stockhub-keep")
            self._writing = {store: future for store, future in self._writing.items() if not future.done()}  # one per store ever, else
            self._writing[store_id] = self._writer.submit(_write, hub, store_id, upload_id, frame, replacing)

    def recalled(self, store_id: int, upload_id: int) -> pl.DataFrame | None:
        """The store's rows of that upload if this process kept them; else waits for their file being written."""
        self._forked()
        with self._lock:
            remembered = self._memory.get(store_id)
            writing = self._writing.get(store_id)
        if remembered is not None and remembered[0] == upload_id:
            return remembered[1]
        if writing is not None:
            wait([writing])
        return None

    def wait(self) -> None:
        self._forked()
        with self._lock:
            writing = list(self._writing.values())
        wait(writing)


def _write(hub: Hub, store_id: int, upload_id: int, frame: pl.DataFrame, replacing: int | None) -> None:
    buffer = io.BytesIO()
    try:
        frame.write_ipc(buffer)
        hub.storage.put(_key(store_id, upload_id), buffer.getvalue())
        if replacing is not None and replacing != upload_id:
            hub.storage.delete(_key(store_id, replacing))
    except Exception:
        log.exception("could not keep the applied file of upload %s", upload_id)


_by_database: WeakKeyDictionary[Engine, _Kept] = WeakKeyDictionary()  # one per database: tests open many


def _kept(hub: Hub) -> _Kept:
    with _by_database_lock:
        return _by_database.setdefault(hub.engine, _Kept())


_by_database_lock = threading.Lock()
