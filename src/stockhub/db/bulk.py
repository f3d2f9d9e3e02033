"""Moving whole frames in and out of the database: the ingest hot path.

On PostgreSQL this is COPY (the fastest way in or out, and no per-row Python); on SQLite,
one executemany (of plain tuples where no column needs a type conversion). Both run inside the caller's transaction.
"""

from __future__ import annotations

import io

import polars as pl
from sqlalchemy import Connection, Select, Table, TypeDecorator, and_, bindparam, update

from stockhub.db.engine import is_postgres


def read_frame(conn: Connection, query: Select, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    if is_postgres(conn):
        sql = str(query.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
        buffer = io.BytesIO()
        with _raw(conn).cursor() as cursor, cursor.copy(f"COPY ({sql}) TO STDOUT (FORMAT CSV, HEADER)") as copy:
            for chunk in copy:
                buffer.write(chunk)
        if buffer.tell() == 0:
            return pl.DataFrame(schema=schema)
        as_read = {name: pl.String if dtype == pl.Boolean else dtype for name, dtype in schema.items()}
        frame = pl.read_csv(buffer.getvalue(), schema=as_read)
        booleans = [name for name, dtype in schema.items() if dtype == pl.Boolean]
        return frame.with_columns(pl.col(name) == "t" for name in booleans)  # COPY spells booleans t/f
    rows = conn.execute(query).all()
    return pl.DataFrame(rows, schema=schema, orient="row")


def insert_frame(conn: Connection, table: Table, frame: pl.DataFrame) -> int:
    if frame.is_empty():
        return 0
    if is_postgres(conn):
        _copy_in(conn, table.name, frame)
    elif any(isinstance(table.c[name].type, TypeDecorator) for name in frame.columns):
        conn.execute(table.insert(), frame.to_dicts())
    else:
        marks = ", ".join("?" * frame.width)
        conn.exec_driver_sql(f"INSERT INTO {table.name} ({', '.join(frame.columns)}) VALUES ({marks})", frame.rows())
    return frame.height


def update_frame(conn: Connection, table: Table, frame: pl.DataFrame, keys: list[str], constant: dict) -> int:
    """UPDATE table rows matched on `keys` with the frame's other columns plus `constant` values."""
    if frame.is_empty():
        return 0
    frame = frame.with_columns(**{name: pl.lit(value) for name, value in constant.items()})
    values = [name for name in frame.columns if name not in keys]
    if is_postgres(conn):
        staging = f"staging_{table.name}"
        conn.exec_driver_sql(
            f"CREATE TEMP TABLE {staging} ON COMMIT DROP AS SELECT {', '.join(frame.columns)} FROM {table.name} WITH NO DATA"
        )
        _copy_in(conn, staging, frame)
        assignments = ", ".join(f"{name} = s.{name}" for name in values)
        matches = " AND ".join(f"t.{name} = s.{name}" for name in keys)
        result = conn.exec_driver_sql(f"UPDATE {table.name} AS t SET {assignments} FROM {staging} AS s WHERE {matches}")
        conn.exec_driver_sql(f"DROP TABLE {staging}")
        return result.rowcount
    statement = (
        update(table)
        .where(and_(*(table.c[name] == bindparam(f"key_{name}") for name in keys)))
        .values({name: bindparam(f"new_{name}") for name in values})
    )
    rows = frame.rename({name: f"key_{name}" for name in keys} | {name: f"new_{name}" for name in values}).to_dicts()
    conn.execute(statement, rows)
    return frame.height


def _copy_in(conn: Connection, table_name: str, frame: pl.DataFrame) -> None:
    columns = ", ".join(frame.columns)
    data = _constant_dates_as_text(frame).write_csv(include_header=False, datetime_format="%Y-%m-%d %H:%M:%S%.f", null_value="")
    with _raw(conn).cursor() as cursor, cursor.copy(f"COPY {table_name} ({columns}) FROM STDIN (FORMAT CSV)") as copy:
        copy.write(data)


def _constant_dates_as_text(frame: pl.DataFrame) -> pl.DataFrame:
    """A date or timestamp column holding one value (a load's `updated_at`) formatted once, as the
    CSV writer would have written it: formatting it for every row took most of a 200,000-row
    CSV's time."""
    constant = {}
    for name, dtype in frame.schema.items():
        if dtype in (pl.Date, pl.Datetime) and frame.height and frame[name].null_count() == 0 and frame[name].n_unique() == 1:
            value = frame[name][0]
            constant[name] = pl.lit(value.isoformat() if dtype == pl.Date else value.strftime("%Y-%m-%d %H:%M:%S.%f"))
    return frame.with_columns(**constant) if constant else frame


def _raw(conn: Connection):
    return conn.connection.driver_connection
