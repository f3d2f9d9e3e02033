"""Every lock stockhub takes, in one place, always in the same order (store, then stock rows).

Applying an upload locks the store row FOR UPDATE: all writers of one store's levels take the
store row first, so an upload and anything else that changes the same store's stock
(orders, adjustments) are serialized without locking a snapshot's thousands of stock rows
one by one. On SQLite, BEGIN IMMEDIATE already serializes every writer.
"""

from __future__ import annotations

from sqlalchemy import Connection, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from stockhub.db.engine import is_postgres
from stockhub.db.tables import event_streams, stores

_UPLOAD_INTAKE = 1  # advisory lock namespace


def lock_store(conn: Connection, store_id: int) -> None:
    conn.execute(select(stores.c.id).where(stores.c.id == store_id).with_for_update()).one()


def lock_upload_intake(conn: Connection, store_id: int) -> None:
    """Serialize recording a store's new uploads, so their ids follow commit order.

    Workers apply a store's uploads in id order; without this, an upload that took its id
    first but committed second could be applied after a newer one. An advisory lock, not the
    store row, so a PUT never waits for an upload being applied.
    """
    if is_postgres(conn):
        conn.execute(select(func.pg_advisory_xact_lock(_UPLOAD_INTAKE, store_id % 2**31)))


def reserve_sequences(conn: Connection, stream: str, count: int) -> int:
    """Take the next `count` sequence numbers of an event stream; returns the first.

    The upsert locks the stream's row until commit, so a stream's events commit in sequence
    order and a reader catching up `after=N` never skips one that commits late. Taken after the
    store lock, like every stock writer's other locks.
    """
    dialect_insert = pg_insert if is_postgres(conn) else sqlite_insert
    statement = dialect_insert(event_streams).values(stream=stream, last_sequence=count)
    statement = statement.on_conflict_do_update(
        index_elements=["stream"], set_={"last_sequence": event_streams.c.last_sequence + count}
    ).returning(event_streams.c.last_sequence)
    return conn.execute(statement).scalar_one() - count + 1
