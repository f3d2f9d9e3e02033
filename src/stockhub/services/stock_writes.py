"""Direct stock writes, for systems that are the inventory master: absolute counts and deltas."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection, select
from sqlalchemy.exc import IntegrityError

from stockhub import feeds
from stockhub.db.engine import reading, transaction
from stockhub.db.tables import stores
from stockhub.domain import places, stock
from stockhub.domain.money import to_minor
from stockhub.domain.stock import BelowCommitted, MovementReason, QuantityOutOfRange
from stockhub.errors import FieldError, conflict, invalid
from stockhub.services import idempotency, stock_moves
from stockhub.services.context import Hub
from stockhub.services.fields import Amount, Int, Quantity
from stockhub.services.stock import get_stock
from stockhub.domain.access import Scope
from stockhub.services.scope import as_scope, store_number
from stockhub.services.tenancy import identifier_rules


class Count(BaseModel):
    model_config = ConfigDict(extra="forbid")
    on_hand: Quantity
    change_from: Quantity | None = Field(None, description="the on_hand you last saw: refused with 409 if it moved since")
    price: Amount | None = Field(None, gt=0, description="required for a product the store does not have yet")
    currency: str | None = None
    promotion_amount: Amount | None = Field(None, gt=0)


class Adjustment(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    identifier: str = Field(min_length=1, max_length=64)
    delta: Int = Field(ge=-1_000_000, le=1_000_000)


class Adjustments(BaseModel):
    model_config = ConfigDict(extra="forbid")
    adjustments: list[Adjustment] = Field(min_length=1, max_length=1000)


def set_count(hub: Hub, scope: Scope | int, store_id: str, identifier: str, count: Count):
    canonical = _canonical(_rule(hub, scope, store_id), identifier, "identifier")
    try:
        _set_count(hub, as_scope(scope), store_id, canonical, count)
    except IntegrityError:  # two first counts of one product at once: this one lost
        raise conflict("the product's stock level was created concurrently: read it and retry") from None
    return get_stock(hub, scope, store_id, canonical)


def _set_count(hub: Hub, scope: Scope, store_id: str, canonical: str, count: Count) -> None:
    now = datetime.now(UTC)
    with transaction(hub.engine) as conn:
        store = store_number(conn, scope, store_id)
        key = (store, canonical)
        row = stock_moves.lock(conn, [key]).get(key)
        current = stock_moves.level_of(row)
        if count.change_from is not None and count.change_from != current.on_hand:
            raise conflict(f"on_hand is {current.on_hand}, not {count.change_from}: it changed since you read it", on_hand=current.on_hand)
        try:
            after = stock.count(current, count.on_hand)
        except BelowCommitted as error:
            raise conflict(str(error), on_hand=current.on_hand, committed=current.committed) from None
        price = _price(conn, store, row, count)
        stock_moves.write(conn, scope.organization, [stock_moves.Change(key, current, after, row, price)], MovementReason.COUNT, now)


def adjust(hub: Hub, scope: Scope | int, store_id: str, body: Adjustments, idempotency_key: str | None) -> dict:
    """Apply every delta or none; the same Idempotency-Key and body get the same answer."""
    scope = as_scope(scope)
    organization = scope.organization
    rule = _rule(hub, scope, store_id)  # someone else's store is not found, whatever was sent
    deltas: dict[str, int] = {}
    for n, item in enumerate(body.adjustments):
        canonical = _canonical(rule, item.identifier, f"adjustments.{n}.identifier")
        deltas[canonical] = deltas.get(canonical, 0) + item.delta
    request = [store_id, body.model_dump()]
    return idempotency.once(hub.engine, organization, "stock_adjustments", idempotency_key, request, lambda conn: _adjust(conn, scope, store_id, deltas))


def _adjust(conn: Connection, scope: Scope, store_id: str, deltas: dict[str, int]) -> dict:
    now = datetime.now(UTC)
    store = store_number(conn, scope, store_id)
    keys = {(store, identifier): delta for identifier, delta in deltas.items()}
    rows = stock_moves.lock(conn, keys)
    unknown = [identifier for (_, identifier) in keys if (store, identifier) not in rows]
    if unknown:
        raise invalid("the store has no stock of some products: set a count first", [FieldError("identifier", i) for i in unknown])
    try:
        changes = stock_moves.plan(rows, keys, stock.adjust)
    except BelowCommitted as error:
        raise conflict(f"an adjustment would leave {error}") from None
    except QuantityOutOfRange as error:
        raise invalid(f"an adjustment would leave {error}", [FieldError("adjustments", str(error))]) from None
    stock_moves.write(conn, scope.organization, changes, MovementReason.ADJUSTMENT, now)
    return {
        "store_id": store_id,
        "adjusted": [{"identifier": c.key[1], "on_hand": c.after.on_hand, "delta": deltas[c.key[1]]} for c in changes],
    }


def _price(conn: Connection, store: int, row, count: Count) -> stock_moves.Price | None:
    """The price a count sets: required for a product new to the store; None keeps the current one."""
    if row is None and count.price is None:
        raise invalid("a product new to the store needs a price", [FieldError("price", "required for a new product")])
    if count.price is None and count.promotion_amount is None and count.currency is None:
        return None
    if row is None:
        currency = (count.currency or conn.execute(select(stores.c.currency).where(stores.c.id == store)).scalar_one()).upper()
        return stock_moves.Price(_minor(count.price, currency, "price"), currency, _minor(count.promotion_amount, currency, "promotion_amount"))
    currency = (count.currency or row.currency).upper()
    price_minor = _minor(count.price, currency, "price") if count.price is not None else row.price_minor
    promotion = _minor(count.promotion_amount, currency, "promotion_amount") if count.promotion_amount is not None else row.promotion_minor
    return stock_moves.Price(price_minor, currency, promotion)


def _minor(amount: Decimal | None, currency: str, field: str) -> int | None:
    if amount is None:
        return None
    if not places.is_currency(currency):
        raise invalid("unknown currency", [FieldError("currency", f"{currency!r} is not an ISO 4217 currency code")])
    try:
        return to_minor(amount, currency)
    except ValueError as error:
        raise invalid("too many decimal places", [FieldError(field, str(error))]) from None


def _rule(hub: Hub, scope: Scope | int, store_id: str) -> feeds.IdentifierRule:
    with reading(hub.engine) as conn:
        number = store_number(conn, scope, store_id)
        return identifier_rules(conn, [number])[number]


def _canonical(rule: feeds.IdentifierRule, identifier: str, field: str) -> str:
    try:
        return rule.one(identifier)
    except feeds.InvalidIdentifier as error:
        raise invalid("invalid product identifier", [FieldError(field, str(error))]) from None


