"""What shoppers ask: availability of many products at many stores, pickup and delivery options.

Reads are set-based (db/availability.py: one statement for up to 2,000 keys); each level is
rendered by the domain's one availability rule. Which stores a caller reaches is
services/scope.py's decision: a store it does not reach answers as unknown, like one that
does not exist.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import select

from stockhub import feeds, ids
from stockhub.db.availability import levels_at
from stockhub.db.engine import reading
from stockhub.db.tables import shipping_methods, stock_levels, stores
from stockhub.domain import places
from stockhub.domain.access import Scope
from stockhub.domain.fulfilment import distance_km, plan_shipments, serves
from stockhub.domain.money import to_decimal_string
from stockhub.domain.stock import StockLevel, available
from stockhub.domain.stock import status as stock_status
from stockhub.errors import FieldError, invalid
from stockhub.services import offers
from stockhub.services.context import Hub
from stockhub.services.scope import as_scope, store_numbers, visible
from stockhub.timefmt import iso
from stockhub.services.fields import Bool, Int, Number

MAX_KEYS = 2000


class Key(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    identifier: str = Field(min_length=1, max_length=64, description="barcode (any spelling) or SKU")
    store_id: str = Field(min_length=1, max_length=64)


class AvailabilityQuery(BaseModel):
    """Either `keys` (product × store pairs), or `identifiers` × `store_ids`: at most 2,000 keys."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    keys: list[Key] | None = None
    identifiers: list[Annotated[str, Field(min_length=1, max_length=64)]] | None = None
    store_ids: list[Annotated[str, Field(min_length=1, max_length=64)]] | None = None

    @field_validator("keys", "identifiers", "store_ids")
    @classmethod
    def _at_most(cls, value: list | None) -> list | None:
        if value is not None and len(value) > MAX_KEYS:
            raise ValueError(f"at most {MAX_KEYS} keys per call (got {len(value)})")
        return value

    @model_validator(mode="after")
    def _one_form(self) -> AvailabilityQuery:
        if (self.keys is None) == (self.identifiers is None and self.store_ids is None):
            raise ValueError("give either keys, or identifiers and store_ids")
        if self.keys is None and (self.identifiers is None or self.store_ids is None):
            raise ValueError("identifiers and store_ids go together")
        return self

    def pairs(self) -> list[tuple[str, str]]:
        if self.keys is not None:
            return [(key.identifier, key.store_id) for key in self.keys]
        return [(identifier, store_id) for store_id in self.store_ids for identifier in self.identifiers]


def lookup(hub: Hub, scope: Scope | int, query: AvailabilityQuery) -> dict:
    """One answer per key, in the order asked; an unknown product or store answers in its place.

    One statement reads every level (db.availability.levels_at); each is rendered with the
    domain's rule. Prices and times repeat across levels (one upload writes many), so each
    distinct one is formatted once per call.
    """
    pairs = query.pairs()
    if len(pairs) > MAX_KEYS:
        raise invalid(
            f"at most {MAX_KEYS} keys per call: {len(query.identifiers)} identifiers × {len(query.store_ids)} stores is {len(pairs)}",
            [FieldError("identifiers", f"identifiers × store_ids must be at most {MAX_KEYS} keys (got {len(pairs)})")],
        )
    canonical = {identifier: _canonical(identifier) for identifier in {i for i, _ in pairs}}
    with reading(hub.engine) as conn:
        reached = store_numbers(conn, scope, {store_id for _, store_id in pairs})
        wanted = sorted({(reached[s], canonical[i]) for i, s in pairs if s in reached and canonical[i] is not None})
        rows = {(row[0], row[1]): row for row in levels_at(conn, wanted)}
    money = _Memo(lambda key: to_decimal_string(*key))
    times = _Memo(iso)
    items = []
    for identifier, store_id in pairs:
        store, product = reached.get(store_id), canonical[identifier]
        row = rows.get((store, product))
        if row is None:
            reason = "unknown store" if store is None else "invalid identifier" if product is None else "not stocked at this store"
            items.append({"identifier": identifier, "store_id": store_id, "known": False, "reason": reason, "available": 0, "status": "unknown"})
            continue
        _, _, on_hand, committed, safety, expired, price_minor, currency, promotion_minor, updated_at = row
        units = available(on_hand, committed, safety, expired)
        items.append(
            {
                "identifier": identifier,
                "store_id": store_id,
                "known": True,
                "canonical": product,
                "on_hand": on_hand,
                "committed": committed,
                "safety_stock": safety,
                "available": units,
                "status": stock_status(units, expired).value,
                "price": money[(price_minor, currency)],
                "currency": currency,
                "promotion_amount": money[(promotion_minor, currency)],
                "updated_at": times[updated_at],
            }
        )
    return {"items": items}


class _Memo(dict):
    def __init__(self, make):
        super().__init__()
        self.make = make

    def __missing__(self, key):
        value = self[key] = self.make(key)
        return value


@lru_cache(maxsize=1 << 17)
def _canonical(identifier: str) -> str | None:
    """Any spelling of an identifier as stored (feeds.lookup_identifier), or None: no product has it."""
    try:
        return feeds.lookup_identifier(identifier)
    except ValueError:
        return None


# --- the bag a shopper wants -----------------------------------------------------------------


class BagLine(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    identifier: str = Field(min_length=1, max_length=64, description="barcode (any spelling) or SKU")
    quantity: Int = Field(ge=1, le=100_000)


Bag = list[BagLine]
BAG = Field(min_length=1, max_length=100, description="the products and quantities wanted")


def canonical_bag(lines: list[BagLine], field: str = "bag") -> tuple[dict[str, int], dict[str, str]]:
    """identifier → quantity (lines naming one product are summed), and how each was spelled."""
    bag: dict[str, int] = defaultdict(int)
    given: dict[str, str] = {}
    errors = []
    for n, line in enumerate(lines):
        try:
            identifier = feeds.lookup_identifier(line.identifier)
        except ValueError as error:
            errors.append(FieldError(f"{field}.{n}.identifier", str(error)))
            continue
        bag[identifier] += line.quantity
        given.setdefault(identifier, line.identifier)
    if errors:
        raise invalid("the bag has invalid lines", errors)
    return dict(bag), given


def _stock(conn, scope: Scope, store_ids: list[int] | None, bag: dict[str, int]) -> dict[int, dict[str, int]]:
    """store → identifier → available (the domain's rule), for the bag's products."""
    query = select(stock_levels).join(stores, stores.c.id == stock_levels.c.store_id).where(
        *visible(scope, stores.c.organization_id, stores.c.id), stock_levels.c.identifier.in_(sorted(bag))
    )
    if store_ids is not None:
        query = query.where(stock_levels.c.store_id.in_(store_ids))
    found: dict[int, dict[str, int]] = defaultdict(dict)
    for row in conn.execute(query):
        found[row.store_id][row.identifier] = StockLevel(row.on_hand, row.committed, row.safety_stock, row.expired).available
    return found


def _place(row) -> dict:
    return {
        "id": ids.encode("store", row.id),
        "name": row.name,
        "address": {"line1": row.address_line1, "city": row.city, "postal_code": row.postal_code, "country": row.country},
        "latitude": row.latitude,
        "longitude": row.longitude,
    }


def _expiry(hub: Hub) -> str:
    return iso(datetime.now(UTC) + timedelta(seconds=hub.settings.offer_ttl_seconds))


# --- pickup ----------------------------------------------------------------------------------


class Location(BaseModel):
    model_config = ConfigDict(extra="forbid")
    latitude: Number = Field(ge=-90, le=90)
    longitude: Number = Field(ge=-180, le=180)


class PickupQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    location: Location
    bag: Bag = BAG
    radius_km: Number = Field(50, gt=0, le=20_000)
    limit: Int = Field(10, ge=1, le=100)
    include_unavailable: Bool = False


def pickup_options(hub: Hub, scope: Scope | int, query: PickupQuery) -> dict:
    """Stores within the radius by great-circle distance, each with per-line availability and
    whether it can hand over the whole bag (then with an offer token)."""
    scope = as_scope(scope)
    bag, given = canonical_bag(query.bag)
    here = query.location
    with reading(hub.engine) as conn:
        places_ = conn.execute(
            select(stores.c.id, stores.c.name, stores.c.address_line1, stores.c.city, stores.c.postal_code, stores.c.country, stores.c.latitude, stores.c.longitude).where(
                *visible(scope, stores.c.organization_id, stores.c.id), stores.c.latitude.is_not(None), stores.c.longitude.is_not(None)
            )
        ).all()
        near = sorted(
            (d, row.id, row) for row in places_ if (d := distance_km(here.latitude, here.longitude, row.latitude, row.longitude)) <= query.radius_km
        )
        options: list[dict] = []
        chunk = max(4 * query.limit, 50)  # nearest first, read in chunks until enough can serve
        for start in range(0, len(near), chunk):
            batch = near[start : start + chunk]
            stock = _stock(conn, scope, [store for _, store, _ in batch], bag)
            for distance, store, row in batch:
                available = stock.get(store, {})
                can = serves(bag, available)
                if not can and not query.include_unavailable:
                    continue
                options.append(
                    {
                        "store": _place(row),
                        "distance_km": round(distance, 3),
                        "can_fulfil": can,
                        "lines": [
                            {"identifier": given[i], "quantity": q, "available": available.get(i, 0), "can_fulfil": available.get(i, 0) >= q}
                            for i, q in bag.items()
                        ],
                        "offer_token": offers.issue(hub.secret, hub.settings.offer_ttl_seconds, scope.organization, "pickup", {i: (q, store) for i, q in bag.items()})
                        if can
                        else None,
                    }
                )
                if len(options) == query.limit:
                    break
            if len(options) == query.limit:
                break
    return {"options": options, "offer_expires_at": _expiry(hub)}


# --- delivery --------------------------------------------------------------------------------


class Destination(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    country: str = Field(description="ISO 3166-1 alpha-2")
    postal_code: str | None = Field(None, max_length=20)
    latitude: Number | None = Field(None, ge=-90, le=90)
    longitude: Number | None = Field(None, ge=-180, le=180)

    @field_validator("country")
    @classmethod
    def _country(cls, value: str) -> str:
        if not places.is_country(value.upper()):
            raise ValueError(f"{value!r} is not an ISO 3166-1 alpha-2 country code")
        return value.upper()

    @model_validator(mode="after")
    def _both(self) -> Destination:
        if (self.latitude is None) != (self.longitude is None):
            raise ValueError("give both latitude and longitude, or neither")
        return self


class DeliveryQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    destination: Destination
    bag: Bag = BAG


def delivery_options(hub: Hub, scope: Scope | int, query: DeliveryQuery) -> dict:
    """For each shipping method to the destination's country: one store serving the whole bag
    (nearest first when coordinates are known), else the fewest shipments across stores."""
    scope = as_scope(scope)
    bag, given = canonical_bag(query.bag)
    to = query.destination
    with reading(hub.engine) as conn:
        methods = [
            m
            for m in conn.execute(select(shipping_methods).where(shipping_methods.c.organization_id == scope.organization).order_by(shipping_methods.c.price_minor, shipping_methods.c.id))
            if to.country in json.loads(m.countries)
        ]
        reachable = conn.execute(
            select(stores.c.id, stores.c.latitude, stores.c.longitude).where(*visible(scope, stores.c.organization_id, stores.c.id))
        ).all()
        stock = _stock(conn, scope, None, bag) if methods else {}

    def preference(row) -> tuple:
        if to.latitude is not None and row.latitude is not None and row.longitude is not None:
            return (0, distance_km(to.latitude, to.longitude, row.latitude, row.longitude), row.id)
        return (1, 0.0, row.id)

    order = [row.id for row in sorted(reachable, key=preference)]
    plan = plan_shipments(bag, stock, order) if methods else None
    if plan is None:
        reason = "no shipping method serves this country" if not methods else "some lines cannot be served whole by any store"
        short = [given[i] for i, q in bag.items() if not any(stock.get(s, {}).get(i, 0) >= q for s in order)]
        return {"options": [], "reason": reason, "unavailable": short}
    shipments: dict[int, list[dict]] = defaultdict(list)
    for identifier, store in plan.items():
        shipments[store].append({"identifier": given[identifier], "quantity": bag[identifier]})
    token = offers.issue(hub.secret, hub.settings.offer_ttl_seconds, scope.organization, "ship", {i: (q, plan[i]) for i, q in bag.items()})
    today = datetime.now(UTC).date()
    options = [
        {
            "method": {"id": ids.encode("shipping_method", m.id), "name": m.name},
            "price": to_decimal_string(m.price_minor * len(shipments), m.currency),
            "currency": m.currency,
            "estimated_delivery": {"earliest": (today + timedelta(days=m.min_days)).isoformat(), "latest": (today + timedelta(days=m.max_days)).isoformat()},
            "shipments": [{"store_id": ids.encode("store", store), "lines": lines} for store, lines in shipments.items()],
            "offer_token": token,
        }
        for m in methods
    ]
    return {"options": options, "offer_expires_at": _expiry(hub)}
