"""Diffing a reported snapshot against a store's levels: only what differs is written."""

from __future__ import annotations

from datetime import date

import polars as pl

from stockhub.inventory.snapshot import LEVELS, diff_snapshot

TODAY = date(2026, 11, 23)


def levels(*rows) -> pl.DataFrame:
    return pl.DataFrame(list(rows), schema=LEVELS, orient="row")


def reported(*rows) -> pl.DataFrame:
    return pl.DataFrame(
        list(rows),
        schema={"identifier": pl.String, "quantity": pl.Int64, "price_minor": pl.Int64, "currency": pl.String, "promotion_minor": pl.Int64},
        orient="row",
    )


def test_new_products_are_inserted_and_counted_into_the_ledger():
    diff = diff_snapshot(levels(), reported(("A", 3, 699, "GBP", None), ("B", 0, 100, "GBP", None)), TODAY)
    assert diff.inserts["identifier"].to_list() == ["A", "B"] and diff.updates.is_empty()
    assert diff.movements.to_dicts() == [
        {"identifier": "A", "on_hand_before": 0, "on_hand_after": 3, "committed_before": 0, "committed_after": 0}
    ]
    assert diff.changed == 2


def test_the_same_snapshot_again_writes_nothing():
    current = levels(("A", 3, 0, 699, "GBP", None, TODAY, False))
    diff = diff_snapshot(current, reported(("A", 3, 699, "GBP", None)), TODAY)
    assert diff.changed == 0 and diff.touches.is_empty() and diff.movements.is_empty()


def test_an_unchanged_product_reported_on_a_new_day_is_only_touched():
    current = levels(("A", 3, 0, 699, "GBP", None, date(2026, 11, 22), False))
    diff = diff_snapshot(current, reported(("A", 3, 699, "GBP", None)), TODAY)
    assert diff.changed == 0 and diff.touches["identifier"].to_list() == ["A"]


def test_count_price_promotion_and_expiry_changes_are_updates_but_only_counts_move_the_ledger():
    current = levels(
        ("count", 3, 1, 699, "GBP", None, TODAY, False),
        ("price", 3, 0, 699, "GBP", None, TODAY, False),
        ("promo", 3, 0, 699, "GBP", None, TODAY, False),
        ("expired", 3, 0, 699, "GBP", None, date(2026, 1, 1), True),
        ("absent", 9, 0, 699, "GBP", None, TODAY, False),
    )
    diff = diff_snapshot(
        current,
        reported(
            ("count", 5, 699, "GBP", None),
            ("price", 3, 799, "GBP", None),
            ("promo", 3, 699, "GBP", 500),
            ("expired", 3, 699, "GBP", None),
        ),
        TODAY,
    )
    assert sorted(diff.updates["identifier"].to_list()) == ["count", "expired", "price", "promo"]
    assert diff.movements.to_dicts() == [
        {"identifier": "count", "on_hand_before": 3, "on_hand_after": 5, "committed_before": 1, "committed_after": 1}
    ]
    assert "absent" not in diff.updates["identifier"].to_list()  # never zeroed for not being mentioned
