"""Group totals in SQL are the domain's rule, and a group's cursor misses and double counts
nothing while bookings and uploads commit during an export (PostgreSQL)."""

from __future__ import annotations

import random
import threading
import time
from datetime import UTC, datetime

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, insert

from stockhub import ids
from stockhub.db.availability import group_totals
from stockhub.db.engine import reading, transaction
from stockhub.db.locks import lock_store
from stockhub.db.stock_apply import apply_snapshot
from stockhub.db.tables import stock_levels
from stockhub.domain.stock import StockLevel, available
from stockhub.services import events, location_groups, orders, stock_moves, tenancy

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)

level = st.tuples(
    st.integers(-50, 200),  # on_hand
    st.integers(0, 100),  # committed
    st.integers(0, 60),  # safety stock
    st.booleans(),  # expired
)


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(level, min_size=1, max_size=3), min_size=1, max_size=6))
def test_group_totals_in_sql_are_the_domain_rule(hub, products):
    rows = [
        {"store_id": store, "identifier": f"P{n:03d}", "on_hand": on_hand, "committed": committed, "safety_stock": safety,
         "expired": expired, "price_minor": 100, "currency": "GBP", "last_reported_on": NOW.date(), "updated_at": NOW}
        for n, levels in enumerate(products)
        for store, (on_hand, committed, safety, expired) in enumerate(levels, 1)
    ]
    with transaction(hub.engine) as conn:
        conn.execute(delete(stock_levels))
        conn.execute(insert(stock_levels), rows)
        got = {row.identifier: row.available for row in conn.execute(group_totals([1, 2, 3]))}
    expected = {f"P{n:03d}": sum(available(*lv) for lv in levels) for n, levels in enumerate(products)}
    assert got == expected


def ean13(n: int) -> str:
    body = f"20{n:010d}"
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(body))
    return "0" + body + str((10 - total % 10) % 10)


PRODUCTS = [ean13(n) for n in range(1500)]


def _seed(hub, organization: int, store: int) -> None:
    with transaction(hub.engine) as conn:
        changes = [
            stock_moves.Change((store, p), StockLevel(0), StockLevel(on_hand=50), None, stock_moves.Price(100, "GBP"))
            for p in PRODUCTS
        ]
        stock_moves.write(conn, organization, changes, stock_moves.MovementReason.COUNT, datetime.now(UTC))


def _upload(hub, organization: int, store: int, rng: random.Random) -> None:
    """A store's upload as the ingest applies it: set-based, with its inventory.updated events."""
    now = datetime.now(UTC)
    chosen = rng.sample(PRODUCTS, 200)
    frame = pl.DataFrame(
        {"identifier": chosen, "quantity": [rng.randint(0, 80) for _ in chosen], "price_minor": [100] * 200, "currency": ["GBP"] * 200, "promotion_minor": [None] * 200},
        schema={"identifier": pl.String, "quantity": pl.Int64, "price_minor": pl.Int64, "currency": pl.String, "promotion_minor": pl.Int64},
    )
    with transaction(hub.engine) as conn:
        lock_store(conn, store)
        apply_snapshot(conn, store, None, frame, now, on_changes=lambda c, changed: events.emit_inventory_changes(c, organization, store, None, changed, now))


def _book(hub, organization: int, store_id: str, rng: random.Random, n: int) -> None:
    lines = [{"identifier": p, "quantity": rng.randint(1, 3), "unit_price": "1.00"} for p in rng.sample(PRODUCTS, 3)]
    booking = orders.Booking.model_validate(
        {"external_id": f"c-{n}", "channel": {"type": "web", "name": "w"}, "currency": "GBP", "lines": lines, "fulfilment": {"type": "ship", "store_id": store_id}}
    )
    try:
        orders.book(hub, organization, booking)
    except orders.InsufficientStock:
        pass


def _export(hub, organization: int, group_id: str, since: int | None = None, slowly: bool = False, as_csv: bool = False) -> tuple[int, dict[str, int]]:
    rows = location_groups.availability_export(hub, organization, group_id, since, as_csv=as_csv)
    cursor = next(rows)
    totals = {}
    for partition in rows:
        if as_csv:  # PostgreSQL's COPY, in the export's snapshot
            partition = [line.split(",") for line in partition.decode().splitlines()]
            time.sleep(0.0005 * len(partition) if slowly else 0)
            totals |= {identifier: int(units) for identifier, units, _ in partition}
            continue
        for row in partition:
            totals[row.identifier] = int(row.available)
            if slowly:
                time.sleep(0.0005)  # the writers commit while the export is being read
    return cursor, totals


def test_export_plus_increment_is_a_fresh_export_with_writers_committing_meanwhile(pg_store):
    hub, organization = pg_store.hub, pg_store.organization
    brand = ids.encode("brand", _brand_of(pg_store))
    second = tenancy.create_store_for(hub, brand, {"name": "Second", "country": "GB"}).id
    outside = tenancy.create_store_for(hub, brand, {"name": "Outside", "country": "GB"}).id
    store_ids = [pg_store.store_id, second, outside]
    numbers = [ids.decode("store", s) for s in store_ids]
    for store in numbers:
        _seed(hub, organization, store)
    group = ids.encode("location_group", location_groups.create(hub, organization, location_groups.GroupFields(name="North", store_ids=store_ids[:2])).row.id)

    stop = threading.Event()
    failures: list[BaseException] = []

    def writer(kind: int) -> None:
        rng = random.Random(kind)
        n = 0
        try:
            while not stop.is_set():
                n += 1
                store = rng.randrange(3)
                if kind % 2:
                    _upload(hub, organization, numbers[store], rng)
                else:
                    _book(hub, organization, store_ids[store], rng, kind * 100_000 + n)
        except BaseException as error:  # noqa: BLE001 - reported below
            failures.append(error)

    def sequencer() -> None:
        while not stop.is_set():
            events.sequence_events(hub.engine)
            time.sleep(0.01)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)] + [threading.Thread(target=sequencer)]
    for thread in threads:
        thread.start()
    try:
        exports = [_export(hub, organization, group, slowly=True, as_csv=n % 2 == 1) for n in range(4)]
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)
    assert not failures, failures
    assert len({cursor for cursor, _ in exports}) > 1  # the writers did commit between the exports

    _, fresh = _export(hub, organization, group)
    for cursor, exported in exports:
        since, changed = _export(hub, organization, group, since=cursor, as_csv=cursor % 2 == 0)
        assert since >= cursor
        assert exported | changed == fresh
        # and each product reported as changed did change, or sits at a store of the group whose level changed
        assert set(changed) <= set(fresh)
    # the increment is only what changed: far fewer than the whole catalogue after the last export
    last_cursor, _ = _export(hub, organization, group)
    assert _export(hub, organization, group, since=last_cursor)[1] == {}


def _brand_of(pg_store) -> int:
    from sqlalchemy import select

    from stockhub.db.tables import stores

    with reading(pg_store.hub.engine) as conn:
        return conn.execute(select(stores.c.brand_id).where(stores.c.id == pg_store.store)).scalar_one()
