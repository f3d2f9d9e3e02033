"""Applying a reported snapshot, on SQLite and PostgreSQL: only what differs is written."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from stockhub.db.engine import transaction
from stockhub.db.stock_apply import apply_snapshot
from stockhub.db.tables import stock_levels, stock_movements

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
STORE = 1


def report(*rows) -> pl.DataFrame:
    return pl.DataFrame(
        list(rows),
        schema={"identifier": pl.String, "quantity": pl.Int64, "price_minor": pl.Int64, "currency": pl.String, "promotion_minor": pl.Int64},
        orient="row",
    )


def apply(hub, rows: pl.DataFrame, now: datetime = NOW, upload_id: int = 1):
    with transaction(hub.engine) as conn:
        return apply_snapshot(conn, STORE, upload_id, rows, now)


def levels(hub) -> dict[str, dict]:
    with hub.engine.connect() as conn:
        return {r.identifier: r._asdict() for r in conn.execute(select(stock_levels))}


def ledger(hub) -> list[tuple]:
    with hub.engine.connect() as conn:
        return [
            (r.identifier, r.on_hand_before, r.on_hand_after, r.upload_id)
            for r in conn.execute(select(stock_movements).order_by(stock_movements.c.id))
        ]


def test_new_products_are_inserted_and_counted_into_the_ledger(hub):
    applied = apply(hub, report(("A", 3, 699, "GBP", None), ("B", 0, 100, "GBP", None)))
    assert (applied.inserted, applied.updated, applied.changed) == (2, 0, 2)
    assert ledger(hub) == [("A", 0, 3, 1)]  # B starts at 0: nothing moved
    assert levels(hub)["A"]["on_hand"] == 3 and levels(hub)["B"]["price_minor"] == 100


def test_the_same_snapshot_again_writes_nothing(hub):
    rows = report(("A", 3, 699, "GBP", None), ("B", 1, 100, "GBP", 50))
    apply(hub, rows)
    before = (levels(hub), ledger(hub))
    again = apply(hub, rows, NOW + timedelta(minutes=15), upload_id=2)
    assert (again.changed, again.touched, again.moved) == (0, 0, 0)
    assert (levels(hub), ledger(hub)) == before


def test_an_unchanged_product_reported_on_a_new_day_is_only_touched(hub):
    apply(hub, report(("A", 3, 699, "GBP", None)))
    tomorrow = NOW + timedelta(days=1)
    applied = apply(hub, report(("A", 3, 699, "GBP", None)), tomorrow, upload_id=2)
    assert (applied.changed, applied.touched) == (0, 1)
    level = levels(hub)["A"]
    assert level["last_reported_on"] == tomorrow.date() and level["updated_at"] == NOW


def test_count_price_promotion_and_expiry_changes_update_but_only_counts_move_the_ledger(hub):
    apply(hub, report(*((name, 3, 699, "GBP", None) for name in ("count", "price", "promo", "expired", "absent"))))
    with transaction(hub.engine) as conn:
        conn.execute(stock_levels.update().where(stock_levels.c.identifier == "expired").values(expired=True))
    applied = apply(
        hub,
        report(("count", 5, 699, "GBP", None), ("price", 3, 799, "GBP", None), ("promo", 3, 699, "GBP", 500), ("expired", 3, 699, "GBP", None)),
        upload_id=2,
    )
    assert applied.updated == 4 and applied.inserted == 0
    assert ledger(hub)[-1] == ("count", 3, 5, 2) and len(ledger(hub)) == 6
    now = levels(hub)
    assert now["price"]["price_minor"] == 799 and now["promo"]["promotion_minor"] == 500
    assert now["expired"]["expired"] is False
    assert now["absent"]["on_hand"] == 3  # never zeroed for not being mentioned


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    reported=st.integers(-5, 20),
    on_hand=st.integers(0, 20),
    committed=st.integers(0, 20),
    means_available=st.booleans(),
)
def test_the_bulk_apply_means_what_the_domain_rule_says(hub, reported, on_hand, committed, means_available):
    from stockhub.domain.stock import reported_on_hand

    committed = min(committed, on_hand)
    identifier = f"P{reported}x{on_hand}x{committed}x{int(means_available)}"
    with transaction(hub.engine) as conn:
        conn.execute(stock_levels.delete().where(stock_levels.c.identifier == identifier))
        conn.execute(
            stock_levels.insert().values(
                store_id=STORE, identifier=identifier, on_hand=on_hand, committed=committed, safety_stock=0,
                price_minor=100, currency="GBP", last_reported_on=NOW.date(), expired=False, updated_at=NOW,
            )
        )
        applied = apply_snapshot(conn, STORE, 1, report((identifier, reported, 100, "GBP", None)), NOW, means_available=means_available)
    expected = reported_on_hand(reported, committed, means_available)
    assert levels(hub)[identifier]["on_hand"] == expected
    assert applied.held_back == (not means_available and committed > max(reported, 0))


_FIRST_ROWS = st.lists(
    st.tuples(
        st.integers(-5, 20), st.integers(1, 9999), st.sampled_from(["GBP", "EUR"]), st.one_of(st.none(), st.integers(1, 50)),
        st.one_of(st.none(), st.integers(0, 5)),
    ),
    min_size=1, max_size=12,
)
_stores = iter(range(1000, 10**6, 2))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=_FIRST_ROWS, means_available=st.booleans(), with_safety=st.booleans())
def test_a_first_load_writes_what_the_diff_would(hub, rows, means_available, with_safety):
    """A store with no levels is loaded without the diff join; the same snapshot applied through
    the diff (a store that has another product) writes the same levels, ledger and changes."""
    frame = pl.DataFrame(
        [(f"P{i}", q, p, c, promo, safety) for i, (q, p, c, promo, safety) in enumerate(rows)],
        schema={"identifier": pl.String, "quantity": pl.Int64, "price_minor": pl.Int64, "currency": pl.String,
                "promotion_minor": pl.Int64, "safety_stock": pl.Int64},
        orient="row",
    )
    if not with_safety:
        frame = frame.drop("safety_stock")
    first, diffed = next(_stores), next(_stores)
    seen = {}

    def run(store):
        def keep(conn, changed):
            seen[store] = sorted(changed.rows())
        with transaction(hub.engine) as conn:
            return apply_snapshot(conn, store, 7, frame, NOW, means_available=means_available, on_changes=keep)

    with transaction(hub.engine) as conn:
        apply_snapshot(conn, diffed, 6, report(("OTHER", 1, 100, "GBP", None)), NOW)
    outcomes = {store: run(store) for store in (first, diffed)}
    assert outcomes[first] == outcomes[diffed]
    assert seen[first] == seen[diffed]
    with hub.engine.connect() as conn:
        def written(store):
            level_rows = conn.execute(
                select(stock_levels).where(stock_levels.c.store_id == store, stock_levels.c.identifier != "OTHER").order_by(stock_levels.c.identifier)
            )
            moves = conn.execute(
                select(stock_movements.c.identifier, stock_movements.c.on_hand_before, stock_movements.c.on_hand_after,
                       stock_movements.c.committed_before, stock_movements.c.committed_after)
                .where(stock_movements.c.store_id == store, stock_movements.c.upload_id == 7).order_by(stock_movements.c.identifier)
            )
            return [r._asdict() | {"store_id": None} for r in level_rows], [tuple(r) for r in moves]
        assert written(first) == written(diffed)
