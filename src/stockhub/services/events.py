"""The outbox: events written in the transaction of the change they describe, and read back.

Every event belongs to a stream (a store's, or its organization's when it concerns no one
store) and takes the stream's next sequence number, so a receiver can order events and catch
up with `GET /v1/events?store_id=…&after=N`. Writing an event also fans it out, in the same
transaction, into one delivery per matching webhook subscription: nothing is sent after
commit that was not written before it.

For other services (orders, products, partners):

    event_id = emit(conn, "order.created", organization_id, store_id, {"order_id": "ord_…", …})

inside their one write transaction (`conn` from `db.engine.transaction`), then, after the
transaction commits, `hub.work_arrived.set()` so an idle worker delivers it at once.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime
from functools import lru_cache
from math import ceil

from sqlalchemy import Connection, Table, func, insert, literal, or_, select

from stockhub import ids
from stockhub.db.engine import reading
from stockhub.db.locks import reserve_sequences
from stockhub.db.tables import events, inventory_changes, store_connections, webhook_deliveries, webhook_subscriptions
from stockhub.domain.access import Owner
from stockhub.domain.money import to_decimal_string
from stockhub.domain.stock import StockLevel
from stockhub.domain.webhooks import EVENT_TYPES, INVENTORY_BATCH
from stockhub.errors import FieldError, Problem, not_found
from stockhub.services.context import Hub
from stockhub.services.tenancy import store_number
from stockhub.timefmt import iso

MAX_EVENTS_PAGE = 100
_public = lru_cache(maxsize=4096)(ids.encode)  # a few organizations and stores, rendered on every event


def stream_of(organization_id: int, store_id: int | None) -> str:
    return f"store:{store_id}" if store_id is not None else f"organization:{organization_id}"


def emit(
    conn: Connection,
    type: str,
    organization_id: int,
    store_id: int | None,
    data: dict,
    sequence_key: str | None = None,
    now: datetime | None = None,
    partner_id: int | None = None,
) -> int:
    """Write one event (and its deliveries) in the caller's transaction; returns its number.

    `data` is rendered as given (public ids, decimal strings). The sequence is per store by
    default (`sequence_key` may name another stream, e.g. "order:12"; then `GET /v1/events`
    by store does not list it). `partner_id` makes the event that partner's (store.connected):
    it goes to the organization's subscriptions and that partner's, never another partner's.
    """
    if type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {type!r}")
    now = now or datetime.now(UTC)
    stream = sequence_key or stream_of(organization_id, store_id)
    sequence = reserve_sequences(conn, stream, 1)
    event_id = conn.execute(
        events.insert().values(
            organization_id=organization_id,
            store_id=store_id,
            type=type,
            stream=stream,
            sequence=sequence,
            occurred_at=now,
            data=json.dumps(data, separators=(",", ":")),
            partner_id=partner_id,
        )
    ).inserted_primary_key[0]
    _fan_out(conn, organization_id, store_id, type, stream, sequence, sequence, now, partner_id)
    return event_id


def emit_inventory_changes(
    conn: Connection, organization_id: int, store_id: int, upload_id: int | None, changes: Table, count: int, now: datetime
) -> int:
    """inventory.updated for the rows an ingest changed, straight from its `changes` table.

    Set-based: one event per INVENTORY_BATCH changes (numbered by identifier in SQL) and one
    INSERT … SELECT of the levels after the change; the availability and status receivers
    see are computed from those levels by the domain rule when an event is rendered.
    Returns the number of events written.
    """
    if count == 0:
        return 0
    batches = ceil(count / INVENTORY_BATCH)
    stream = stream_of(organization_id, store_id)
    first = reserve_sequences(conn, stream, batches)
    upload = ids.encode("upload", upload_id) if upload_id is not None else None
    conn.execute(
        events.insert(),
        [
            {
                "organization_id": organization_id,
                "store_id": store_id,
                "type": "inventory.updated",
                "stream": stream,
                "sequence": first + i,
                "occurred_at": now,
                "data": json.dumps({"upload_id": upload, "batch": i + 1, "batches": batches}, separators=(",", ":")),
                "change_count": min(INVENTORY_BATCH, count - i * INVENTORY_BATCH),
            }
            for i in range(batches)
        ],
    )
    c = changes.c
    numbered = (
        select(c, ((func.row_number().over(order_by=c.identifier) - 1) // INVENTORY_BATCH).label("batch"))
        .where(c.differs)
        .subquery()
    )
    batch_events = (
        select(events.c.id, (events.c.sequence - first).label("batch"))
        .where(events.c.stream == stream, events.c.sequence.between(first, first + batches - 1))
        .subquery()
    )
    conn.execute(
        insert(inventory_changes).from_select(
            ["event_id", "identifier", "on_hand_before", "on_hand", "committed", "safety_stock", "expired", "price_minor", "currency", "promotion_minor"],
            select(
                batch_events.c.id,
                numbered.c.identifier,
                numbered.c.on_hand_before,
                numbered.c.quantity,
                func.coalesce(numbered.c.committed_before, 0),
                func.coalesce(numbered.c.safety_stock_before, 0),
                literal(False),  # an applied report always un-expires the product
                numbered.c.price_minor,
                numbered.c.currency,
                numbered.c.promotion_minor,
            ).select_from(numbered.join(batch_events, batch_events.c.batch == numbered.c.batch)),
        )
    )
    _fan_out(conn, organization_id, store_id, "inventory.updated", stream, first, first + batches - 1, now)
    return batches


def emit_level_changes(conn: Connection, organization_id: int, store_id: int, changes: list[dict], now: datetime) -> int:
    """inventory.updated for a few levels changed one by one (orders, direct writes).

    Each change is a dict of inventory_changes' columns except event_id. Returns events written.
    """
    if not changes:
        return 0
    batches = [changes[i : i + INVENTORY_BATCH] for i in range(0, len(changes), INVENTORY_BATCH)]
    stream = stream_of(organization_id, store_id)
    first = reserve_sequences(conn, stream, len(batches))
    for n, batch in enumerate(batches):
        event_id = conn.execute(
            events.insert().values(
                organization_id=organization_id,
                store_id=store_id,
                type="inventory.updated",
                stream=stream,
                sequence=first + n,
                occurred_at=now,
                data=json.dumps({"upload_id": None, "batch": n + 1, "batches": len(batches)}, separators=(",", ":")),
                change_count=len(batch),
            )
        ).inserted_primary_key[0]
        conn.execute(inventory_changes.insert(), [change | {"event_id": event_id} for change in batch])
    _fan_out(conn, organization_id, store_id, "inventory.updated", stream, first, first + len(batches) - 1, now)
    return len(batches)


def _fan_out(
    conn: Connection,
    organization_id: int,
    store_id: int | None,
    type: str,
    stream: str,
    first: int,
    last: int,
    now: datetime,
    partner_id: int | None = None,
) -> None:
    """One delivery per matching subscription for events first..last of the stream (few subscriptions, set-based rows).

    A partner's subscription (always for one store) gets the store's events only while the partner
    is connected to it; a partner's own event goes to no other partner.
    """
    s = webhook_subscriptions.c
    query = select(s.id, s.status, s.event_types, s.store_ids, s.partner_id).where(
        s.organization_id == organization_id, s.status.in_(("active", "paused", "disabled"))
    )
    if partner_id is not None:
        query = query.where(or_(s.partner_id.is_(None), s.partner_id == partner_id))
    subscriptions = conn.execute(query).all()
    connected: set[int] | None = None
    for subscription in subscriptions:
        if type not in json.loads(subscription.event_types):
            continue
        if subscription.store_ids is not None and store_id not in json.loads(subscription.store_ids):
            continue
        if subscription.partner_id is not None:
            if connected is None:
                connected = _partners_connected(conn, store_id)
            if subscription.partner_id not in connected:
                continue
        active = subscription.status == "active"
        conn.execute(
            insert(webhook_deliveries).from_select(
                ["event_id", "subscription_id", "organization_id", "status", "attempts", "next_attempt_at", "created_at"],
                select(
                    events.c.id,
                    literal(subscription.id),
                    literal(organization_id),
                    literal("pending" if active else "held"),
                    literal(0),
                    literal(now if active else None, webhook_deliveries.c.next_attempt_at.type),
                    literal(now, webhook_deliveries.c.created_at.type),
                ).where(events.c.stream == stream, events.c.sequence.between(first, last)),
            )
        )


def _partners_connected(conn: Connection, store_id: int | None) -> set[int]:
    if store_id is None:
        return set()
    c = store_connections.c
    return set(conn.execute(select(c.partner_id).where(c.store_id == store_id)).scalars())


# --- reading events ------------------------------------------------------------------------


def render_events(conn: Connection, rows: Iterable) -> dict[int, dict]:
    """Events as receivers see them, by number; an inventory batch carries its changes."""
    rows = list(rows)
    batch_ids = [row.id for row in rows if row.type == "inventory.updated"]
    changes: dict[int, list] = defaultdict(list)
    if batch_ids:
        query = select(inventory_changes).where(inventory_changes.c.event_id.in_(batch_ids)).order_by(
            inventory_changes.c.event_id, inventory_changes.c.identifier
        )
        for change in conn.execute(query):
            changes[change.event_id].append(change)
    return {row.id: render_event(row, changes.get(row.id, [])) for row in rows}


def render_event(row, changes: list) -> dict:
    public_id = ids.encode("event", row.id)
    data = json.loads(row.data)
    if row.type == "inventory.updated":
        data["changes"] = [_render_change(public_id, change) for change in changes]
    return {
        "id": public_id,
        "type": row.type,
        "timestamp": iso(row.occurred_at),  # the Standard Webhooks payload field
        "occurred_at": iso(row.occurred_at),
        "organization_id": _public("organization", row.organization_id),
        "store_id": _public("store", row.store_id) if row.store_id is not None else None,
        "sequence": row.sequence,
        "data": data,
    }


def _render_change(event_id: str, change) -> dict:
    level = StockLevel(on_hand=change.on_hand, committed=change.committed, safety_stock=change.safety_stock, expired=change.expired)
    return {
        "change_id": f"{event_id}.{change.identifier}",
        "identifier": change.identifier,
        "on_hand_before": change.on_hand_before,
        "on_hand": level.on_hand,
        "committed": level.committed,
        "available": level.available,
        "status": level.status.value,
        "price": to_decimal_string(change.price_minor, change.currency),
        "currency": change.currency,
        "promotion_amount": to_decimal_string(change.promotion_minor, change.currency),
    }


def list_events(hub: Hub, owner: Owner | int, store_id: str | None, after: int, limit: int) -> dict:
    """A stream's events after sequence `after`, oldest first: the store's, or the organization's own.

    A partner reads only its connected store's stream (another store is not found), without the
    events of other partners (their store.connected): it sees gaps in the sequence there.
    """
    owner = owner if isinstance(owner, Owner) else Owner(owner)
    if not 1 <= limit <= MAX_EVENTS_PAGE:
        raise Problem(400, "Bad request", f"limit must be between 1 and {MAX_EVENTS_PAGE}", [FieldError("limit", "out of range")])
    if after < 0:
        raise Problem(400, "Bad request", "after must be 0 or a sequence number", [FieldError("after", "negative")])
    with reading(hub.engine) as conn:
        store = _stream_store(conn, owner, store_id)
        query = select(events).where(events.c.stream == stream_of(owner.organization, store), events.c.sequence > after)
        if owner.is_partner:
            query = query.where(or_(events.c.partner_id.is_(None), events.c.partner_id == owner.partner))
        rows = conn.execute(query.order_by(events.c.sequence).limit(limit)).all()
        rendered = render_events(conn, rows)
    items = [rendered[row.id] for row in rows]
    return {"items": items, "next_after": items[-1]["sequence"] if items else after}


def _stream_store(conn: Connection, owner: Owner, store_id: str | None) -> int | None:
    """The store whose stream to read (None: the organization's own); a partner reads its connected store's."""
    if not owner.is_partner:
        return store_number(conn, owner.organization, store_id) if store_id is not None else None
    if store_id is not None and ids.decode("store", store_id) != owner.store:
        raise not_found(f"store {store_id}")
    return owner.store
