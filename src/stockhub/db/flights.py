"""Statements sent together: on PostgreSQL in one network round trip, their results read after.

A booking's statements wait on each other's answers only twice (the locks, then the writes), so
they go in two flights instead of six round trips: psycopg's pipeline mode queues each statement
and reads every answer at the flight's end (or at `commit`, which ends the flight with the
transaction). SQLAlchemy has no pipeline, so here a Core statement is compiled once per dialect
and run on the transaction's own psycopg connection with SQLAlchemy's type processing; a database
error comes back as SQLAlchemy's (IntegrityError, OperationalError, ...). On SQLite (in process:
a statement costs no round trip) each statement simply runs when sent.

    with Flight(conn) as flight:
        stores = flight.send(query, params)
        levels = flight.send(other_query, other_params)
    stores.rows(), levels.rows()          # once the flight has landed
"""

from __future__ import annotations

from collections import namedtuple
from dataclasses import dataclass
from typing import Any
from weakref import WeakKeyDictionary

import psycopg
import sqlalchemy.exc
from sqlalchemy import Connection
from sqlalchemy.sql import Executable

from stockhub.db.engine import is_postgres

COUNTS = {"flights": 0, "statements": 0, "begun": 0, "committed": 0}  # for benchmarks' round trips (bench/common.py)


@dataclass(frozen=True)
class _Compiled:
    sql: str
    statement: Any  # SQLAlchemy's compiled statement: its parameters
    binds: dict[str, Any]  # name -> bind processor (or None)
    row: type
    results: tuple  # per column: result processor (or None)


_COMPILED: WeakKeyDictionary[Executable, dict[str, _Compiled]] = WeakKeyDictionary()  # statement -> dialect -> compiled


def _compiled(conn: Connection, statement: Executable) -> _Compiled:
    dialect = conn.dialect
    found = _COMPILED.setdefault(statement, {}).get(dialect.name)
    if found is None:
        compiled = statement.compile(dialect=dialect)
        columns = list(getattr(statement, "exported_columns", []))
        found = _COMPILED[statement][dialect.name] = _Compiled(
            sql=compiled.string,
            statement=compiled,
            binds={compiled.bind_names[bind]: bind.type._cached_bind_processor(dialect) for bind in compiled.binds.values()},
            row=namedtuple("Row", [column.key for column in columns], rename=True),
            results=tuple(column.type._cached_result_processor(dialect, None) for column in columns),
        )
    return found


class Pending:
    """One statement's answer: `rows()` once its flight has landed."""

    def __init__(self, compiled: _Compiled | None = None, cursor=None, rows: list | None = None):
        self._compiled, self._cursor, self._rows = compiled, cursor, rows

    def rows(self) -> list:
        if self._rows is None:
            compiled, processors = self._compiled, self._compiled.results
            raw = self._cursor.fetchall() if self._cursor.description is not None else []
            if any(processors):
                raw = [tuple(p(v) if p else v for p, v in zip(processors, row)) for row in raw]
            self._rows = [compiled.row._make(row) for row in raw]
        return self._rows

    def scalar(self):
        rows = self.rows()
        return rows[0][0] if rows else None


class Flight:
    """Statements of the connection's transaction sent together (see the module's text). The
    pipeline opens at the first statement sent and lands at the flight's end or its commit: no
    other statement may run on the connection in between (it would be queued, unread)."""

    def __init__(self, conn: Connection):
        self.conn = conn
        self._raw = conn.connection.driver_connection if is_postgres(conn) else None
        self._pipeline = None

    def __enter__(self) -> Flight:
        return self

    def __exit__(self, kind, error, traceback) -> None:
        self._land(kind, error, traceback)

    def send(self, statement: Executable, params: dict[str, Any]) -> Pending:
        """`statement` with its bind parameters in `params` (no column defaults are applied: the
        statement is compiled once, not for the parameters given)."""
        if self._raw is None:
            result = self.conn.execute(statement, params)
            return Pending(rows=result.all() if result.returns_rows else [])
        compiled = _compiled(self.conn, statement)
        values = compiled.statement.construct_params(params)
        values = {name: (p(value) if (p := compiled.binds.get(name)) else value) for name, value in values.items()}
        return Pending(compiled, self._execute(compiled.sql, values))

    def send_sql(self, sql: str, params: tuple | None = None) -> None:
        """PostgreSQL only: a statement in psycopg's own terms (`%s` parameters), no answer read."""
        self._execute(sql, params)

    def generic_plans(self) -> None:
        """PostgreSQL: the transaction's statements run on their generic plans (made once per
        connection) instead of being planned again on every call: with array parameters a custom
        plan looks cheaper (it knows the arrays' lengths), so PostgreSQL would plan each time
        (0.15-0.24 ms for a booking's lock and write statements, more than they take to run)."""
        if self._raw is not None:
            self._execute("SET LOCAL plan_cache_mode = force_generic_plan", None)

    def commit(self) -> None:
        """End the flight with the transaction's COMMIT (PostgreSQL); the transaction's context
        then finds nothing left to commit. On SQLite the context commits, as always."""
        if self._raw is not None:
            self._open()
            COUNTS["statements"] += 1
            COUNTS["committed"] += 1
            self._guarded(self._raw.commit)
            self._land()

    def _execute(self, sql: str, params):
        self._open()
        COUNTS["statements"] += 1
        return self._guarded(self._raw.execute, sql, params)

    def _open(self) -> None:
        if self._pipeline is None:
            COUNTS["begun"] += self._raw.info.transaction_status == psycopg.pq.TransactionStatus.IDLE  # BEGIN goes in this flight
            self._pipeline = self._raw.pipeline()
            self._guarded(self._pipeline.__enter__)

    def _land(self, *exc_info) -> None:
        if self._pipeline is not None:
            pipeline, self._pipeline = self._pipeline, None
            COUNTS["flights"] += 1
            self._guarded(pipeline.__exit__, *(exc_info or (None, None, None)))

    def _guarded(self, call, *args):
        try:
            return call(*args)
        except psycopg.Error as error:
            wrapped = sqlalchemy.exc.DBAPIError.instance(None, None, error, psycopg.Error, dialect=self.conn.dialect)
            if self._raw.closed:
                self.conn.invalidate(error)  # a lost connection goes back to the pool as lost
            raise wrapped from error
