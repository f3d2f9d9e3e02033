"""The thin app: the floor stockhub's bookings and single lookups are measured against.

FastAPI + psycopg (async, a small pool per process) on stockhub's own `stock_levels` table,
doing only the essential statement: a booking is the bare conditional UPDATE, a lookup one
SELECT by primary key. No auth, no ledger, no events, no idempotency.

`/book_whole` is the second floor: a booking with the rows a booking must write, and nothing
else of stockhub's (no auth, no validation beyond pydantic's, no idempotency check, no
sequencing): in one transaction of two round trips (as stockhub's), the order (its external id
unique), the level's conditional UPDATE, then the order line, the ledger movement and the
order.created event, with the COMMIT. On copies of stockhub's tables (`thin_*`, with their
indexes and foreign keys), so PostgreSQL does the same work for them. Run by bench/common.py
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
import json
import os
import socket
from datetime import UTC, datetime

import psycopg
from fastapi import FastAPI, Response
from pydantic import BaseModel

import uvicorn

app = FastAPI()
URL = os.environ.get("THIN_DATABASE_URL", "")  # set by bench/common.py when it starts the app
POOL_SIZE = 10  # stockhub: 10 per process, and up to 20 more under load
_pools: dict[bool, asyncio.Queue] = {}


async def pool(autocommit: bool = True) -> asyncio.Queue:
    """This process's connections: autocommit ones (one statement a request), or ones that run
    transactions (`/book_whole`)."""
    if autocommit not in _pools:
        connections = _pools[autocommit] = asyncio.Queue()
        for _ in range(POOL_SIZE):
            connections.put_nowait(await psycopg.AsyncConnection.connect(URL, autocommit=autocommit))
    return _pools[autocommit]


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


class WholeBooking(BaseModel):
    organization: int
    store: int
    external_id: str
    identifier: str
    quantity: int = 1
    unit_price_minor: int = 100


_ORDER = (
    "INSERT INTO thin_orders (organization_id, external_id, request_hash, status, channel_type, channel_name, currency, "
    "fulfilment_type, fulfilment_store_id, payment_type, payment_status, placed_at, created_at, updated_at) "
    "VALUES (%s, %s, %s, 'requested', 'marketplace', 'bench', 'GBP', 'ship', %s, 'checkout', 'pending', %s, %s, %s) "
    "ON CONFLICT (organization_id, external_id) DO NOTHING RETURNING id"
)
_COMMIT_STOCK = (
    "UPDATE thin_stock_levels SET committed = committed + %s, updated_at = %s WHERE store_id = %s AND identifier = %s "
    "AND on_hand - committed - safety_stock >= %s RETURNING on_hand, committed"
)
_LINE = (
    "INSERT INTO thin_order_lines (order_id, line_no, store_id, identifier, identifier_given, quantity, unit_price_minor) "
    "VALUES (%s, 1, %s, %s, %s, %s, %s)"
)
_MOVEMENT = (
    "INSERT INTO thin_stock_movements (store_id, identifier, reason, on_hand_before, on_hand_after, committed_before, committed_after, order_id, created_at) "
    "VALUES (%s, %s, 'order_commit', %s, %s, %s, %s, %s, %s)"
)
_EVENT = "INSERT INTO thin_events (organization_id, store_id, type, occurred_at, data) VALUES (%s, %s, 'order.created', %s, %s)"


@app.post("/book_whole", status_code=201)
async def book_whole(booking: WholeBooking, response: Response) -> dict:
    connections = await pool(autocommit=False)
    conn = await connections.get()
    now = datetime.now(UTC).replace(tzinfo=None)
    b = booking
    try:
        async with conn.pipeline() as pipeline, conn.transaction():  # round trip 1: BEGIN, the order, the level
            order = await conn.execute(_ORDER, (b.organization, b.external_id, "-" * 64, b.store, now, now, now))
            level = await conn.execute(_COMMIT_STOCK, (b.quantity, now, b.store, b.identifier, b.quantity))
            await pipeline.sync()
            made, row = await order.fetchone(), await level.fetchone()
            if made is None or row is None:  # booked before, or short: rolled back
                raise _Short()
            order_id = made[0]
            body = {"id": order_id, "external_id": b.external_id, "store": b.store, "lines": [{"identifier": b.identifier, "quantity": b.quantity}]}
            await conn.execute(_LINE, (order_id, b.store, b.identifier, b.identifier, b.quantity, b.unit_price_minor))
            await conn.execute(_MOVEMENT, (b.store, b.identifier, row[0], row[0], row[1] - b.quantity, row[1], order_id, now))
            await conn.execute(_EVENT, (b.organization, b.store, now, json.dumps({"order": body})))
        # round trip 2: the line, the movement, the event and the COMMIT
    except _Short:
        response.status_code = 409
        return {"error": "insufficient stock"}
    finally:
        connections.put_nowait(conn)
    return body


class _Short(Exception):
    pass


WHOLE_TABLES = ("orders", "order_lines", "stock_movements", "events")


def make_whole_tables(conn) -> None:
    """The `thin_*` copies `/book_whole` writes: each of stockhub's tables with its indexes,
    defaults (ids from the same sequences) and foreign keys (to stockhub's organizations and
    stores, and among the copies); `thin_stock_levels` is made by the bench."""
    for table in WHOLE_TABLES:
        conn.execute(f"CREATE TABLE thin_{table} (LIKE {table} INCLUDING ALL)")
    for table, definition in conn.execute(
        "SELECT conrelid::regclass::text, pg_get_constraintdef(oid) FROM pg_constraint WHERE contype = 'f' AND conrelid::regclass::text = ANY(%s)",
        (list(WHOLE_TABLES),),
    ).fetchall():
        for copied in WHOLE_TABLES:  # a key among the copied tables points at the copy
            definition = definition.replace(f"REFERENCES {copied}(", f"REFERENCES thin_{copied}(")
        conn.execute(f"ALTER TABLE thin_{table} ADD {definition}")


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
