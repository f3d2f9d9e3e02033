"""Every lock stockhub takes, in one place, always in the same order:

    order row  →  store rows (by id)  →  stock level rows (by store, identifier)
    feed item row  →  store rows  →  stock level rows          (a pushed item; no order row)

Events take no lock when written: the sequencer numbers them after commit, under its own lock.

Applying an upload locks its store row FOR UPDATE; everything else that changes a store's
stock (bookings, order steps, direct writes) takes the store row FOR KEY SHARE, which many
such writers hold at once but which waits for an upload being applied. So an upload's diff
never interleaves with a booking, without locking a snapshot's thousands of stock rows one by
one. Stock rows are then locked FOR UPDATE in key order, so multi-line, multi-store orders
never deadlock. On SQLite, BEGIN IMMEDIATE already serializes every writer and these are
no-ops or plain reads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from sqlalchemy import BigInteger, Connection, Row, Select, String, bindparam, func, select, tuple_
from sqlalchemy.dialects.postgresql import ARRAY

from stockhub.db.engine import is_postgres
from stockhub.db.flights import Flight
from stockhub.db.tables import feed_items, orders, stock_levels, stores

_UPLOAD_INTAKE = 1  # advisory lock namespaces
_SEQUENCER = 2
_MIGRATIONS = 3


def lock_store(conn: Connection, store_id: int) -> None:
    """For applying an upload: no other writer of the store's stock runs meanwhile."""
    conn.execute(select(stores.c.id).where(stores.c.id == store_id).with_for_update()).one()


def share_stores(conn: Connection, store_ids: Iterable[int]) -> None:
    """For a single-product writer: waits for an upload being applied, not for other writers."""
    ids = sorted(set(store_ids))
    conn.execute(sharing(select(stores.c.id).where(stores.c.id.in_(ids)))).all()


def sharing(query: Select) -> Select:
    """`share_stores` as part of a query of the stores table (a booking reads its stores and shares them at once)."""
    return query.order_by(stores.c.id).with_for_update(read=True, key_share=True)


_KEYS = func.unnest(bindparam("stores", type_=ARRAY(BigInteger)), bindparam("identifiers", type_=ARRAY(String))).table_valued(
    "store_id", "identifier"
).render_derived(name="wanted")
_LEVELS_FOR_UPDATE = {  # built once: bookings take it on every call
    # PostgreSQL: the keys as two arrays, so the statement's text never varies (prepared once per
    # connection) and no IN list is rendered per call; SQLite: an IN list.
    postgres: select(stock_levels)
    .where(tuple_(stock_levels.c.store_id, stock_levels.c.identifier).in_(keys))
    .order_by(stock_levels.c.store_id, stock_levels.c.identifier)
    .with_for_update()
    for postgres, keys in ((True, select(_KEYS.c.store_id, _KEYS.c.identifier)), (False, bindparam("keys", expanding=True)))
}


_OURS_FOR_UPDATE = {
    query: query.where(stock_levels.c.store_id.in_(select(stores.c.id).where(stores.c.organization_id == bindparam("organization"))))
    for query in _LEVELS_FOR_UPDATE.values()
}


def lock_levels(conn: Connection, keys: Iterable[tuple[int, str]]) -> dict[tuple[int, str], Row]:
    """Lock the stock levels of (store, identifier) pairs in key order; absent ones are not in the result."""
    query, params = _levels_query(keys, is_postgres(conn))
    return _by_key(conn.execute(query, params).all() if query is not None else [])


def send_lock_levels(flight: Flight, keys: Iterable[tuple[int, str]], organization: int) -> Callable[[], dict[tuple[int, str], Row]]:
    """`lock_levels` of the organization's stores as part of a flight (sent before its stores
    are known to be the organization's): what it returns gives the rows once the flight has landed."""
    query, params = _levels_query(keys, is_postgres(flight.conn))
    if query is not None:
        query, params = _OURS_FOR_UPDATE[query], params | {"organization": organization}
    pending = flight.send(query, params) if query is not None else None
    return lambda: _by_key(pending.rows() if pending is not None else [])


def _levels_query(keys: Iterable[tuple[int, str]], postgres: bool):
    wanted = sorted(set(keys))
    if not wanted:
        return None, None
    if postgres:
        return _LEVELS_FOR_UPDATE[True], {"stores": [store for store, _ in wanted], "identifiers": [identifier for _, identifier in wanted]}
    return _LEVELS_FOR_UPDATE[False], {"keys": wanted}


def _by_key(rows) -> dict[tuple[int, str], Row]:
    return {(row.store_id, row.identifier): row for row in rows}


def lock_feed_item(conn: Connection, feed_id: int, external_id: str) -> Row | None:
    """A feed's item by its external id, for updating (sends of one item apply one at a time)."""
    return conn.execute(
        select(feed_items).where(feed_items.c.feed_id == feed_id, feed_items.c.external_id == external_id).with_for_update()
    ).first()


def lock_order(conn: Connection, organization: int, order_id: int) -> Row | None:
    return conn.execute(
        select(orders).where(orders.c.id == order_id, orders.c.organization_id == organization).with_for_update()
    ).first()


def lock_upload_intake(conn: Connection, store_id: int) -> None:
    """Serialize recording a store's new uploads, so their ids follow commit order.

    Workers apply a store's uploads in id order; without this, an upload that took its id
    first but committed second could be applied after a newer one. An advisory lock, not the
    store row, so a PUT never waits for an upload being applied.
    """
    if is_postgres(conn):
        conn.execute(select(func.pg_advisory_xact_lock(_UPLOAD_INTAKE, store_id % 2**31)))


def send_lock_sequencer(flight: Flight) -> None:
    """One event sequencer at a time (see services.events.sequence_events), until commit; sent in
    a flight, whose later statements run once it is held. SQLite has one writer at a time anyway."""
    if is_postgres(flight.conn):
        flight.send(_SEQUENCER_LOCK, {})


_SEQUENCER_LOCK = select(func.pg_advisory_xact_lock(_SEQUENCER, 0))


def lock_migrations(conn: Connection) -> None:
    """PostgreSQL: one process migrates the schema at a time (the nodes of a fleet start together);
    the others wait, then find it up to date. Held to the migration's commit."""
    if is_postgres(conn):
        conn.execute(select(func.pg_advisory_xact_lock(_MIGRATIONS, 0)))
