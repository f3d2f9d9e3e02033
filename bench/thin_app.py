"""The thin app: the floor stockhub's bookings and single lookups are measured against.

FastAPI + psycopg (async, a small pool per process) on stockhub's own `stock_levels` table,
doing only the essential statement: a booking is the bare conditional UPDATE, a lookup one
SELECT by primary key. No auth, no ledger, no events, no idempotency. Run by bench/common.py
as `python thin_app.py --port P --workers N`: uvicorn in N processes sharing one listening
socket, as `stockhub serve` runs its API processes.

Not `uvicorn --workers N`: uvicorn binds that socket as `socket.socket(AF_INET, SOCK_STREAM)`,
protocol 0, and asyncio sets TCP_NODELAY only on sockets whose protocol is TCP. Every answer's
body (written after its head) then waited for the client's delayed ACK: ~44 ms a request, which
capped the thin app at about 50 connections / 44 ms = 1,100 requests/s whatever it did. Until
2026-12-01 the benches' floor was that capped figure (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket

import psycopg
from fastapi import FastAPI, Response
from pydantic import BaseModel

import uvicorn

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


def serve(port: int, workers: int) -> None:
    listening = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # not 0: NODELAY on its connections
    listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listening.bind(("127.0.0.1", port))
    listening.listen(2048)
    for _ in range(workers):
        if os.fork() == 0:
            uvicorn.Server(uvicorn.Config(app, log_level="info", proxy_headers=True)).run(sockets=[listening])
            os._exit(0)
    while True:  # the bench stops the whole process group
        try:
            os.wait()
        except ChildProcessError:
            return


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    args = parser.parse_args()
    serve(args.port, args.workers)
