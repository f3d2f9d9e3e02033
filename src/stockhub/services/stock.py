"""Reading a store's stock: its levels with availability and status, as the domain defines them."""

from __future__ import annotations

from sqlalchemy import bindparam, exists, select

from stockhub import feeds, ids
from stockhub.db.engine import one_statement, reading
from stockhub.db.flights import Flight
from stockhub.db.tables import stock_levels, stores
from stockhub.domain.stock import StockLevel, StockStatus
from stockhub.errors import FieldError, Malformed, not_found
from stockhub.services.catalog import stock_join
from stockhub.services.context import Hub
from stockhub.services.paging import Page, check_limit, decode_token, encode_token
from stockhub.domain.access import Scope
from stockhub.services.scope import as_scope, store_number

_SCAN = 1000


def list_stock(
    hub: Hub, scope: Scope | int, store_id: str, limit: int, token: str | None, status: str | None, search: str | None = None
) -> Page:
    """A page of the store's levels by identifier; with `status`, only those in it; with
    `search`, only identifiers containing it (the dashboard's search box).

    Status comes from the domain's rule (`StockLevel.status`), not from SQL, so there is one
    definition of availability: rows are scanned in identifier order and filtered here.
    """
    check_limit(limit)
    wanted = _status(status)
    after = decode_token(token, str) if token else None
    items: list = []
    with reading(hub.engine) as conn:
        number = store_number(conn, scope, store_id)
        while len(items) <= limit:
            query = stock_join(select(stock_levels), stock_levels, as_scope(scope).organization).where(stock_levels.c.store_id == number)
            if after is not None:
                query = query.where(stock_levels.c.identifier > after)
            if search:
                query = query.where(stock_levels.c.identifier.contains(search.strip(), autoescape=True))
            rows = conn.execute(query.order_by(stock_levels.c.identifier).limit(_SCAN)).all()
            items += [row for row in rows if wanted is None or status_of(row) is wanted]
            if len(rows) < _SCAN:
                break
            after = rows[-1].identifier
    more = len(items) > limit
    items = items[:limit]
    return Page(items, encode_token(items[-1].identifier) if more else None)


def status_of(row) -> StockStatus:
    """A level's status by the domain's one rule."""
    return StockLevel(on_hand=row.on_hand, committed=row.committed, safety_stock=row.safety_stock, expired=row.expired).status


def get_stock(hub: Hub, scope: Scope | int, store_id: str, identifier: str):
    try:
        canonical = feeds.lookup_identifier(identifier)
    except ValueError as error:
        raise not_found(f"a product {identifier!r} ({error})") from None
    scope = as_scope(scope)
    number = ids.decode("store", store_id)
    if not scope.reaches(number):
        raise not_found(f"store {store_id}")
    with one_statement(hub.engine) as conn:
        with Flight(conn) as flight:  # prepared once per connection (db.flights)
            found = flight.send(_ONE_LEVEL, {"store": number, "identifier": canonical, "organization": scope.organization})
        row = next(iter(found.rows()), None)
        if row is None:
            store_number(conn, scope, store_id)  # not found: the store, or else the stock
            raise not_found(f"stock of {identifier} in store {store_id}")
    return row


# One statement, one round trip: the level, its catalog data, and the store's organization
# checked in the same query; only a miss asks again, to say which of the two is missing. Built
# once (its construction and cache key were a third of a lookup's CPU), values bound per call.
_ONE_LEVEL = stock_join(select(stock_levels), stock_levels, bindparam("organization")).where(
    stock_levels.c.store_id == bindparam("store"),
    stock_levels.c.identifier == bindparam("identifier"),
    exists().where(stores.c.id == bindparam("store"), stores.c.organization_id == bindparam("organization")),
)


def _status(status: str | None) -> StockStatus | None:
    if status is None:
        return None
    try:
        return StockStatus(status)
    except ValueError:
        choices = ", ".join(s.value for s in StockStatus)
        raise Malformed(f"status must be one of {choices}", [FieldError("status", "unknown status")]) from None

