"""Reading a store's stock: its levels with availability and status, as the domain defines them."""

from __future__ import annotations

from sqlalchemy import select

from stockhub import feeds
from stockhub.db.engine import reading
from stockhub.db.tables import stock_levels
from stockhub.domain.money import to_decimal_string
from stockhub.domain.stock import StockLevel, StockStatus
from stockhub.errors import FieldError, Problem, not_found
from stockhub.services.catalog import SHOWN_WITH_STOCK, stock_join
from stockhub.services.context import Hub
from stockhub.timefmt import iso
from stockhub.services.paging import MAX_LIMIT, Page, decode_token, encode_token
from stockhub.services.tenancy import store_number

_SCAN = 1000


def list_stock(hub: Hub, organization: int, store_id: str, limit: int, token: str | None, status: str | None) -> Page:
    """A page of the store's levels by identifier; with `status`, only those in it.

    Status comes from the domain's rule (`StockLevel.status`), not from SQL, so there is one
    definition of availability: rows are scanned in identifier order and filtered here.
    """
    if not 1 <= limit <= MAX_LIMIT:
        raise Problem(400, "Bad request", f"limit must be between 1 and {MAX_LIMIT}", [FieldError("limit", "out of range")])
    wanted = _status(status)
    after = decode_token(token, str) if token else None
    items: list[dict] = []
    with reading(hub.engine) as conn:
        number = store_number(conn, organization, store_id)
        while len(items) <= limit:
            query = stock_join(select(stock_levels), stock_levels, organization).where(stock_levels.c.store_id == number)
            if after is not None:
                query = query.where(stock_levels.c.identifier > after)
            rows = conn.execute(query.order_by(stock_levels.c.identifier).limit(_SCAN)).all()
            items += [level for level in map(render_level, rows) if wanted is None or level["status"] == wanted]
            if len(rows) < _SCAN:
                break
            after = rows[-1].identifier
    more = len(items) > limit
    items = items[:limit]
    return Page(items, encode_token(items[-1]["identifier"]) if more else None)


def get_stock(hub: Hub, organization: int, store_id: str, identifier: str) -> dict:
    try:
        canonical = feeds.lookup_identifier(identifier)
    except ValueError as error:
        raise not_found(f"a product {identifier!r} ({error})") from None
    with reading(hub.engine) as conn:
        number = store_number(conn, organization, store_id)
        row = conn.execute(
            stock_join(select(stock_levels), stock_levels, organization).where(
                stock_levels.c.store_id == number, stock_levels.c.identifier == canonical
            )
        ).first()
    if row is None:
        raise not_found(f"stock of {identifier} in store {store_id}")
    return render_level(row)


def _status(status: str | None) -> StockStatus | None:
    if status is None:
        return None
    try:
        return StockStatus(status)
    except ValueError:
        choices = ", ".join(s.value for s in StockStatus)
        raise Problem(400, "Bad request", f"status must be one of {choices}", [FieldError("status", "unknown status")]) from None


def render_level(row) -> dict:
    level = StockLevel(on_hand=row.on_hand, committed=row.committed, safety_stock=row.safety_stock, expired=row.expired)
    # the catalog's title, brand and image, when it has the product (custom product data)
    product = {name: value for name in SHOWN_WITH_STOCK if (value := getattr(row, name, None)) is not None}
    return {
        "identifier": row.identifier,
        "on_hand": level.on_hand,
        "committed": level.committed,
        "available": level.available,
        "status": level.status.value,
        "price": to_decimal_string(row.price_minor, row.currency),
        "currency": row.currency,
        "promotion_amount": to_decimal_string(row.promotion_minor, row.currency),
        "last_reported_on": iso(row.last_reported_on),  # a day: see stock_levels.last_reported_on
        "updated_at": iso(row.updated_at),
    } | product
