"""The thin app: the floor stockhub's bookings and single lookups are measured against.

FastAPI + psycopg (async, a small pool per process) on stockhub's own `stock_levels` table,
doing only the essential statement: a booking is the bare conditional UPDATE, a lookup one
SELECT by primary key. No auth, no ledger, no events, no idempotency. Run by bench/common.py
under uvicorn with the same settings and process count as `stockhub serve`.
"""

from __future__ import annotations

import asyncio
import os

import psycopg
from fastapi import FastAPI, Response
from pydantic import BaseModel

app = FastAPI()
URL = os.environ["THIN_DATABASE_URL"]
POOL_SIZE = 10  # stockhub: 10 per process, and up to 20 more under load
_pool: asyncio.Queue | None = None


async def pool() -> asyncio.Queue:
    global _pool
    if _pool is None:
        _pool = asyncio.Queue()
        for _ in range(POOL_SIZE):
            _pool.put_nowait(await psycopg.AsyncConnection.connect(URL, autocommit=True))
    return _pool


class Booking(BaseModel):
    store: int
    identifier: str
    quantity: int = 1


@app.get("/healthz")
async def healthz() -> dict:
    return {"status": "ok"}


@app.post("/book", status_code=201)
async def book(booking: Booking, response: Response) -> dict:
    connections = await pool()
    conn = await connections.get()
    try:
        row = await (await conn.execute(
            "UPDATE thin_stock_levels SET committed = committed + %s WHERE store_id = %s AND identifier = %s "
            "AND on_hand - committed >= %s RETURNING on_hand, committed",
            (booking.quantity, booking.store, booking.identifier, booking.quantity),
        )).fetchone()
    finally:
        connections.put_nowait(conn)
    if row is None:
        response.status_code = 409
        return {"error": "insufficient stock"}
    return {"on_hand": row[0], "committed": row[1]}


@app.get("/stock/{store}/{identifier}")
async def lookup(store: int, identifier: str, response: Response) -> dict:
    connections = await pool()
    conn = await connections.get()
    try:
        row = await (await conn.execute(
            "SELECT on_hand, committed, safety_stock, price_minor, currency, updated_at FROM thin_stock_levels WHERE store_id = %s AND identifier = %s",
            (store, identifier),
        )).fetchone()
    finally:
        connections.put_nowait(conn)
    if row is None:
        response.status_code = 404
        return {"error": "not found"}
    return {"on_hand": row[0], "committed": row[1], "safety_stock": row[2], "price_minor": row[3], "currency": row[4], "updated_at": row[5].isoformat()}
