"""Direct stock writes, for systems that are the inventory master: absolute counts and deltas."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection, select
from sqlalchemy.exc import IntegrityError

from stockhub import feeds
from stockhub.db.engine import reading, transaction
from stockhub.db.tables import idempotency_keys, stock_levels, stock_movements, stores
from stockhub.domain import places, stock
from stockhub.domain.money import to_minor
from stockhub.domain.stock import BelowCommitted, MovementReason, QuantityOutOfRange
from stockhub.errors import FieldError, Problem, conflict, invalid
from stockhub.services import events, stock_moves
from stockhub.services.context import Hub
from stockhub.services.fields import Amount, Int, Quantity
from stockhub.services.stock import get_stock
from stockhub.services.tenancy import store_number


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


def set_count(hub: Hub, organization: int, store_id: str, identifier: str, count: Count) -> dict:
    canonical = _canonical(identifier, "identifier")
    try:
        _set_count(hub, organization, store_id, canonical, count)
    except IntegrityError:  # two first counts of one product at once: this one lost
        raise conflict("the product's stock level was created concurrently: read it and retry") from None
    return get_stock(hub, organization, store_id, canonical)


def _set_count(hub: Hub, organization: int, store_id: str, canonical: str, count: Count) -> None:
    now = datetime.now(UTC)
    with transaction(hub.engine) as conn:
        store = store_number(conn, organization, store_id)
        key = (store, canonical)
        row = stock_moves.lock(conn, [key]).get(key)
        current = stock_moves.level_of(row)
        if count.change_from is not None and count.change_from != current.on_hand:
            raise conflict(f"on_hand is {current.on_hand}, not {count.change_from}: it changed since you read it", on_hand=current.on_hand)
        if row is None:
            _new_level(conn, organization, store, canonical, count, now)
        else:
            try:
                after = stock.count(current, count.on_hand)
            except BelowCommitted as error:
                raise conflict(str(error), on_hand=current.on_hand, committed=current.committed) from None
            _reprice(conn, key, row, count)
            stock_moves.write(conn, organization, [stock_moves.Change(key, current, after, row)], MovementReason.COUNT, now)


def adjust(hub: Hub, organization: int, store_id: str, body: Adjustments, idempotency_key: str | None) -> dict:
    """Apply every delta or none; the same Idempotency-Key and body get the same answer."""
    with reading(hub.engine) as conn:
        store_number(conn, organization, store_id)  # someone else's store is not found, whatever was sent
    if not idempotency_key or len(idempotency_key) > 255:
        raise Problem(400, "Bad request", "send an Idempotency-Key header (up to 255 characters)", [FieldError("Idempotency-Key", "missing")])
    fingerprint = hashlib.sha256(json.dumps([store_id, body.model_dump()], sort_keys=True).encode()).hexdigest()
    deltas: dict[str, int] = {}
    for n, item in enumerate(body.adjustments):
        canonical = _canonical(item.identifier, f"adjustments.{n}.identifier")
        deltas[canonical] = deltas.get(canonical, 0) + item.delta
    try:
        with transaction(hub.engine) as conn:
            answer = _answered(conn, organization, idempotency_key, fingerprint)
            if answer is None:
                answer = _adjust(conn, organization, store_id, deltas)
                conn.execute(
                    idempotency_keys.insert().values(
                        organization_id=organization, scope="stock_adjustments", key=idempotency_key, request_hash=fingerprint, response=json.dumps(answer)
                    )
                )
            return answer
    except IntegrityError:  # the same key concurrently: the other one's answer stands
        with transaction(hub.engine) as conn:
            answer = _answered(conn, organization, idempotency_key, fingerprint)
        if answer is None:
            raise
        return answer


def _adjust(conn: Connection, organization: int, store_id: str, deltas: dict[str, int]) -> dict:
    now = datetime.now(UTC)
    store = store_number(conn, organization, store_id)
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
    stock_moves.write(conn, organization, changes, MovementReason.ADJUSTMENT, now)
    return {
        "store_id": store_id,
        "adjusted": [{"identifier": c.key[1], "on_hand": c.after.on_hand, "delta": deltas[c.key[1]]} for c in changes],
    }


def _answered(conn: Connection, organization: int, key: str, fingerprint: str) -> dict | None:
    row = conn.execute(
        select(idempotency_keys).where(
            idempotency_keys.c.organization_id == organization, idempotency_keys.c.scope == "stock_adjustments", idempotency_keys.c.key == key
        )
    ).first()
    if row is None:
        return None
    if row.request_hash != fingerprint:
        raise conflict("this Idempotency-Key was used with a different request")
    return json.loads(row.response)


def _new_level(conn: Connection, organization: int, store: int, identifier: str, count: Count, now: datetime) -> None:
    if count.price is None:
        raise invalid("a product new to the store needs a price", [FieldError("price", "required for a new product")])
    store_currency = conn.execute(select(stores.c.currency).where(stores.c.id == store)).scalar_one()
    currency = (count.currency or store_currency).upper()
    conn.execute(
        stock_levels.insert().values(
            store_id=store,
            identifier=identifier,
            on_hand=count.on_hand,
            committed=0,
            safety_stock=0,
            price_minor=_minor(count.price, currency, "price"),
            currency=currency,
            promotion_minor=_minor(count.promotion_amount, currency, "promotion_amount"),
            last_reported_on=now.date(),
            expired=False,
            updated_at=now,
        )
    )
    level = conn.execute(select(stock_levels).where(stock_levels.c.store_id == store, stock_levels.c.identifier == identifier)).one()
    change = {name: getattr(level, name) for name in ("identifier", "on_hand", "committed", "safety_stock", "expired", "price_minor", "currency", "promotion_minor")}
    events.emit_level_changes(conn, organization, store, [change | {"on_hand_before": None}], now)
    if count.on_hand != 0:
        conn.execute(
            stock_movements.insert().values(
                store_id=store,
                identifier=identifier,
                reason=MovementReason.COUNT.value,
                on_hand_before=0,
                on_hand_after=count.on_hand,
                committed_before=0,
                committed_after=0,
                created_at=now,
            )
        )


def _reprice(conn: Connection, key: stock_moves.Key, row, count: Count) -> None:
    if count.price is None and count.promotion_amount is None and count.currency is None:
        return
    currency = (count.currency or row.currency).upper()
    values = {"currency": currency}
    if count.price is not None:
        values["price_minor"] = _minor(count.price, currency, "price")
    if count.promotion_amount is not None:
        values["promotion_minor"] = _minor(count.promotion_amount, currency, "promotion_amount")
    conn.execute(stock_levels.update().where(stock_levels.c.store_id == key[0], stock_levels.c.identifier == key[1]).values(**values))


def _minor(amount: Decimal | None, currency: str, field: str) -> int | None:
    if amount is None:
        return None
    if not places.is_currency(currency):
        raise invalid("unknown currency", [FieldError("currency", f"{currency!r} is not an ISO 4217 currency code")])
    try:
        return to_minor(amount, currency)
    except ValueError as error:
        raise invalid("too many decimal places", [FieldError(field, str(error))]) from None


def _canonical(identifier: str, field: str) -> str:
    try:
        return feeds.canonical_identifier(identifier)
    except feeds.InvalidIdentifier as error:
        raise invalid("invalid product identifier", [FieldError(field, str(error))]) from None


