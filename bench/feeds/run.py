"""Pushed feed items benchmark: a live `stockhub serve` (API and workers) taking single upserts
and batches of 50 items, beside the same server's trivial endpoint (`GET /healthz`), in one run.

    .venv/bin/python bench/feeds/run.py [--requests 2000] [--clients 8] [--batches 100] [--pull-rows 200000] [--postgres]

(a) trivial: REQUESTS `GET /healthz` from CLIENTS concurrent keep-alive connections (closed loop);
(b) single upserts: REQUESTS `PUT /v1/feeds/{id}/items/{external_id}` (synchronous: connected by
    SKU, applied through the ledger with its inventory.updated event) over 1,000 items, the same
    connections;
(c) batches: BATCHES `POST /v1/feeds/{id}/batches` of 50 items each, timed from the first send
    until the workers have applied the last batch (polled);
(d) pulled vs uploaded: a PULL_ROWS-row CSV served by a local HTTP server, pulled by a new pull
    feed of a new store (timed from the feed's creation until its upload is applied), beside the
    same file uploaded over HTTP to another new store (from asking for the upload URL until
    applied): both a first ingest of the same rows. Aim: pulled ≤ 1.1× uploaded.
A 503 (SQLite's writer busy past its timeout) is retried after its Retry-After, as a client would; the count is printed.
Each is run 3 times; the medians are printed, and (b) and (c) as ratios to (a): upserts/s per
trivial request/s and batch items/s per trivial request/s. SQLite (the embedded default) unless
`--postgres` (STOCKHUB_BENCH_POSTGRES, default postgresql://postgres@127.0.0.1:5432/test: a
fresh database is made and dropped).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import http.server
import os
import threading
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import StockhubServer  # noqa: E402

import httpx2 as httpx
import psycopg

from stockhub.db.migrate import upgrade
from stockhub.jobs.worker import Worker
from stockhub.services import tenancy
from stockhub.services.context import Hub
from stockhub.services.uploads import import_file
from stockhub.settings import Settings

ADMIN_URL = os.environ.get("STOCKHUB_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
SECRET = "bench-feeds-secret"
ITEMS = 1000
RETRIES = [0]  # requests answered 503 (SQLite busy) and sent again


def setup(url: str, work: Path) -> tuple[str, str, str]:
    """A tenant whose store has ITEMS products known by SKU; returns (token, store id, brand id)."""
    hub = Hub.from_settings(Settings(data_dir=work / "data", database_url=url, secret_key=SECRET))
    upgrade(hub.engine)
    org = tenancy.create_organization(hub, "Bench").id
    brand = tenancy.create_brand_for(hub, org, "Bench").id
    store = tenancy.create_store_for(hub, brand, {"name": "Bench", "country": "GB"}).id
    token = tenancy.create_api_token(hub, org).secret
    path = work / "stock.csv"
    path.write_text("sku,price,quantity\n" + "".join(f"SKU{n:06d},1.00,5\n" for n in range(ITEMS)))
    import_file(hub, store, path)
    Worker(hub, name="bench-setup").run_until_idle()
    hub.engine.dispose()
    return token, store, brand


def Server(url: str, work: Path) -> StockhubServer:  # noqa: N802
    return StockhubServer(url, work, SECRET, {
        "STOCKHUB_DATA_DIR": str(work / "data"),  # the set-up's: the server's workers read the files it stored
        "STOCKHUB_WORKER_POLL_SECONDS": "0.05",
        "STOCKHUB_WEBHOOK_ALLOW_LOOPBACK": "true",  # (d): the supplier's server is on this machine
        "STOCKHUB_RATE_LIMIT_PER_TOKEN": "off",
        "STOCKHUB_RATE_LIMIT_PER_ADDRESS": "off",
    })


async def closed_loop(base: str, token: str, requests: list[tuple[str, str, dict | None]], clients: int) -> float:
    """Send `requests` (method, path, json) from `clients` connections; seconds taken. Any non-2xx fails the run."""
    jobs = iter(requests)
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {token}"}, limits=limits, timeout=120, trust_env=False) as http:

        async def client() -> None:
            for method, path, body in jobs:
                answer = await http.request(method, path, json=body)
                while answer.status_code == 503:  # SQLite's writer busy: a real client retries after Retry-After
                    RETRIES[0] += 1
                    await asyncio.sleep(float(answer.headers.get("Retry-After", "1")))
                    answer = await http.request(method, path, json=body)
                if answer.status_code >= 300:
                    raise SystemExit(f"{method} {path}: {answer.status_code} {answer.text[:300]}")

        await asyncio.gather(*(http.get("/healthz") for _ in range(clients)))
        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        return time.perf_counter() - started


def wait_batches(base: str, token: str, batch_ids: list[str]) -> None:
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=60, trust_env=False) as http:
        for batch_id in reversed(batch_ids):  # the last received is applied last
            while (status := http.get(f"/v1/feed-batches/{batch_id}").json()["status"]) in ("received", "processing"):
                time.sleep(0.01)
            if status != "done":
                raise SystemExit(f"batch {batch_id} {status}")


async def send_batches(base: str, token: str, feed: str, batches: int, clients: int, rng: random.Random) -> tuple[float, list[str]]:
    ids: list[str] = []
    bodies = iter(range(batches))
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {token}"}, limits=limits, timeout=120, trust_env=False) as http:

        async def client() -> None:
            for n in bodies:
                items = [{"external_id": f"b{(n * 50 + k) % ITEMS}", "vendor_sku": f"SKU{(n * 50 + k) % ITEMS:06d}", "quantity": rng.randint(0, 20)} for k in range(50)]
                answer = await http.post(f"/v1/feeds/{feed}/batches", json={"items": items})
                while answer.status_code == 503:
                    RETRIES[0] += 1
                    await asyncio.sleep(float(answer.headers.get("Retry-After", "1")))
                    answer = await http.post(f"/v1/feeds/{feed}/batches", json={"items": items})
                if answer.status_code != 202:
                    raise SystemExit(f"batch: {answer.status_code} {answer.text[:300]}")
                ids.append(answer.json()["id"])

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        return started, ids


def gtin13(n: int) -> str:
    digits = f"50{n:010d}"
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(digits))
    return digits + str((10 - total % 10) % 10)


def supplier(folder: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    """A local HTTP server of `folder`'s files (the supplier's POS publishing its stock)."""
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:  # the bench prints its figures, not an access log
            pass

    handler = functools.partial(Quiet, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def wait_applied(http, upload_id: str) -> None:
    while (status := http.get(f"/v1/uploads/{upload_id}").json()["status"]) in ("received", "processing"):
        time.sleep(0.02)
    if status != "applied":
        raise SystemExit(f"upload {upload_id}: {status}")


def pulled_vs_uploaded(base: str, token: str, brand: str, csv: Path, supplier_url: str, run: int) -> tuple[float, float]:
    """Seconds until a pull feed's first document is applied, and until the same file uploaded is."""
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=600, trust_env=False) as http:
        stores = [http.post(f"/v1/brands/{brand}/stores", json={"name": f"{kind} {run}", "country": "GB"}).json() for kind in ("pulled", "uploaded")]
        started = time.perf_counter()
        feed = http.post(
            f"/v1/stores/{stores[0]['id']}/feeds",
            json={"name": "supplier", "kind": "pull", "source_url": f"{supplier_url}/{csv.name}", "format": "csv", "fetch_frequency": 10080},
        ).json()
        while (upload_id := http.get(f"/v1/feeds/{feed['id']}").json()["fetch"]["last_upload_id"]) is None:
            time.sleep(0.02)
        wait_applied(http, upload_id)
        pulled = time.perf_counter() - started

        started = time.perf_counter()
        url = http.get(f"/upload/{stores[1]['upload_key']}", params={"type": "stock"}).text.strip()
        upload_id = httpx.put(url, content=csv.read_bytes(), timeout=600, trust_env=False).json()["upload_id"]
        wait_applied(http, upload_id)
        uploaded = time.perf_counter() - started
    return pulled, uploaded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--batches", type=int, default=100)
    parser.add_argument("--pull-rows", type=int, default=200_000)
    parser.add_argument("--postgres", action="store_true")
    args = parser.parse_args()
    rng = random.Random(10)
    with tempfile.TemporaryDirectory(prefix="bench-feeds-") as tmp:
        work = Path(tmp)
        database = None
        if args.postgres:
            database = f"bench_feeds_{uuid.uuid4().hex[:8]}"
            with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
                admin.execute(f'CREATE DATABASE "{database}"')
            url = ADMIN_URL.rsplit("/", 1)[0] + f"/{database}"
        else:
            url = f"sqlite:///{work / 'data' / 'stockhub.sqlite3'}"
        try:
            token, store, brand = setup(url, work)
            files = work / "supplier"
            files.mkdir()
            csv = files / "stock.csv"
            csv.write_text("barcode,price,quantity\n" + "".join(f"{gtin13(n)},{1 + n % 50}.99,{1 + n % 40}\n" for n in range(args.pull_rows)))
            published, supplier_url = supplier(files)
            server = Server(url, work)
            pulls, uploads = [], []
            try:
                with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}, trust_env=False) as http:
                    feed = http.post(f"/v1/stores/{store}/feeds", json={"name": "bench", "kind": "push"}).json()["id"]
                trivial, single, batched = [], [], []
                for _ in range(3):
                    seconds = asyncio.run(closed_loop(server.url, token, [("GET", "/healthz", None)] * args.requests, args.clients))
                    trivial.append(args.requests / seconds)
                    puts = [
                        ("PUT", f"/v1/feeds/{feed}/items/s{n % ITEMS}", {"vendor_sku": f"SKU{n % ITEMS:06d}", "quantity": rng.randint(0, 20)})
                        for n in range(args.requests)
                    ]
                    seconds = asyncio.run(closed_loop(server.url, token, puts, args.clients))
                    single.append(args.requests / seconds)
                    started, batch_ids = asyncio.run(send_batches(server.url, token, feed, args.batches, args.clients, rng))
                    wait_batches(server.url, token, batch_ids)
                    batched.append(args.batches * 50 / (time.perf_counter() - started))
                    pulled, uploaded = pulled_vs_uploaded(server.url, token, brand, csv, supplier_url, len(pulls))
                    pulls.append(pulled)
                    uploads.append(uploaded)
            finally:
                server.stop()
                published.shutdown()
        finally:
            if database:
                with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
                    admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    t, s, b = statistics.median(trivial), statistics.median(single), statistics.median(batched)
    print(f"database: {'PostgreSQL' if args.postgres else 'SQLite'}; {args.clients} clients; medians of 3 runs")
    print(f"  (a) trivial GET /healthz     {t:8,.0f} requests/s   (runs {', '.join(f'{x:,.0f}' for x in trivial)})")
    print(f"  (b) single upserts (PUT)     {s:8,.0f} items/s      (runs {', '.join(f'{x:,.0f}' for x in single)})  ratio to (a) {s / t:.3f}x")
    print(f"  (c) batches of 50 (applied)  {b:8,.0f} items/s      (runs {', '.join(f'{x:,.0f}' for x in batched)})  ratio to (a) {b / t:.3f}x")
    p, u = statistics.median(pulls), statistics.median(uploads)
    print(
        f"  (d) {args.pull_rows:,}-row CSV pulled {p:6.2f} s (runs {', '.join(f'{x:.2f}' for x in pulls)}); the same file uploaded"
        f" {u:6.2f} s (runs {', '.join(f'{x:.2f}' for x in uploads)}); pulled / uploaded {p / u:.2f}x (aim <= 1.1x)"
    )
    print(f"  requests answered 503 (database busy) and retried after Retry-After: {RETRIES[0]}")


if __name__ == "__main__":
    main()
