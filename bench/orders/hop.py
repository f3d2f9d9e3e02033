"""What a route's way to its use case costs, in-process (no HTTP server, no database): a trivial
endpoint called through FastAPI's ASGI app 5,000 times, CPU per request, median of 3.

    .venv/bin/python bench/orders/hop.py

- `async def`: on the event loop (the floor: FastAPI's own request handling);
- a sync `def`: FastAPI runs it in a worker thread through anyio (capacity limiter, cancel scope);
- `await in_thread(...)` (api/deps.py): the same thread hop through a plain executor, as the
  booking and stock lookup routes run their use case.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace

from fastapi import FastAPI

from stockhub.api.deps import in_thread

app = FastAPI()
hub = SimpleNamespace(settings=SimpleNamespace(api_threads=4))


def work() -> dict:
    return {"status": "ok"}


@app.get("/async")
async def on_loop() -> dict:
    return work()


@app.get("/sync")
def in_anyio_thread() -> dict:
    return work()


@app.get("/executor")
async def in_executor() -> dict:
    return await in_thread(hub, work)


async def call(path: str) -> int:
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http", "path": path,
             "raw_path": path.encode(), "query_string": b"", "root_path": "", "headers": [(b"host", b"bench")],
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80), "state": {}}  # fmt: skip
    status = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])

    await app(scope, receive, send)
    return status[0]


async def main(n: int = 5000) -> None:
    import anyio.to_thread

    anyio.to_thread.current_default_thread_limiter().total_tokens = hub.settings.api_threads
    figures = {}
    for path in ("/async", "/sync", "/executor"):
        runs = []
        for _ in range(3):
            for _ in range(200):
                assert await call(path) == 200
            cpu = time.process_time()
            for _ in range(n):
                await call(path)
            runs.append((time.process_time() - cpu) * 1000 / n)
        figures[path] = statistics.median(runs)
    floor = figures["/async"]
    print(f"route to use case, in-process, {n:,} requests each, median of 3 ({Path(sys.argv[0]).name})")
    for path, label in (("/async", "async def, on the loop (floor)"), ("/sync", "sync def: anyio's thread hop"), ("/executor", "in_thread: a plain executor hop")):
        print(f"    {label:<36} {figures[path]:.3f} ms CPU a request  ({figures[path] / floor:.1f}x the floor, +{figures[path] - floor:.3f} ms)")


if __name__ == "__main__":
    asyncio.run(main())
