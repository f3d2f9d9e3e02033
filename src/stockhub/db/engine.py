"""Engine set-up for SQLite (embedded default) and PostgreSQL, and the two ways to use it.

`transaction(engine)` is a write transaction and the unit of work of every use case: what it
writes commits together, and after the commit it rings the workers' bell when the transaction
made new work for them (`new_work(conn)`: an upload to process, a delivery to retry;
`new_work(conn, events_only=True)`: only events to number and deliver, which spares the
workers a look at every queue after each booking), so no service wakes workers by hand. On SQLite it starts with
BEGIN IMMEDIATE, so a writer takes the single write lock up front and waits for it (busy
timeout) instead of failing half-way when a read lock cannot be upgraded. `reading(engine)` is
a read-only snapshot.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from weakref import WeakKeyDictionary

try:
    import fcntl
except ImportError:  # not POSIX: waiting writers are seen within one process only
    fcntl = None

from sqlalchemy import Connection, Engine, Table, create_engine, event
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url


def make_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql":
        if parsed.drivername == "postgresql":
            url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
        # No pre-ping: it is a round trip on every checkout. A connection the server dropped fails
        # its first statement instead; SQLAlchemy then discards every pooled connection made before
        # (the API answers that request 503 with Retry-After, api/problems.py) and the next
        # checkout connects afresh.
        # psycopg prepares nothing by itself: it would run DEALLOCATE ALL after any rollback (or
        # DROP) on a connection where it had, which drops the statements db.flights prepares too.
        return create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=False, connect_args={"prepare_threshold": None})
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        _configure_sqlite(engine)
        return engine
    raise ValueError(f"unsupported database {parsed.get_backend_name()!r}: use sqlite or postgresql")


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")  # durable against a killed process in WAL mode
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(conn: Connection):
        mode = conn.get_execution_options().get("sqlite_begin", "IMMEDIATE")
        if mode is None:  # one_statement(): each statement is its own transaction
            return
        if mode != "IMMEDIATE":
            conn.exec_driver_sql(f"BEGIN {mode}")
            return
        _waiting.enter(database)
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        finally:
            _waiting.leave(database)

    database = engine.url.database if engine.url.database and engine.url.database != ":memory:" else None


class _Waiting:
    """SQLite writers waiting for a database's write lock: counted in this process, and shown to
    other processes (`stockhub serve`'s API processes and its workers) by a shared `flock` on a
    file beside the database, held while this process has any writer waiting."""

    def __init__(self):
        self._lock = threading.Lock()
        self._counts: dict[str | None, int] = {}
        self._files: dict[str, int] = {}

    def _file(self, database: str) -> int:
        if database not in self._files:
            self._files[database] = os.open(database + "-writers", os.O_RDWR | os.O_CREAT, 0o600)
        return self._files[database]

    def enter(self, database: str | None) -> None:
        with self._lock:
            self._counts[database] = self._counts.get(database, 0) + 1
            if self._counts[database] == 1 and database and fcntl:
                fcntl.flock(self._file(database), fcntl.LOCK_SH)

    def leave(self, database: str | None) -> None:
        with self._lock:
            self._counts[database] -= 1
            if self._counts[database] == 0 and database and fcntl:
                fcntl.flock(self._file(database), fcntl.LOCK_UN)

    def any(self, database: str | None) -> bool:
        with self._lock:
            if self._counts.get(database, 0):
                return True
        if not (database and fcntl):
            return False
        probe = os.open(database + "-writers", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)  # taken: no process has a writer waiting
            return False
        except BlockingIOError:
            return True
        finally:
            os.close(probe)


_waiting = _Waiting()


def let_waiting_writers_in(engine: Engine, at_most: float = 0.5) -> None:
    """Between the parts of a long SQLite job: let writers already waiting for the write lock
    (bookings, other uploads), in this process or another, take it first, for at most `at_most`
    seconds. SQLite's busy handler polls, it does not queue: without this a job that begins its
    next part at once would win the lock again and again."""
    database = engine.url.database if engine.url.database and engine.url.database != ":memory:" else None
    deadline = time.monotonic() + at_most
    while _waiting.any(database) and time.monotonic() < deadline:
        time.sleep(0.002)


def is_postgres(conn_or_engine) -> bool:
    return conn_or_engine.dialect.name == "postgresql"


def upsert(conn: Connection, table: Table):
    """INSERT with ON CONFLICT clauses, in the connection's dialect."""
    return (pg_insert if is_postgres(conn) else sqlite_insert)(table)


def insert_new(conn: Connection, table: Table, keys: list[str]):
    """INSERT … ON CONFLICT (keys) DO NOTHING: with RETURNING, no row back means it existed."""
    return upsert(conn, table).on_conflict_do_nothing(index_elements=keys)


_NEW_WORK = "stockhub.new_work"
_bells: WeakKeyDictionary[Engine, Callable[[bool], None]] = WeakKeyDictionary()


def ring_on_new_work(engine: Engine, bell: Callable[[bool], None]) -> None:
    """What to call after a transaction on `engine` that made new work commits (the Hub's bell),
    with whether that work is only events (`bell(events_only)`)."""
    _bells[engine] = bell


def new_work(conn: Connection, events_only: bool = False) -> None:
    """Mark the current transaction as one that leaves work for the workers: events to number
    and deliver only, or (the default) work in any queue."""
    conn.info[_NEW_WORK] = events_only and conn.info.get(_NEW_WORK, True)


@contextmanager
def transaction(engine: Engine) -> Iterator[Connection]:
    with engine.connect() as conn:
        conn.info.pop(_NEW_WORK, None)
        with conn.begin():
            yield conn
        events_only = conn.info.pop(_NEW_WORK, None)
        if events_only is not None and (bell := _bells.get(engine)) is not None:
            bell(events_only)


@contextmanager
def reading(engine: Engine) -> Iterator[Connection]:
    with engine.connect() as conn:
        conn = conn.execution_options(sqlite_begin="DEFERRED")
        with conn.begin():
            yield conn


@contextmanager
def one_statement(engine: Engine) -> Iterator[Connection]:
    """A read that is one statement (a single lookup): no BEGIN and no COMMIT around it, so it
    costs one round trip (autocommit; one statement always sees one snapshot)."""
    with engine.connect() as conn:
        if is_postgres(engine):
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        else:
            conn = conn.execution_options(sqlite_begin=None)
        yield conn


@contextmanager
def snapshot(engine: Engine) -> Iterator[Connection]:
    """A read-only transaction whose statements all see one snapshot (REPEATABLE READ on
    PostgreSQL; on SQLite every read transaction does)."""
    with engine.connect() as conn:
        options = {"sqlite_begin": "DEFERRED"}
        if is_postgres(engine):
            options |= {"isolation_level": "REPEATABLE READ", "postgresql_readonly": True}
        conn = conn.execution_options(**options)
        with conn.begin():
            yield conn
