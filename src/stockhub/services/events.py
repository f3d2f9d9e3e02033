"""The outbox: events written in the transaction of the change they describe, numbered after
commit, and read back.

An event commits with its change and, in the same transaction, one delivery per matching
webhook subscription: nothing is sent after commit that was not written before it. It is
written without a number: `sequence_events` (one sequencer at a time, run by the workers and
before every catch-up read) numbers committed events afterwards, in the order they became
visible — the high-water-mark technique of event stores. So writers of one store never wait
for each other's sequence number, and a reader paging `GET /v1/events?after=N` (per store or
per organization) never skips an event: every number up to the highest it sees is committed.
A store's events carry increasing numbers with gaps (the numbers are shared by all streams).
Deliveries become due when their event is numbered, so every payload carries its `sequence`.

For other services (orders, products, partners):

    emit(conn, "order.created", organization_id, store_id, {"order_id": "ord_…", …})

inside their one write transaction (`conn` from `db.engine.transaction`, the unit of work,
which wakes the workers after commit).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, NamedTuple

import orjson
import polars as pl
from sqlalchemy import Connection, Engine, bindparam, func, or_, select, update

from stockhub import ids
from stockhub.db import level_writes
from stockhub.db.availability import HIGHEST_NUMBER
from stockhub.db.engine import is_postgres, new_work, one_statement, reading, transaction
from stockhub.db.flights import Flight, one_of, send_rows
from stockhub.db.locks import send_lock_sequencer
from stockhub.db.stock_apply import CHANGED, in_identifier_order
from stockhub.db.tables import events, store_connections, webhook_deliveries, webhook_subscriptions
from stockhub.domain.access import Scope
from stockhub.domain.webhooks import EVENT_TYPES, INVENTORY_BATCH
from stockhub.errors import FieldError, Malformed
from stockhub.services.context import Hub
from stockhub.services.paging import check_limit
from stockhub.services.scope import as_scope, store_number

MAX_EVENTS_PAGE = 100
SEQUENCER_BATCH = 5000
CHANGE = list(CHANGED)  # an inventory change's fields: the level after it, and on_hand_before


class Change(NamedTuple):
    """One stock level an inventory.updated event reports (representations.event renders it)."""

    identifier: str
    on_hand_before: int | None  # None: new to the store
    on_hand: int
    committed: int
    safety_stock: int
    expired: bool
    price_minor: int
    currency: str
    promotion_minor: int | None


def emit(
    conn: Connection,
    type: str,
    organization_id: int,
    store_id: int | None,
    data: dict,
    now: datetime | None = None,
    partner_id: int | None = None,
) -> int:
    """Write one event in the caller's transaction; returns its row id.

    `data` is rendered as given (public ids, decimal strings). `partner_id` makes the event that
    partner's (store.connected): it goes to the organization's subscriptions and that partner's,
    never another partner's.
    """
    return _write(conn, type, organization_id, store_id, now or datetime.now(UTC), [(data, None)], partner_id)[0]


def _write(
    conn: Connection,
    type: str,
    organization_id: int,
    store_id: int | None,
    now: datetime,
    bodies: list[tuple[dict, int | None]],
    partner_id: int | None = None,
) -> list[int]:
    """Insert events of one type (data, change_count each); their row ids, in order."""
    rows = [event_row(type, organization_id, store_id, now, data, change_count, partner_id) for data, change_count in bodies]
    event_ids = list(conn.execute(events.insert().returning(events.c.id, sort_by_parameter_order=True), rows).scalars())
    new_work(conn, events_only=True)  # the sequencer numbers them and makes their deliveries
    return event_ids


def event_row(
    type: str, organization_id: int, store_id: int | None, now: datetime, data: dict, change_count: int | None = None, partner_id: int | None = None,
    changes: str | None = None,
) -> dict:
    """An event as written (unnumbered): `data` rendered as given (public ids, decimal strings);
    `changes`, an inventory.updated's, as `_encoded` wrote them."""
    if type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {type!r}")
    return {
        "organization_id": organization_id,
        "store_id": store_id,
        "type": type,
        "occurred_at": now,
        "data": orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS).decode(),  # compact, as json.dumps wrote it, at a tenth of the CPU
        "change_count": change_count,
        "partner_id": partner_id,
        "changes": changes,
    }


def _encoded(columns: dict[str, list]) -> str:
    """An event's changes as its row keeps them: one JSON array per field (CHANGE), in the order
    given — identifier order (one row per event: 500 changes cost one row, not 500 keyed rows)."""
    return orjson.dumps({name: columns[name] for name in CHANGE}).decode()


def _decoded(text: str) -> list[Change]:
    columns = orjson.loads(text)
    return [Change(*values) for values in zip(*(columns[name] for name in CHANGE), strict=True)]


def emit_inventory_changes(
    conn: Connection, organization_id: int, store_id: int, upload_id: int | None, changed: pl.DataFrame, now: datetime
) -> int:
    """inventory.updated for the levels an ingest changed (`changed`: stock_apply's CHANGED frame):
    one event per INVENTORY_BATCH changes in identifier order, each row carrying its changes; the
    availability and status receivers see are computed from those levels by the domain rule when
    an event is rendered. Returns the number of events written."""
    if changed.is_empty():
        return 0
    documents = (  # `_encoded`'s form, made by polars: ~0.05 s for 200,000 changes
        in_identifier_order(changed)
        .select(CHANGE)
        .group_by(pl.int_range(pl.len()) // INVENTORY_BATCH, maintain_order=True)
        .agg(pl.len().alias("count"), pl.struct(pl.all().implode()).struct.json_encode().alias("changes"))
    )
    batches = documents.height
    upload = ids.encode("upload", upload_id) if upload_id is not None else None
    rows = [
        event_row(
            "inventory.updated", organization_id, store_id, now, {"upload_id": upload, "batch": n + 1, "batches": batches}, count, changes=changes
        )
        for n, (count, changes) in enumerate(documents.select("count", "changes").iter_rows())
    ]
    conn.execute(events.insert(), rows)  # ids in list order: the sequencer numbers the batches in order
    new_work(conn)
    return batches


def emit_level_changes(conn: Connection, organization_id: int, store_id: int, changes: list[dict], now: datetime) -> int:
    """inventory.updated for levels changed by a sweep (expiry); `stock_moves.write` sends its own
    with the levels. Each change is a dict of the CHANGE fields. Returns events written."""
    written = level_change_events(organization_id, store_id, changes, now)
    level_writes.send(conn, level_writes.Writes(events=written))
    return len(written)


def level_change_events(organization_id: int, store_id: int, changes: list[dict], now: datetime) -> list[dict]:
    """inventory.updated rows for levels changed one by one (dicts of the CHANGE fields): an event
    per INVENTORY_BATCH changes, each carrying its changes."""
    batches = [sorted(changes[i : i + INVENTORY_BATCH], key=lambda c: c["identifier"]) for i in range(0, len(changes), INVENTORY_BATCH)]
    return [
        event_row(
            "inventory.updated", organization_id, store_id, now, {"upload_id": None, "batch": n + 1, "batches": len(batches)}, len(batch),
            changes=_encoded({name: [change[name] for change in batch] for name in CHANGE}),
        )
        for n, batch in enumerate(batches)
    ]


def _fan_out(conn: Connection, numbered: list, now: datetime) -> list[dict]:
    """One delivery per matching subscription for each numbered event: the rows, not yet written.

    Done by the sequencer, not the writer: a booking or an upload writes only its events, and
    subscriptions are matched once their events are numbered (few subscriptions per
    organization, read once per batch). A partner's subscription (always for one store) gets
    the store's events only while the partner is connected to it; a partner's own event
    (store.connected) goes to the organization's subscriptions and that partner's only. A
    subscription gets the events that occurred once it existed: numbering after commit must not
    hand a new subscription an older event that the sequencer had not reached yet.
    On PostgreSQL the subscriptions and the stores' partners are read in one round trip.
    """
    organizations = sorted({event.organization_id for event in numbered})
    stores = sorted({event.store_id for event in numbered if event.store_id is not None})
    postgres = is_postgres(conn)
    with Flight(conn) as flight:
        found = flight.send(_SUBSCRIPTIONS_OF[postgres], {"organizations": organizations})
        partners = flight.send(_PARTNERS_OF[postgres], {"stores": stores})
    found, partners = found.rows(), partners.rows()
    subscriptions: dict[int, list] = defaultdict(list)
    for row in found:
        subscriptions[row.organization_id].append((row, set(json.loads(row.event_types)), _stores_of(row)))
    connected: dict[int, dict[int, datetime]] = defaultdict(dict)  # the partners connected to each store now, with when they connected
    for row in partners:
        connected[row.store_id][row.partner_id] = row.created_at
    rows = []
    for event in numbered:
        for subscription, types, stores in subscriptions.get(event.organization_id, []):
            if event.type not in types or (stores is not None and event.store_id not in stores):
                continue
            if subscription.created_at > event.occurred_at:
                continue
            if subscription.partner_id is not None and not _was_connected(connected, event, subscription.partner_id):
                continue
            if event.partner_id is not None and subscription.partner_id not in (None, event.partner_id):
                continue
            active = subscription.status == "active"
            rows.append(
                {
                    "event_id": event.id,
                    "subscription_id": subscription.id,
                    "organization_id": event.organization_id,
                    "status": "pending" if active else "held",
                    "attempts": 0,
                    "next_attempt_at": now if active else None,
                    "created_at": now,
                }
            )
    return rows


_s, _c = webhook_subscriptions.c, store_connections.c
_SUBSCRIPTION_COLUMNS = (_s.id, _s.organization_id, _s.status, _s.event_types, _s.store_ids, _s.partner_id, _s.created_at)
_SUBSCRIPTIONS_OF = {  # by dialect (is PostgreSQL)
    postgres: select(*_SUBSCRIPTION_COLUMNS).where(
        one_of(_s.organization_id, "organizations", postgres), one_of(_s.status, "live", postgres, ["active", "paused", "disabled"])
    )
    for postgres in (True, False)
}
_PARTNERS_OF = {postgres: select(_c.store_id, _c.partner_id, _c.created_at).where(one_of(_c.store_id, "stores", postgres)) for postgres in (True, False)}

def _stores_of(subscription) -> set[int] | None:
    return None if subscription.store_ids is None else set(json.loads(subscription.store_ids))


def _was_connected(connected: dict[int, dict[int, datetime]], event, partner: int) -> bool:
    """The partner is connected to the event's store, and was when the event happened (a partner
    that reconnected after it does not get what happened while it was away)."""
    since = connected.get(event.store_id, {}).get(partner)
    return since is not None and since <= event.occurred_at


# --- numbering events after commit ---------------------------------------------------------


_ANY_PENDING = select(events.c.id).where(events.c.sequence.is_(None)).limit(1)
# The last number is read inside the numbering statement: its snapshot is taken after the
# sequencer's lock, so it sees every number an earlier sequencer committed.
_LAST_NUMBER = HIGHEST_NUMBER.scalar_subquery()
_PENDING = (
    select(events.c.id, (_LAST_NUMBER + func.row_number().over(order_by=events.c.id)).label("number"))
    .where(events.c.sequence.is_(None))
    .order_by(events.c.id)
    .limit(bindparam("limit"))
    .subquery()
)
_NUMBER_EVENTS = (  # built once: the sequencer runs after nearly every write
    update(events)
    .values(sequence=_PENDING.c.number)
    .where(events.c.id == _PENDING.c.id)
    .returning(events.c.id, events.c.organization_id, events.c.store_id, events.c.type, events.c.partner_id, events.c.occurred_at, events.c.sequence)
)


def sequence_events(engine: Engine, limit: int = SEQUENCER_BATCH) -> int:
    """Number the committed events that have no number yet, oldest first; returns how many.

    One sequencer at a time (`send_lock_sequencer`), so numbers are handed out in increasing order
    and every number at or below the highest one a reader can see is committed. The numbered
    events' deliveries are made in the same transaction (`_fan_out`), due at once.
    """
    with one_statement(engine) as conn:
        if conn.execute(_ANY_PENDING).first() is None:
            return 0
    with transaction(engine) as conn:  # on PostgreSQL three round trips, each statement prepared once per connection (db.flights)
        with Flight(conn) as flight:
            send_lock_sequencer(flight)
            numbered = flight.send(_NUMBER_EVENTS, {"limit": limit})
        numbered = sorted(numbered.rows(), key=lambda event: event.sequence)
        deliveries = _fan_out(conn, numbered, datetime.now(UTC)) if numbered else []
        with Flight(conn) as flight:
            send_rows(flight, webhook_deliveries, deliveries)
            flight.commit()
        if deliveries:
            new_work(conn, events_only=True)  # deliveries are due
    return len(numbered)


# --- reading events ------------------------------------------------------------------------


def changes_of(conn: Connection, rows: Iterable) -> dict[int, list[Change]]:
    """The changes each inventory.updated event carries, by event id (stockhub.representations.event
    renders them). `rows` need only `id` and `type`: the changes are read here, once per event."""
    batch_ids = [row.id for row in rows if row.type == "inventory.updated"]
    if not batch_ids:
        return {}
    query = select(events.c.id, events.c.changes).where(events.c.id.in_(batch_ids), events.c.changes.is_not(None))
    return {row.id: _decoded(row.changes) for row in conn.execute(query)}


def changes_in(text: str | None) -> list[Change]:
    """The changes an event row's `changes` column holds (none: an event of another type)."""
    return _decoded(text) if text is not None else []


HEADERS = [column for column in events.c if column.name != "changes"]  # an event without its changes (`changes_of` reads them)


class EventRecord(NamedTuple):
    row: Any
    changes: list


def list_events(hub: Hub, owner: Scope | int, store_id: str | None, after: int, limit: int) -> list[EventRecord]:
    """Events numbered after `after`, oldest first: one store's, or (no store) all of the
    organization's, its own and every store's.

    A partner reads only its connected store's events (another store is not found; no store:
    its connected store), without other partners' own events (their store.connected).
    """
    owner = as_scope(owner)
    check_limit(limit, MAX_EVENTS_PAGE)
    if after < 0:
        raise Malformed("after must be 0 or a sequence number", [FieldError("after", "negative")])
    while sequence_events(hub.engine) == SEQUENCER_BATCH:  # read your writes: what committed before this call is listed
        pass
    with reading(hub.engine) as conn:
        store = _stream_store(conn, owner, store_id)
        query = select(*HEADERS).where(events.c.organization_id == owner.organization, events.c.sequence > after)
        if store is not None:
            query = query.where(events.c.store_id == store)
        if owner.is_partner:
            query = query.where(or_(events.c.partner_id.is_(None), events.c.partner_id == owner.partner))
        rows = conn.execute(query.order_by(events.c.sequence).limit(limit)).all()
        changes = changes_of(conn, rows)
    return [EventRecord(row, changes.get(row.id, [])) for row in rows]


def _stream_store(conn: Connection, scope: Scope, store_id: str | None) -> int | None:
    """The store whose events to read (None: the whole organization's; a partner: its connected store's)."""
    return store_number(conn, scope, store_id) if store_id is not None else scope.store
