"""Statements sent together: on PostgreSQL in one network round trip, their results read after.

A booking's statements wait on each other's answers only twice (the locks, then the writes), so
they go in two flights instead of six round trips. A flight queues its statements in libpq's
pipeline and sends them when it lands: at the `with` block's end, or at `commit`, which ends the
flight with the transaction. SQLAlchemy has no pipeline, so here a Core statement is compiled
once per dialect, prepared once per connection, and run on the transaction's own psycopg
connection with SQLAlchemy's type processing; a database error comes back as SQLAlchemy's
(IntegrityError, OperationalError, ...). On SQLite (in process: a statement costs no round
trip) each statement simply runs when sent.

    with Flight(conn) as flight:
        stores = flight.send(query, params)
        levels = flight.send(other_query, other_params)
    stores.rows(), levels.rows()          # once the flight has landed
"""

from __future__ import annotations

import itertools
import re
from collections import namedtuple
from dataclasses import dataclass
from typing import Any
from weakref import WeakKeyDictionary

import psycopg
import sqlalchemy.exc
from psycopg import errors, pq
from psycopg.adapt import PyFormat, Transformer
from psycopg.waiting import Ready, Wait
from sqlalchemy import Connection, Table, any_, bindparam, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql import ColumnElement, Executable

from stockhub.db.engine import is_postgres
from stockhub.db.tables import as_stored

COUNTS = {"flights": 0, "statements": 0, "begun": 0, "committed": 0}  # for benchmarks' round trips (bench/common.py)


@dataclass(frozen=True)
class _Compiled:
    sql: bytes  # PostgreSQL's own placeholders ($1, $2...); for SQLite unused
    names: tuple[str, ...]  # the bind parameter for each placeholder
    statement: Any  # SQLAlchemy's compiled statement: its parameters
    binds: dict[str, Any]  # name -> bind processor (or None)
    row: type
    results: tuple  # per column: result processor (or None)


_COMPILED: WeakKeyDictionary[Executable, dict[str, _Compiled]] = WeakKeyDictionary()  # statement -> dialect -> compiled
_PLACEHOLDER = re.compile(r"%\(([^)]+)\)s|%%|%s")


def _numbered(sql: str) -> tuple[bytes, tuple[str, ...]]:
    """`%(name)s` (SQLAlchemy's psycopg dialect) or `%s` (positional) as $1, $2...; `%%` as `%`.
    Returns the statement and, per placeholder, its parameter's name (`%s`: its position)."""
    names: list[str] = []

    def number(match: re.Match) -> str:
        token, name = match.group(0), match.group(1)
        if token == "%%":
            return "%"
        if name is None:
            name = str(len(names))
        if name not in names:
            names.append(name)
        return f"${names.index(name) + 1}"

    return _PLACEHOLDER.sub(number, sql).encode(), tuple(names)


def _compiled(conn: Connection, statement: Executable) -> _Compiled:
    dialect = conn.dialect
    found = _COMPILED.setdefault(statement, {}).get(dialect.name)
    if found is None:
        compiled = statement.compile(dialect=dialect)
        columns = list(getattr(statement, "exported_columns", []))
        sql, names = _numbered(compiled.string)
        found = _COMPILED[statement][dialect.name] = _Compiled(
            sql=sql,
            names=names,
            statement=compiled,
            binds={compiled.bind_names[bind]: bind.type._cached_bind_processor(dialect) for bind in compiled.binds.values()},
            row=namedtuple("Row", [column.key for column in columns], rename=True),
            results=tuple(column.type._cached_result_processor(dialect, None) for column in columns),
        )
    return found


def one_of(column, name: str, postgres: bool, value: list | None = None) -> ColumnElement:
    """`column` among the list parameter `name` (`value`: its default), as a statement built once
    takes it: on PostgreSQL one array, so the text never varies with the list and a flight
    prepares it once; on SQLite an expanding IN (each statement runs as it is sent)."""
    if postgres:
        return column == any_(bindparam(name, value, type_=ARRAY(column.type)))
    return column.in_(bindparam(name, value, expanding=True))


def send_rows(flight: Flight, table: Table, rows: list[dict]) -> None:
    """Insert `rows` (dicts of the same columns) into `table` as part of `flight`: on PostgreSQL one
    statement taking an array per column (its text depends on the columns only, so it is prepared
    once); on SQLite one executemany, run at once."""
    if not rows:
        return
    if flight._raw is None:
        flight.conn.execute(table.insert(), rows)
        return
    columns = tuple(rows[0])
    flight.send(_rows_insert(table, columns), {name: [as_stored(row[name]) for row in rows] for name in columns})


def _rows_insert(table: Table, columns: tuple[str, ...]):
    key = (table.name, columns)
    if key not in _ROWS_INSERTS:
        dialect = postgresql.dialect()
        arrays = ", ".join(f"CAST(:{name} AS {table.c[name].type.compile(dialect=dialect)}[])" for name in columns)
        _ROWS_INSERTS[key] = text(f"INSERT INTO {table.name} ({', '.join(columns)}) SELECT * FROM unnest({arrays})")
    return _ROWS_INSERTS[key]


_ROWS_INSERTS: dict[tuple[str, tuple[str, ...]], Any] = {}
_SQL: dict[str, bytes] = {}  # send_sql's statements, numbered


class Pending:
    """One statement's answer: `rows()` once its flight has landed."""

    def __init__(self, compiled: _Compiled | None = None, rows: list | None = None):
        self._compiled, self._rows = compiled, rows
        self._result: pq.abc.PGresult | None = None
        self._loader: Transformer | None = None

    def rows(self) -> list:
        if self._rows is None:
            compiled, processors, result = self._compiled, self._compiled.results, self._result
            raw = []
            if result is not None and result.nfields:
                self._loader.set_pgresult(result)
                raw = self._loader.load_rows(0, result.ntuples, tuple)
            if any(processors):
                raw = [tuple(p(v) if p else v for p, v in zip(processors, row)) for row in raw]
            self._rows = [compiled.row._make(row) for row in raw]
            self._result = self._loader = None
        return self._rows

    def scalar(self):
        rows = self.rows()
        return rows[0][0] if rows else None


_PREPARED: WeakKeyDictionary[psycopg.Connection, dict] = WeakKeyDictionary()  # connection -> (sql, types) -> name
_NAMES = itertools.count()


class Flight:
    """Statements of the connection's transaction sent together (see the module's text). The
    flight opens at the first statement sent and lands at its end or its commit: no other
    statement may run on the connection in between.

    On PostgreSQL the statements are queued in libpq's pipeline and sent at the landing, once:
    psycopg's own pipeline sends and polls after every statement (a `send` and a `poll` each, and
    a cursor's set-up), which cost a booking more CPU than its statements' work. Each statement
    is prepared once per connection (named here, not psycopg's), so PostgreSQL plans it once."""

    def __init__(self, conn: Connection):
        self.conn = conn
        self._raw: psycopg.Connection | None = conn.connection.driver_connection if is_postgres(conn) else None
        self._queued: list | None = None  # per command sent: its Pending, a PREPARE's (key, name), or None (BEGIN, ...)
        self._preparing: dict = {}  # prepared in this flight, not yet known to exist

    def __enter__(self) -> Flight:
        return self

    def __exit__(self, kind, error, traceback) -> None:
        if error is None:
            self._land()
        elif self._queued is not None:
            self._abandon()

    def send(self, statement: Executable, params: dict[str, Any]) -> Pending:
        """`statement` with its bind parameters in `params` (no column defaults are applied: the
        statement is compiled once, not for the parameters given)."""
        if self._raw is None:
            result = self.conn.execute(statement, params)
            return Pending(rows=result.all() if result.returns_rows else [])
        compiled = _compiled(self.conn, statement)
        values = compiled.statement.construct_params(params)
        binds = compiled.binds
        args = [(p(values[name]) if (p := binds.get(name)) else values[name]) for name in compiled.names]
        pending = Pending(compiled)
        self._send(compiled.sql, args, pending)
        return pending

    def send_sql(self, sql: str, params: tuple | None = None) -> None:
        """PostgreSQL only: a statement in psycopg's own terms (`%s` parameters), no answer read."""
        query = _SQL.get(sql)
        if query is None:
            query = _SQL[sql] = _numbered(sql)[0]
        self._send(query, list(params or ()), None)

    def generic_plans(self) -> None:
        """PostgreSQL: the transaction's statements run on their generic plans (made once per
        connection) instead of being planned again on every call: with array parameters a custom
        plan looks cheaper (it knows the arrays' lengths), so PostgreSQL would plan each time
        (0.15-0.24 ms for a booking's lock and write statements, more than they take to run)."""
        if self._raw is not None:
            self._command(b"SET LOCAL plan_cache_mode = force_generic_plan")

    def commit(self) -> None:
        """End the flight with the transaction's COMMIT (PostgreSQL); the transaction's context
        then finds nothing left to commit. On SQLite the context commits, as always."""
        if self._raw is not None:
            self._command(b"COMMIT")
            COUNTS["committed"] += 1
            self._land()

    # --- PostgreSQL: libpq's pipeline ---------------------------------------------------------

    def _open(self) -> pq.abc.PGconn:
        pgconn = self._raw.pgconn
        if self._queued is None:
            self._guarded(pgconn.enter_pipeline_mode)
            self._queued = []
            self._adapting = Transformer.from_context(self._raw)  # the flight's values out, then its rows in
            self._prepared = _PREPARED.setdefault(self._raw, {})
            if pgconn.transaction_status == pq.TransactionStatus.IDLE and not self._raw.autocommit:
                COUNTS["begun"] += 1  # BEGIN goes in this flight, as psycopg would send it
                self._guarded(pgconn.send_query_params, b"BEGIN", None)
                self._queued.append(None)
        return pgconn

    def _command(self, command: bytes) -> None:
        pgconn = self._open()
        COUNTS["statements"] += 1
        self._guarded(pgconn.send_query_params, command, None)
        self._queued.append(None)

    def _send(self, query: bytes, args: list, pending: Pending | None) -> None:
        pgconn = self._open()
        COUNTS["statements"] += 1
        adapting = self._adapting
        values = adapting.dump_sequence(args, [PyFormat.AUTO] * len(args))
        key = (query, adapting.types or ())
        name = self._prepared.get(key) or self._preparing.get(key)
        if name is None:
            name = self._preparing[key] = f"stockhub_{next(_NAMES)}".encode()
            self._guarded(pgconn.send_prepare, name, query, adapting.types or None)
            self._queued.append((key, name))
        self._guarded(pgconn.send_query_prepared, name, values, adapting.formats or None)
        if pending is not None:
            pending._loader = adapting
        self._queued.append(pending)

    def _land(self) -> None:
        if self._queued is None:
            return
        queued, self._queued = self._queued, None
        COUNTS["flights"] += 1
        pgconn = self._raw.pgconn
        try:
            self._guarded(pgconn.pipeline_sync)
            answers = self._guarded(self._raw.wait, _round_trip(pgconn))
        finally:
            if pgconn.status == pq.ConnStatus.OK and not pgconn.is_busy():
                pgconn.exit_pipeline_mode()
        self._preparing.clear()
        failed = None
        for command, results in zip(queued, answers):
            status = results[-1].status if results else None
            if status == pq.ExecStatus.FATAL_ERROR and failed is None:
                failed = errors.error_from_result(results[-1], encoding=self._raw.info.encoding)
            if isinstance(command, Pending):
                command._result = results[-1] if results else None
            elif command is not None and status == pq.ExecStatus.COMMAND_OK:  # a PREPARE that ran (not aborted)
                self._prepared[command[0]] = command[1]
        if failed is not None:
            if isinstance(failed, errors.InvalidSqlStatementName):  # dropped behind our back (DEALLOCATE ALL)
                self._prepared.clear()
            self._fail(failed)

    def _abandon(self) -> None:
        """The flight's code failed before it landed: read what was sent, keep nothing."""
        try:
            self._land()
        except sqlalchemy.exc.DBAPIError:
            pass

    def _guarded(self, call, *args):
        try:
            return call(*args)
        except psycopg.Error as error:
            self._fail(error)

    def _fail(self, error: psycopg.Error):
        """Raise `error` as SQLAlchemy's; a lost connection is handled as SQLAlchemy handles a disconnect."""
        wrapped = sqlalchemy.exc.DBAPIError.instance(None, None, error, psycopg.Error, dialect=self.conn.dialect)
        if self._raw.closed or self._raw.pgconn.status != pq.ConnStatus.OK:
            self.conn.invalidate(error)  # this one goes back to the pool as lost,
            self.conn.engine.pool.dispose()  # and the pooled ones made before it are closed (the server went away)
        raise wrapped from error


def _round_trip(pgconn):
    """psycopg's generator protocol (`Connection.wait`): send what libpq holds, then read every
    command's results up to the pipeline's sync. Returns one list of results per command."""
    while pgconn.flush():  # more to send: the socket was full
        ready = yield Wait.RW
        if ready & Ready.R:
            pgconn.consume_input()
    answers: list[list] = []
    results: list = []
    while True:
        while pgconn.is_busy():
            if (yield Wait.R):
                pgconn.consume_input()
        result = pgconn.get_result()
        if result is None:
            answers.append(results)
            results = []
        elif result.status == pq.ExecStatus.PIPELINE_SYNC:
            return answers
        else:
            results.append(result)
