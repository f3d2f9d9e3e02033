"""Orders: booking against live availability (all lines or none), and each step after."""

from __future__ import annotations

import re
from collections import defaultdict
from types import SimpleNamespace
from datetime import UTC, datetime
from typing import Any, Literal, NamedTuple

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import Connection, bindparam, exists, select

from stockhub import feeds, ids, metrics, representations
from stockhub.db import level_writes
from stockhub.db.engine import insert_new, reading, transaction
from stockhub.db.flights import Flight
from stockhub.db.locks import lock_order, send_lock_levels, sharing
from stockhub.db.tables import order_lines, orders, stores
from stockhub.domain.access import Scope
from stockhub.domain.money import to_minor
from stockhub.domain.orders import STAMPS, Action, IllegalTransition, OrderStatus, booking_effect, next_status, stock_effect
from stockhub.domain.stock import Shortfall
from stockhub.errors import FieldError, InsufficientStock, ServiceError, conflict, invalid, not_found
from stockhub.services import availability, customers, events, idempotency, offers, stock_moves
from stockhub.services import feeds as feeds_service
from stockhub.services.fields import Amount, Bool, Currency, Int
from stockhub.services.context import Hub
from stockhub.services.paging import Page, page_of
from stockhub.services.scope import as_scope, send_store_rows, visible


class Channel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["web", "mobile", "store", "marketplace"]
    name: str = Field(min_length=1, max_length=100)


class Line(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    identifier: str = Field(min_length=1, max_length=64, description="barcode (any spelling) or SKU")
    quantity: Int = Field(ge=1, le=100_000)
    unit_price: Amount = Field(ge=0, description="per unit, in the order's currency")
    store_id: str | None = Field(None, description="the fulfilling store; default: the fulfilment store")


class Fulfilment(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["pickup", "ship"]
    store_id: str


class Booking(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    external_id: str = Field(min_length=1, max_length=64, description="your order id: a retry with it is safe")
    channel: Channel
    currency: Currency
    customer: customers.CustomerRef | None = None
    lines: list[Line] = Field(min_length=1, max_length=500)
    fulfilment: Fulfilment | None = Field(None, description="required unless an offer_token names the stores")
    offer_token: str | None = Field(
        None, max_length=4000, description="from POST /v1/pickup-options or /v1/delivery-options: books the offered stores"
    )
    placed_at: AwareDatetime | None = None
    payment_type: Literal["checkout", "card", "manual"] = "checkout"
    is_preconfirmed: Bool = False

    @model_validator(mode="after")
    def _stores(self) -> Booking:
        if self.offer_token is None and self.fulfilment is None:
            raise ValueError("give fulfilment (type and store_id), or an offer_token")
        return self

    def fingerprint(self) -> str:
        request = self.model_dump(mode="json")
        if request["offer_token"] is None:  # as before offers: an order's retry keeps its fingerprint
            del request["offer_token"]
        return idempotency.fingerprint(request)


class OrderChanges(BaseModel):
    """The fields a client may still change; everything else about an order is read-only."""

    model_config = ConfigDict(extra="forbid")
    custom_invoice_number: str | None = Field(None, min_length=1, max_length=100)
    dispatch_planned_at: AwareDatetime | None = None
    delivery_planned_at: AwareDatetime | None = None
    paid_at: AwareDatetime | None = None
    payment_status: Literal["pending", "paid", "refunded", "failed"] = None  # absent: unchanged; never null


# --- booking ---------------------------------------------------------------------------------


def book(hub: Hub, scope: Scope | int, booking: Booking) -> tuple[OrderRecord, bool]:
    """Book an order at stores the scope reaches: commit every line's stock or none. Returns
    (order, created now). One transaction: a retry of the same `external_id` is found by the
    order's own insert, a concurrent one waits for it. Counted in the metrics (booked, replayed,
    refused by reason)."""
    try:
        order, created = _booked(hub, scope, booking)
    except ServiceError as refusal:
        metrics.BOOKINGS.labels("refused").inc()
        metrics.BOOKING_REFUSALS.labels(refusal_reason(refusal)).inc()
        raise
    metrics.BOOKINGS.labels("booked" if created else "replayed").inc()
    return order, created


def refusal_reason(refusal: ServiceError) -> str:
    """insufficient_stock, conflict (an external_id booked with another body), invalid, not_found, ..."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type(refusal).__name__).lower()


def _booked(hub: Hub, scope: Scope | int, booking: Booking) -> tuple[OrderRecord, bool]:
    scope = as_scope(scope)
    fingerprint = booking.fingerprint()
    with transaction(hub.engine) as conn:
        if booking.offer_token is None:
            return _book(conn, scope, booking, fingerprint)
        try:
            offered = _as_offered(hub, scope.organization, booking)
        except ServiceError:  # a retry after the offer expired still gets its order back
            if (replay := _replay_of(conn, scope, booking.external_id, fingerprint)) is not None:
                return replay, False
            raise
        return _book(conn, scope, offered, fingerprint)


def _book(conn: Connection, scope: Scope, booking: Booking, fingerprint: str) -> tuple[OrderRecord, bool]:
    """Two flights (db.flights): the locks (stores shared, the order's insert, the levels), then
    the writes with the COMMIT. The levels are locked before the lines are checked against the
    stores' rules, under the identifier every rule gives a valid one (feeds.lookup_identifier)."""
    now = datetime.now(UTC)
    organization = scope.organization
    named = [booking.fulfilment.store_id, *(line.store_id for line in booking.lines if line.store_id)]
    customer_id = customers.find_or_make(conn, organization, booking.customer)[0] if booking.customer else None
    status = OrderStatus.CONFIRMED if booking.is_preconfirmed else OrderStatus.REQUESTED
    values = {
        "organization_id": organization,
        "external_id": booking.external_id,
        "request_hash": fingerprint,
        "status": status.value,
        "channel_type": booking.channel.type,
        "channel_name": booking.channel.name,
        "currency": booking.currency,
        "customer_id": customer_id,
        "fulfilment_type": booking.fulfilment.type,
        "fulfilment_store_id": ids.decode("store", booking.fulfilment.store_id),
        "payment_type": booking.payment_type,
        "payment_status": "pending",
        "placed_at": booking.placed_at or now,
        "confirmed_at": now if booking.is_preconfirmed else None,
        "created_at": now,
        "updated_at": now,
    }
    guessed = _keys_to_lock(scope, booking)
    with Flight(conn) as flight:
        flight.generic_plans()
        found_stores = send_store_rows(flight, scope, named, lock=sharing)
        inserted = flight.send(_new_order(conn, tuple(values)), values) if scope.reaches(values["fulfilment_store_id"]) else None
        locked = send_lock_levels(flight, guessed, organization)
    lines = _resolved_lines(booking, found_stores())  # the stores are shared until commit
    order_id = inserted.scalar() if inserted is not None else None
    if order_id is None:  # this external id is booked already (or was being booked: then it waited for that one)
        return _replayed(conn, scope, booking.external_id, fingerprint), False

    wanted: dict[stock_moves.Key, int] = defaultdict(int)
    for line in lines:  # lines naming one product at one store are checked as one
        wanted[(line["store_id"], line["identifier"])] += line["quantity"]
    levels = locked()
    if unlocked := [key for key in wanted if key not in guessed]:  # a store's rule made another identifier (not expected)
        levels |= stock_moves.lock(conn, unlocked, stores_shared=True)
    effect, reason = booking_effect(booking.is_preconfirmed)
    changes, short = [], []
    for key, quantity in sorted(wanted.items()):
        try:
            changes += stock_moves.plan(levels, {key: quantity}, effect)
        except Shortfall as shortfall:
            short.append(_shortfall(key, shortfall, lines))
    if short:  # the transaction rolls back, the order's insert with it
        unmapped = feeds_service.unmapped_named(conn, [(k[0], k[1], _given(k, lines)) for k in wanted if k not in levels])
        if unmapped:
            raise conflict(
                "some lines name unmapped feed items (a feed of the store holds them, connected to no product):"
                " map them with PUT /v1/feeds/{feed_id}/items/{external_id}/product; nothing was booked",
                unmapped=unmapped,
            )
        raise InsufficientStock("some lines cannot be served whole: nothing was booked", extra={"shortfalls": short})

    rows = [line | {"order_id": order_id, "line_no": n} for n, line in enumerate(lines, 1)]
    order = OrderRecord(SimpleNamespace(id=order_id, **values, **_UNSET), [SimpleNamespace(**row) for row in rows])
    order = order._replace(shown=representations.order(order))
    created = events.event_row("order.created", organization, values["fulfilment_store_id"], now, {"order": order.shown})
    also = level_writes.Writes(order_lines=rows, events=[created])  # sent with the levels
    with Flight(conn) as flight:
        stock_moves.write(conn, organization, changes, reason, now, order_id=order_id, also=also, flight=flight)
        flight.commit()
    return order, True


def _keys_to_lock(scope: Scope, booking: Booking) -> set[stock_moves.Key]:
    """(store, identifier) of each line whose store the scope may reach, the identifier as every
    store's rule gives it when valid; lines that are not valid are refused after the locks."""
    keys = set()
    for line in booking.lines:
        store = ids.decode("store", line.store_id or booking.fulfilment.store_id)
        try:
            identifier = feeds.lookup_identifier(line.identifier)
        except feeds.InvalidIdentifier:
            continue
        if store is not None and scope.reaches(store):
            keys.add((store, identifier))
    return keys


def _new_order(conn: Connection, columns: tuple[str, ...]):
    """INSERT … ON CONFLICT DO NOTHING RETURNING id of `columns`, only where the fulfilling store is
    the organization's (it is sent before the stores are read); built once per dialect."""
    key = (conn.dialect.name, columns)
    if key not in _NEW_ORDER:
        values = {name: bindparam(name, type_=orders.c[name].type) for name in columns}
        ours = exists().where(stores.c.id == values["fulfilment_store_id"], stores.c.organization_id == values["organization_id"])
        _NEW_ORDER[key] = (
            insert_new(conn, orders, ["organization_id", "external_id"])
            .from_select(list(columns), select(*values.values()).where(ours))
            .returning(orders.c.id)
        )
    return _NEW_ORDER[key]


_NEW_ORDER: dict[tuple[str, tuple[str, ...]], Any] = {}


# What a new order has not got yet: rendered as null.
_UNSET = {name: None for name in ("paid_at", "custom_invoice_number", "dispatch_planned_at", "delivery_planned_at", "dispatched_at",
                                   "delivered_at", "cancelled_at", "cancellation_reason", "restocked")}


def _announce(conn: Connection, type: str, organization: int, order_id: int, now: datetime, changed: list[str] | None = None) -> OrderRecord:
    """order.updated (or created) on the fulfilling store's events. Returns the order."""
    row = _order_row(conn, organization, order_id)
    order = _record(conn, row)
    data = {"order": representations.order(order)} | ({"changed": changed} if changed is not None else {})
    events.emit(conn, type, organization, row.fulfilment_store_id, data, now=now)
    return order


def _given(key: stock_moves.Key, lines: list[dict]) -> str:
    return next(line["identifier_given"] for line in lines if (line["store_id"], line["identifier"]) == key)


def _shortfall(key: stock_moves.Key, shortfall: Shortfall, lines: list[dict]) -> dict:
    given = next(line["identifier_given"] for line in lines if (line["store_id"], line["identifier"]) == key)
    return {
        "identifier": given,
        "store_id": ids.encode("store", key[0]),
        "requested": shortfall.requested,
        "available": shortfall.available,
    }


def _as_offered(hub: Hub, organization: int, booking: Booking) -> Booking:
    """The booking with the stores its offer token names; the token must be ours, unexpired, this
    organization's and for exactly this bag."""
    errors = [FieldError(f"lines.{n}.store_id", "an offer_token names the stores: leave store_id out") for n, line in enumerate(booking.lines) if line.store_id]
    if errors:
        raise invalid("the order names stores and an offer_token", errors)
    bag, _ = availability.canonical_bag(booking.lines, "lines")
    offer = offers.check(hub.secret, booking.offer_token, organization, bag)
    store_of = {identifier: ids.encode("store", store) for identifier, (_, store) in offer.lines.items()}
    lines = [line.model_copy(update={"store_id": store_of[feeds.lookup_identifier(line.identifier)]}) for line in booking.lines]
    fulfilment = Fulfilment(type="pickup" if offer.kind == "pickup" else "ship", store_id=lines[0].store_id)
    if booking.fulfilment is not None and booking.fulfilment.type != fulfilment.type:
        raise invalid("the fulfilment differs from the offer", [FieldError("fulfilment.type", f"the offer is for {fulfilment.type}")])
    return booking.model_copy(update={"lines": lines, "fulfilment": fulfilment})


def _resolved_lines(booking: Booking, stores: dict) -> list[dict]:
    """Lines with canonical identifiers (each store's rule), store row ids and prices in minor
    units; every error at once. `stores`: the reachable stores named, by public id."""
    errors: list[FieldError] = []
    fulfilment = stores.get(booking.fulfilment.store_id)
    if fulfilment is None:
        errors.append(FieldError("fulfilment.store_id", f"no store {booking.fulfilment.store_id} in your organization"))
    resolved = []
    for n, line in enumerate(booking.lines):
        store_id = line.store_id or booking.fulfilment.store_id
        store = stores.get(store_id)
        if store is None and line.store_id:
            errors.append(FieldError(f"lines.{n}.store_id", f"no store {store_id} in your organization"))
        try:
            identifier = feeds.rule_for(store is not None and store.custom_products).one(line.identifier)
        except feeds.InvalidIdentifier as error:
            errors.append(FieldError(f"lines.{n}.identifier", str(error)))
            identifier = None
        try:
            minor = to_minor(line.unit_price, booking.currency)
        except ValueError as error:
            errors.append(FieldError(f"lines.{n}.unit_price", str(error)))
            minor = 0
        resolved.append(
            {
                "store_id": store.id if store is not None else None,
                "identifier": identifier,
                "identifier_given": line.identifier,
                "quantity": line.quantity,
                "unit_price_minor": minor,
            }
        )
    if errors:
        raise invalid("the order has invalid lines", errors)
    return resolved


def _replayed(conn: Connection, scope: Scope, external_id: str, fingerprint: str) -> OrderRecord:
    replay = _replay_of(conn, scope, external_id, fingerprint)
    if replay is None:
        raise conflict(f"order {external_id} was booked with a different request; an external_id names one order")
    return replay


def _replay_of(conn: Connection, scope: Scope, external_id: str, fingerprint: str) -> OrderRecord | None:
    """The order booked before under this external id, if this is a retry of the same request."""
    existing = conn.execute(select(orders).where(orders.c.organization_id == scope.organization, orders.c.external_id == external_id)).first()
    if existing is None or existing.request_hash != fingerprint or not scope.reaches(existing.fulfilment_store_id):
        return None
    return _record(conn, existing)


# --- after booking ---------------------------------------------------------------------------


def step(hub: Hub, scope: Scope | int, order_id: str, action: Action, *, reason: str | None = None, restock: bool = False) -> OrderRecord:
    """Move an order on (confirm, dispatch, deliver, cancel), with its stock effect."""
    now = datetime.now(UTC)
    scope = as_scope(scope)
    organization = scope.organization
    with transaction(hub.engine) as conn:
        order = _locked(conn, scope, order_id)
        status = OrderStatus(order.status)
        try:
            new_status = next_status(status, action)
        except IllegalTransition as error:
            raise conflict(f"{error}; allowed: {', '.join(error.allowed) or 'nothing, it is final'}", allowed=error.allowed) from None
        effect = stock_effect(status, action, restock)
        values = {"status": new_status.value, STAMPS[new_status]: now, "updated_at": now}
        if action is Action.CANCEL:
            values |= {"cancellation_reason": reason, "restocked": effect is not None and status is not OrderStatus.REQUESTED}
        conn.execute(orders.update().where(orders.c.id == order.id).values(**values))
        rendered = _announce(conn, "order.updated", organization, order.id, now, changed=sorted(values))
        if effect is not None:
            wanted: dict[stock_moves.Key, int] = defaultdict(int)
            for line in conn.execute(select(order_lines).where(order_lines.c.order_id == order.id)):
                wanted[(line.store_id, line.identifier)] += line.quantity
            levels = stock_moves.lock(conn, wanted)
            stock_moves.write(conn, organization, stock_moves.plan(levels, wanted, effect[0]), effect[1], now, order_id=order.id)
    return rendered


def update(hub: Hub, scope: Scope | int, order_id: str, changes: OrderChanges) -> OrderRecord:
    given = changes.model_dump(exclude_unset=True)
    scope = as_scope(scope)
    organization = scope.organization
    with transaction(hub.engine) as conn:
        order = _locked(conn, scope, order_id)
        errors = []
        if "custom_invoice_number" in given and order.confirmed_at is not None and order.custom_invoice_number:
            errors.append(FieldError("custom_invoice_number", "already set on a confirmed order: it can no longer change"))
        if "paid_at" in given and order.payment_type != "manual":
            errors.append(FieldError("paid_at", f"only manual payments are marked paid here; this order's is {order.payment_type}"))
        if errors:
            raise invalid("some fields cannot be changed", errors)
        if given:
            now = datetime.now(UTC)
            conn.execute(orders.update().where(orders.c.id == order.id).values(**given, updated_at=now))
            _announce(conn, "order.updated", organization, order.id, now, changed=sorted(given))
        rendered = _record(conn, _order_row(conn, organization, order.id))
    return rendered


def get(hub: Hub, scope: Scope | int, order_id: str) -> OrderRecord:
    with reading(hub.engine) as conn:
        row = conn.execute(select(orders).where(orders.c.id == ids.decode("order", order_id), *_reachable(scope))).first()
        if row is None:
            raise not_found(f"order {order_id}")
        return _record(conn, row)


def list_orders(hub: Hub, scope: Scope | int, limit: int, token: str | None, status: str | None) -> Page:
    query = select(orders).where(*_reachable(scope))
    if status:
        query = query.where(orders.c.status == status)
    with reading(hub.engine) as conn:
        return records(conn, page_of(conn, query, orders.c.id, limit, token, descending=True))


def of_customer(hub: Hub, organization: int, customer_id: str, limit: int, token: str | None) -> Page:
    """A customer's order history, newest first."""
    customers.get(hub, organization, customer_id)
    query = select(orders).where(orders.c.organization_id == organization, orders.c.customer_id == ids.decode("customer", customer_id))
    with reading(hub.engine) as conn:
        return records(conn, page_of(conn, query, orders.c.id, limit, token, descending=True))


def records(conn: Connection, page: Page) -> Page:
    """A page of orders with their lines, read in one statement."""
    lines: dict[int, list] = {row.id: [] for row in page.items}
    if lines:
        query = select(order_lines).where(order_lines.c.order_id.in_(lines)).order_by(order_lines.c.order_id, order_lines.c.line_no)
        for line in conn.execute(query):
            lines[line.order_id].append(line)
    return Page([OrderRecord(row, lines[row.id]) for row in page.items], page.next_token)


def _locked(conn: Connection, scope: Scope, order_id: str):
    number = ids.decode("order", order_id)
    order = lock_order(conn, scope.organization, number) if number is not None else None
    if order is None or not scope.reaches(order.fulfilment_store_id):
        raise not_found(f"order {order_id}")
    return order


def _reachable(scope: Scope | int) -> list:
    """The orders a caller may see: its organization's, or only its connected store's."""
    return visible(as_scope(scope), orders.c.organization_id, orders.c.fulfilment_store_id)


def _order_row(conn: Connection, organization: int, number: int):
    return conn.execute(select(orders).where(orders.c.id == number, orders.c.organization_id == organization)).one()


class OrderRecord(NamedTuple):
    """An order and its lines (stockhub.representations.order renders it; `shown`: as rendered
    for its order.created event, when it was booked just now)."""

    row: Any
    lines: list
    shown: dict | None = None


def _record(conn: Connection, row) -> OrderRecord:
    lines = conn.execute(select(order_lines).where(order_lines.c.order_id == row.id).order_by(order_lines.c.line_no)).all()
    return OrderRecord(row, lines)
