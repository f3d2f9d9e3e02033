"""Every lock stockhub takes, in one place, always in the same order (store, then stock rows).

Applying an upload locks the store row FOR UPDATE: all writers of one store's levels take the
store row first, so an upload and anything else that changes the same store's stock
(orders, adjustments) are serialized without locking a snapshot's thousands of stock rows
one by one. On SQLite, BEGIN IMMEDIATE already serializes every writer.
"""

from __future__ import annotations

from sqlalchemy import Connection, select

from stockhub.db.tables import stores


def lock_store(conn: Connection, store_id: int) -> None:
    conn.execute(select(stores.c.id).where(stores.c.id == store_id).with_for_update()).one()
