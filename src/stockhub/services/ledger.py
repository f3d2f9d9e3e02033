"""The reconciliation check: replaying the stock ledger must give the stored levels."""

from __future__ import annotations

import polars as pl
from sqlalchemy import func, select

from stockhub.db.bulk import read_frame
from stockhub.db.engine import reading
from stockhub.db.tables import stock_levels, stock_movements
from stockhub.services.context import Hub


def reconcile(hub: Hub, store_id: int | None = None) -> pl.DataFrame:
    """Levels whose on_hand or committed differ from the sum of their movements (empty when all agree).

    Each movement's before must also equal the previous movement's after: a gap means a change
    was written without its ledger entry.
    """
    levels = select(stock_levels.c.store_id, stock_levels.c.identifier, stock_levels.c.on_hand, stock_levels.c.committed)
    moves = select(
        stock_movements.c.store_id,
        stock_movements.c.identifier,
        func.sum(stock_movements.c.on_hand_after - stock_movements.c.on_hand_before).label("on_hand_moved"),
        func.sum(stock_movements.c.committed_after - stock_movements.c.committed_before).label("committed_moved"),
    ).group_by(stock_movements.c.store_id, stock_movements.c.identifier)
    if store_id is not None:
        levels = levels.where(stock_levels.c.store_id == store_id)
        moves = moves.where(stock_movements.c.store_id == store_id)
    key = {"store_id": pl.Int64, "identifier": pl.String}
    with reading(hub.engine) as conn:
        level_frame = read_frame(conn, levels, key | {"on_hand": pl.Int64, "committed": pl.Int64})
        move_frame = read_frame(conn, moves, key | {"on_hand_moved": pl.Int64, "committed_moved": pl.Int64})
        chain_breaks = _chain_breaks(conn, store_id)
    joined = level_frame.join(move_frame, on=["store_id", "identifier"], how="full", coalesce=True).fill_null(0)
    return pl.concat(
        [
            joined.filter(
                (pl.col("on_hand") != pl.col("on_hand_moved")) | (pl.col("committed") != pl.col("committed_moved"))
            ).select("store_id", "identifier", pl.lit("levels differ from the ledger's sum").alias("problem")),
            chain_breaks,
        ]
    )


def _chain_breaks(conn, store_id: int | None) -> pl.DataFrame:
    query = select(
        stock_movements.c.store_id,
        stock_movements.c.identifier,
        stock_movements.c.id,
        stock_movements.c.on_hand_before,
        stock_movements.c.on_hand_after,
        stock_movements.c.committed_before,
        stock_movements.c.committed_after,
    )
    if store_id is not None:
        query = query.where(stock_movements.c.store_id == store_id)
    schema = {"store_id": pl.Int64, "identifier": pl.String, "id": pl.Int64} | {
        name: pl.Int64 for name in ("on_hand_before", "on_hand_after", "committed_before", "committed_after")
    }
    moves = read_frame(conn, query, schema).sort("id")
    previous = [pl.col(name).shift(1, fill_value=0).over("store_id", "identifier") for name in ("on_hand_after", "committed_after")]
    return moves.filter(
        (pl.col("on_hand_before") != previous[0]) | (pl.col("committed_before") != previous[1])
    ).select("store_id", "identifier", pl.lit("a movement does not start where the previous one ended").alias("problem")).unique()
