"""Location groups: stores whose availability is summed (a region, a channel), exported whole
or as what changed since a cursor.

The cursor is the event sequence (services/events.py). An export reads, in one snapshot, the
highest event number and the totals: every change it includes has a number at most the cursor,
and every change it misses gets a higher one. `?since=<cursor>` then returns the products with
inventory changes at the group's stores numbered after it, their totals recomputed from the
current levels, so nothing is missed, and a product answered twice carries its total, not a
delta. A change of the group's stores is an event too: a cursor from before it is refused (409:
export again), as the totals it would answer for are the old group's.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any, NamedTuple
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection, delete, insert, select

from stockhub import ids
from stockhub.db.availability import changed_since, copy_csv, group_totals, high_water, oldest_kept
from stockhub.db.engine import is_postgres, reading, snapshot, transaction
from stockhub.db.tables import events, location_group_stores, location_groups
from stockhub.errors import FieldError, Malformed, conflict, invalid, not_found
from stockhub.services import events as event_log
from stockhub.services.context import Hub
from stockhub.services.paging import Page, check_limit, decode_token, encode_token, page_of
from stockhub.services.scope import store_numbers

Name = Field(min_length=1, max_length=200)


class GroupFields(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    name: str = Name
    store_ids: list[str] = Field(min_length=1, max_length=1000, description="stores of your organization; a store may be in several groups")


class GroupChanges(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    name: str | None = Field(None, min_length=1, max_length=200)
    store_ids: list[str] | None = Field(None, min_length=1, max_length=1000)


def create(hub: Hub, organization: int, fields: GroupFields) -> GroupRecord:
    now = datetime.now(UTC)
    with transaction(hub.engine) as conn:
        members = _members(conn, organization, fields.store_ids)
        number = conn.execute(
            insert(location_groups).values(organization_id=organization, name=fields.name, created_at=now, updated_at=now)
        ).inserted_primary_key[0]
        _set_stores(conn, organization, number, members, now)
        return _record(conn, _row(conn, organization, number))


def update(hub: Hub, organization: int, group_id: str, changes: GroupChanges) -> GroupRecord:
    now = datetime.now(UTC)
    with transaction(hub.engine) as conn:
        row = _row(conn, organization, _number(group_id), lock=True)
        if changes.name is not None:
            conn.execute(location_groups.update().where(location_groups.c.id == row.id).values(name=changes.name, updated_at=now))
        if changes.store_ids is not None:
            members = _members(conn, organization, changes.store_ids)
            if set(members) != set(_stores_of(conn, row.id)):
                conn.execute(delete(location_group_stores).where(location_group_stores.c.group_id == row.id))
                _set_stores(conn, organization, row.id, members, now)
        return _record(conn, _row(conn, organization, row.id))


def remove(hub: Hub, organization: int, group_id: str) -> None:
    with transaction(hub.engine) as conn:
        row = _row(conn, organization, _number(group_id), lock=True)
        conn.execute(delete(location_group_stores).where(location_group_stores.c.group_id == row.id))
        conn.execute(delete(location_groups).where(location_groups.c.id == row.id))
        event_log.emit(conn, "location_group.updated", organization, None, {"location_group_id": ids.encode("location_group", row.id), "deleted": True})


def get(hub: Hub, organization: int, group_id: str) -> GroupRecord:
    with reading(hub.engine) as conn:
        return _record(conn, _row(conn, organization, _number(group_id)))


def list_groups(hub: Hub, organization: int, limit: int, token: str | None) -> Page:
    with reading(hub.engine) as conn:
        query = select(location_groups).where(location_groups.c.organization_id == organization)
        page = page_of(conn, query, location_groups.c.id, limit, token)
        return Page([_record(conn, row) for row in page.items], page.next_token)


def _number(group_id: str) -> int | None:
    return ids.decode("location_group", group_id)


def _row(conn: Connection, organization: int, number: int | None, lock: bool = False):
    query = select(location_groups).where(location_groups.c.id == number, location_groups.c.organization_id == organization)
    row = conn.execute(query.with_for_update() if lock else query).first() if number is not None else None
    if row is None:
        raise not_found("this location group")
    return row


def _members(conn: Connection, organization: int, store_ids: list[str]) -> list[int]:
    found = store_numbers(conn, organization, store_ids)
    errors = [FieldError(f"store_ids.{n}", f"no store {s} in your organization") for n, s in enumerate(store_ids) if s not in found]
    if errors:
        raise invalid("some stores are not yours", errors)
    return sorted(set(found.values()))


def _set_stores(conn: Connection, organization: int, group: int, members: list[int], now: datetime) -> None:
    conn.execute(insert(location_group_stores), [{"group_id": group, "store_id": s} for s in members])
    event_id = event_log.emit(
        conn,
        "location_group.updated",
        organization,
        None,
        {"location_group_id": ids.encode("location_group", group), "store_ids": [ids.encode("store", s) for s in members]},
        now,
    )
    conn.execute(location_groups.update().where(location_groups.c.id == group).values(stores_event_id=event_id, updated_at=now))


def _stores_of(conn: Connection, group: int) -> list[int]:
    c = location_group_stores.c
    return list(conn.execute(select(c.store_id).where(c.group_id == group).order_by(c.store_id)).scalars())


class GroupRecord(NamedTuple):
    """A location group and its stores' numbers (stockhub.representations.location_group renders it)."""

    row: Any
    stores: list[int]


def _record(conn: Connection, row) -> GroupRecord:
    return GroupRecord(row, _stores_of(conn, row.id))


# --- the group's availability ----------------------------------------------------------------


def _caught_up(hub: Hub) -> None:
    """Number what committed before this call, so the cursor covers it (read your writes)."""
    while event_log.sequence_events(hub.engine) == event_log.SEQUENCER_BATCH:
        pass


def _check_since(conn: Connection, group, since: int, cursor: int) -> None:
    if since < 0 or since > cursor:
        raise invalid("since is not a cursor this group's availability gave out", [FieldError("since", f"must be between 0 and {cursor}")])
    oldest = oldest_kept(conn)
    if since > 0 and (oldest is None or oldest > since + 1):
        raise conflict("the changes after this cursor are no longer kept: export the group in full again", reason="cursor_expired")
    changed = conn.execute(select(events.c.sequence).where(events.c.id == group.stores_event_id)).scalar()
    if changed is None or changed > since:
        raise conflict("the group's stores changed after this cursor: export the group in full again", reason="group_changed")


def _totals(conn: Connection, group, since: int | None, cursor: int, after: str | None, limit: int | None) -> Iterator:
    """The queries of the group's totals: all of them, or (since a cursor) those of the products
    whose levels changed after it, read first so the sums touch only those (proportional to the
    changes, not to the catalogue)."""
    members = _stores_of(conn, group.id)
    if since is None:
        yield group_totals(members, after=after, limit=limit)
        return
    _check_since(conn, group, since, cursor)
    changed = sorted(i for i in conn.execute(changed_since(conn, members, since)).scalars() if after is None or i > after)
    changed = changed[:limit] if limit is not None else changed
    for start in range(0, len(changed), CHANGED_CHUNK):
        yield group_totals(members, only=changed[start : start + CHANGED_CHUNK])


CHANGED_CHUNK = 2000


def availability_page(hub: Hub, organization: int, group_id: str, limit: int, token: str | None, since: int | None) -> dict:
    """A page of per-product totals by identifier, with the cursor of the first page."""
    check_limit(limit)
    after, cursor = None, None
    if token is not None:
        try:
            after, cursor, token_since = decode_token(token, list)
            if not (isinstance(after, str) and type(cursor) is int):
                raise ValueError(token)
        except ValueError:
            raise Malformed("the page token is not one this API gave out", [FieldError("token", "malformed")]) from None
        if token_since != since:
            raise Malformed("the page token belongs to another since", [FieldError("token", "since differs")])
    else:
        _caught_up(hub)
    with snapshot(hub.engine) as conn:
        group = _row(conn, organization, _number(group_id))
        if cursor is None:
            cursor = high_water(conn)
        rows = [row for query in _totals(conn, group, since, cursor, after, limit + 1) for row in conn.execute(query)]
    more = len(rows) > limit
    rows = rows[:limit]
    items = [{"identifier": row.identifier, "available": int(row.available), "stores": row.stores} for row in rows]
    return {"items": items, "next_token": encode_token([rows[-1].identifier, cursor, since]) if more else None, "cursor": cursor}


def availability_export(hub: Hub, organization: int, group_id: str, since: int | None, as_csv: bool = False) -> Iterator:
    """The cursor, then the rows (identifier, available, stores) in partitions: one snapshot,
    streamed. `as_csv`: the partitions are CSV bytes (on PostgreSQL straight from COPY)."""
    _caught_up(hub)
    with snapshot(hub.engine) as conn:
        group = _row(conn, organization, _number(group_id))
        cursor = high_water(conn)
        queries = _totals(conn, group, since, cursor, None, None)
        first = next(queries, None)  # a refusal (a stale cursor) is raised before anything is sent
        yield cursor
        for query in ([first] if first is not None else []) + list(queries):
            if as_csv and is_postgres(conn):
                yield from copy_csv(conn, query)
                continue
            result = conn.execution_options(stream_results=True, yield_per=5000).execute(query)
            for rows in result.partitions():
                yield _csv(rows) if as_csv else rows


def _csv(rows) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue().encode()
