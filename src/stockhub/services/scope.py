"""Which stores a caller reaches: the one place that decides it.

A caller's `Scope` (domain.access) is an organization's whole estate or, for a partner acting
on a store connected to it (`X-Store-Id`), that one store. Everything that names or lists
stores goes through here, so a store a caller does not reach is always "not found" (never
"forbidden": no existence leaks):

- `scope_of(principal)`: what a token reaches; a partner that names no connected store reaches nothing.
- `organization_of(principal)`: routes over the whole organization (brands, stores, customers,
  the catalog) take the organization's own API token only.
- `store_number(conn, scope, store_id)`: a store named in a request, as its row id.
- `store_numbers(conn, scope, store_ids)`: several at once; only the reachable ones are returned.
- `store_rows(conn, scope, store_ids, lock)`: the same with the stores' settings, locked as asked.
- `visible(scope, organization_column, store_column)`: the conditions that filter a query.
- `any_store_number(conn, store_id)`: the operator's CLI, which reaches every store.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from sqlalchemy import Column, Connection, Row, Select, bindparam, select

from stockhub import ids
from stockhub.db.engine import is_postgres
from stockhub.db.flights import Flight, one_of
from stockhub.db.tables import store_connections, stores
from stockhub.domain.access import Principal, Scope
from stockhub.errors import Refused, not_found


def scope_of(principal: Principal, what: str = "this") -> Scope:
    """An organization's token reaches all its stores; a partner's only the connected store it names."""
    if principal.organization is None:
        raise not_found(what)
    if principal.is_partner:
        if principal.store is None:
            raise not_found(f"{what} (a partner names its connected store with X-Store-Id)")
        return Scope(principal.organization, principal.partner, principal.store)
    return Scope(principal.organization)


def organization_of(principal: Principal, what: str | None = None) -> int:
    """The organization of its own API token; to anyone else a named thing is not found."""
    if principal.kind != "organization" or principal.organization is None:
        if what:
            raise not_found(what)
        raise Refused("this route takes an organization's API token (partners: see /organization/v1)")
    return principal.organization


def as_scope(scope: Scope | int) -> Scope:
    """A plain organization number stands for that organization's whole estate."""
    return scope if isinstance(scope, Scope) else Scope(scope)


def store_number(conn: Connection, scope: Scope | int, store_id: str) -> int:
    """The row id of a store the scope reaches (an int: every store of that organization)."""
    found = store_numbers(conn, scope, [store_id])
    if store_id not in found:
        raise not_found(f"store {store_id}")
    return found[store_id]


def store_numbers(conn: Connection, scope: Scope | int, store_ids: Iterable[str]) -> dict[str, int]:
    """The reachable stores among `store_ids`, by public id."""
    return {store_id: row.id for store_id, row in store_rows(conn, scope, store_ids).items()}


# Built once (a booking's first statement): building a query costs more CPU than sending it.
# PostgreSQL takes the ids as one array, so the text never varies and no IN list is rendered per call.
_STORE_ROWS: dict[tuple[Callable | None, bool], Select] = {
    (None, postgres): select(stores.c.id, stores.c.custom_products).where(
        stores.c.organization_id == bindparam("organization"), one_of(stores.c.id, "ids", postgres)
    )
    for postgres in (True, False)
}


def store_rows(conn: Connection, scope: Scope | int, store_ids: Iterable[str], lock: Callable[[Select], Select] | None = None) -> dict[str, Row]:
    """The reachable stores among `store_ids` with what a writer needs of them (id, custom_products),
    by public id; `lock` (from db.locks) takes their locks in the same statement."""
    query, params, numbers = _store_rows_query(as_scope(scope), store_ids, lock, is_postgres(conn))
    return _by_public_id(conn.execute(query, params) if query is not None else [], numbers)


def send_store_rows(flight: Flight, scope: Scope, store_ids: Iterable[str], lock: Callable[[Select], Select] | None = None) -> Callable[[], dict[str, Row]]:
    """`store_rows` as part of a flight: what it returns gives the rows once the flight has landed."""
    query, params, numbers = _store_rows_query(scope, store_ids, lock, is_postgres(flight.conn))
    pending = flight.send(query, params) if query is not None else None
    return lambda: _by_public_id(pending.rows() if pending is not None else [], numbers)


def _store_rows_query(scope: Scope, store_ids: Iterable[str], lock: Callable[[Select], Select] | None, postgres: bool):
    numbers = {store_id: ids.decode("store", store_id) for store_id in store_ids}
    wanted = sorted({n for n in numbers.values() if scope.reaches(n)})
    if not wanted:
        return None, None, numbers
    key = (lock, postgres)
    if key not in _STORE_ROWS:
        _STORE_ROWS[key] = lock(_STORE_ROWS[(None, postgres)])
    return _STORE_ROWS[key], {"organization": scope.organization, "ids": wanted}, numbers


def _by_public_id(rows, numbers: dict[str, int | None]) -> dict[str, Row]:
    found = {row.id: row for row in rows}
    return {store_id: found[n] for store_id, n in numbers.items() if n in found}


def visible(scope: Scope, organization_column: Column, store_column: Column) -> list:
    """Conditions that keep a query's rows to what the scope reaches."""
    conditions = [organization_column == scope.organization]
    if scope.store is not None:
        conditions.append(store_column == scope.store)
    return conditions


def any_store_number(conn: Connection, store_id: str) -> int:
    """For the operator's CLI only: any store of any organization."""
    number = ids.decode("store", store_id)
    if number is None or conn.execute(select(stores.c.id).where(stores.c.id == number)).scalar() is None:
        raise not_found(f"store {store_id}")
    return number


def partner_scopes(conn: Connection, partner: int) -> list[tuple[Scope, str]]:
    """Every store connected to a partner (a partner's user on the dashboard), as the scope that
    reaches it and the partner's own id for it: the same reach as the partner's X-Store-Id."""
    rows = conn.execute(
        select(store_connections.c.organization_id, store_connections.c.store_id, store_connections.c.partner_store_id)
        .where(store_connections.c.partner_id == partner)
        .order_by(store_connections.c.organization_id, store_connections.c.store_id)
    ).all()
    return [(Scope(row.organization_id, partner, row.store_id), row.partner_store_id) for row in rows]


def partner_scope(conn: Connection, partner: int, store_id: str) -> Scope:
    """The scope of one store connected to the partner; any other store is not found."""
    number = ids.decode("store", store_id)
    for scope, _ in partner_scopes(conn, partner):
        if scope.store == number:
            return scope
    raise not_found(f"store {store_id}")
