"""The read side's set-based statements: many levels at once, and group totals.

`available_of(levels)` is domain.stock.available in SQL, for sums that must be computed in the
database (a group's total over 100,000 products); a property test (tests/db) holds the two to
the same answers. Everything that reads a single level renders it with the domain's rule.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from sqlalchemy import Connection, Table, and_, bindparam, case, cast, func, select, true, tuple_
from sqlalchemy.dialects.postgresql import ARRAY, BIGINT, JSON, TEXT

from stockhub.db.engine import is_postgres
from stockhub.db.tables import NUMBERED_EVENTS, events, stock_levels


def available_of(levels: Table = stock_levels):
    """max(on_hand − committed − safety_stock, 0), and 0 once expired (domain.stock.available)."""
    c = levels.c
    rest = c.on_hand - c.committed - c.safety_stock
    return case((c.expired.is_(True), 0), (rest > 0, rest), else_=0)


LEVEL = [stock_levels.c[name] for name in ("store_id", "identifier", "on_hand", "committed", "safety_stock", "expired", "price_minor", "currency", "promotion_minor", "updated_at")]


def levels_at(conn: Connection, keys: Sequence[tuple[int, str]]) -> list:
    """The stock levels of (store, identifier) pairs, in one statement; absent pairs have no row.
    Rows unpack in LEVEL's order (2,000 of them are read per call)."""
    if not keys:
        return []
    if is_postgres(conn):  # two array parameters, whatever the number of keys
        pairs = (
            select(
                func.unnest(bindparam("k_stores", type_=ARRAY(BIGINT))).label("store_id"),
                func.unnest(bindparam("k_identifiers", type_=ARRAY(TEXT))).label("identifier"),
            )
        ).subquery("keys")
        query = select(*LEVEL).join(
            pairs, and_(stock_levels.c.store_id == pairs.c.store_id, stock_levels.c.identifier == pairs.c.identifier)
        )
        return conn.execute(query, {"k_stores": [k[0] for k in keys], "k_identifiers": [k[1] for k in keys]}).all()
    rows = []
    for start in range(0, len(keys), 400):  # SQLite: row values, within its bound-parameter limit
        chunk = keys[start : start + 400]
        rows += conn.execute(select(*LEVEL).where(tuple_(stock_levels.c.store_id, stock_levels.c.identifier).in_(chunk))).all()
    return rows


def group_totals(stores: Iterable[int], *, after: str | None = None, only: Iterable[str] | None = None, limit: int | None = None):
    """Per product, the summed availability over `stores`, by identifier."""
    c = stock_levels.c
    query = select(c.identifier, func.sum(available_of()).label("available"), func.count().label("stores")).where(
        c.store_id.in_(sorted(stores))
    )
    if after is not None:
        query = query.where(c.identifier > after)
    if only is not None:
        query = query.where(c.identifier.in_(only))
    query = query.group_by(c.identifier).order_by(c.identifier)
    return query.limit(limit) if limit is not None else query


def changed_since(conn: Connection, stores: Iterable[int], since: int):
    """The products whose level changed at any of `stores` in an event numbered after `since`."""
    return changed_in(conn, events.c.store_id.in_(sorted(stores)), events.c.sequence > since)


def changed_in(conn: Connection, *which):
    """The products whose level changed in the events `which` selects: the identifiers each
    inventory.updated event's `changes` list (services/events.py)."""
    if is_postgres(conn):
        listed = func.json_array_elements_text(cast(events.c.changes, JSON)["identifier"])
    else:
        listed = func.json_each(events.c.changes, "$.identifier")
    identifiers = listed.table_valued("value")  # a function in FROM may name the row before it, on both engines
    return (
        select(identifiers.c.value)
        .select_from(events)
        .join(identifiers, true())
        .where(*which, events.c.type == "inventory.updated")
        .distinct()
    )


# The highest event number (0 before the first). Read here and inside the sequencer's numbering
# statement (services/events.py).
HIGHEST_NUMBER = select(func.coalesce(func.max(events.c.sequence), 0)).where(NUMBERED_EVENTS)


def high_water(conn: Connection) -> int:
    """The highest event number: every change visible to this snapshot has a number at most this,
    and every later one will get a higher one (services.events.sequence_events)."""
    return conn.execute(HIGHEST_NUMBER).scalar_one()


def oldest_kept(conn: Connection) -> int | None:
    return conn.execute(select(func.min(events.c.sequence)).where(NUMBERED_EVENTS)).scalar()



def copy_csv(conn: Connection, query) -> Iterator[bytes]:
    """PostgreSQL: the query's rows as CSV straight from the server (COPY … TO STDOUT), with no
    Python per row. Only for queries whose parameters are numbers and identifiers we read back."""
    sql = str(query.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
    cursor = conn.connection.driver_connection.cursor()
    buffer = bytearray()
    with cursor.copy(f"COPY ({sql}) TO STDOUT WITH (FORMAT csv)") as copy:
        for data in copy:  # a row at a time: sent on in blocks, not one HTTP chunk per row
            buffer += data
            if len(buffer) >= COPY_BLOCK:
                yield bytes(buffer)
                buffer.clear()
    if buffer:
        yield bytes(buffer)


COPY_BLOCK = 256 * 1024
