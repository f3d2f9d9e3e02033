"""Diff a store's reported stock snapshot against its current levels (pure, polars).

A snapshot reports some of a store's products; products absent from it are left alone (an
upload never zeroes what it does not mention). Only rows whose values differ are written,
so re-sending the same file writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import polars as pl

LEVELS = {
    "identifier": pl.String,
    "on_hand": pl.Int64,
    "committed": pl.Int64,
    "price_minor": pl.Int64,
    "currency": pl.String,
    "promotion_minor": pl.Int64,
    "last_reported_on": pl.Date,
    "expired": pl.Boolean,
}
REPORTED = ["identifier", "quantity", "price_minor", "currency", "promotion_minor"]
WRITTEN = ["identifier", "on_hand", "price_minor", "currency", "promotion_minor"]


@dataclass(frozen=True)
class SnapshotDiff:
    inserts: pl.DataFrame  # WRITTEN columns: products the store did not have
    updates: pl.DataFrame  # WRITTEN columns: products whose count, price or expiry changed
    touches: pl.DataFrame  # identifier: unchanged products last reported on an earlier day
    movements: pl.DataFrame  # identifier, on_hand_before/after, committed_before/after: the ledger entries

    @property
    def changed(self) -> int:
        return self.inserts.height + self.updates.height


def empty_levels() -> pl.DataFrame:
    return pl.DataFrame(schema=LEVELS)


def diff_snapshot(current: pl.DataFrame, reported: pl.DataFrame, today: date) -> SnapshotDiff:
    joined = reported.select(REPORTED).join(current, on="identifier", how="left", suffix="_now")
    is_new = pl.col("on_hand").is_null()
    differs = (
        (pl.col("quantity") != pl.col("on_hand"))
        | (pl.col("price_minor") != pl.col("price_minor_now"))
        | (pl.col("currency") != pl.col("currency_now"))
        | pl.col("promotion_minor").ne_missing(pl.col("promotion_minor_now"))
        | pl.col("expired")
    )
    as_written = [pl.col("identifier"), pl.col("quantity").alias("on_hand"), "price_minor", "currency", "promotion_minor"]
    inserts = joined.filter(is_new).select(as_written)
    updates = joined.filter(~is_new & differs).select(as_written)
    touches = joined.filter(~is_new & ~differs & (pl.col("last_reported_on") < today)).select("identifier")

    count_moves = joined.filter(pl.col("quantity") != pl.col("on_hand").fill_null(0))
    movements = count_moves.select(
        "identifier",
        pl.col("on_hand").fill_null(0).alias("on_hand_before"),
        pl.col("quantity").alias("on_hand_after"),
        pl.col("committed").fill_null(0).alias("committed_before"),
        pl.col("committed").fill_null(0).alias("committed_after"),
    )
    return SnapshotDiff(inserts, updates, touches, movements)
