"""Every lock stockhub takes, in one place, always in the same order (store, then stock rows).

Applying an upload locks the store row FOR UPDATE: all writers of one store's levels take the
store row first, so an upload and anything else that changes the same store's stock
(orders, adjustments) are serialized without locking a snapshot's thousands of stock rows
one by one. On SQLite, BEGIN IMMEDIATE already serializes every writer.
"""

from __future__ import annotations

from sqlalchemy import Connection, func, select

from stockhub.db.engine import is_postgres
from stockhub.db.tables import stores

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
