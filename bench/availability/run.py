"""Availability benchmark, on PostgreSQL: a live stockhub server (one process) answering the
read side, beside its own trivial endpoint and the bare SQL, in one run.

    .venv/bin/python bench/availability/run.py [--stores 50] [--products 100000] [--pickup-stores 1000]
        [--requests 300] [--clients 4] [--upload-rows 200000] [--profile DIR]

(a) POST /v1/availability with 2,000 random product × store keys over STORES × PRODUCTS levels,
    beside GET /healthz of the same server: req/s (median of 3 runs each, interleaved) and
    p50/p99 latency; then again while an upload of UPLOAD_ROWS rows is being applied by a worker.
(b) POST /v1/pickup-options for a 3-product bag around random points, over PICKUP_STORES stores
    with coordinates (all of which stock the bag): p50/p99.
(c) the full export of a group of the STORES stores (GET …/availability?format=csv, streamed)
    vs the bare `SELECT identifier, sum(greatest(...)) … GROUP BY identifier` of the same sums
    fetched by psycopg: seconds, median of 3, ratio.
(d) after 1% of the products change (stock adjustments through the API, each an
    inventory.updated event), the increment `?since=<cursor>`: its rows and seconds, beside (c).

The load generator is a raw-socket asyncio HTTP/1.1 client on keep-alive connections (closed
loop), so the client is not what is measured. The setup writes the 5M levels with one INSERT …
SELECT (no events: the full export does not need them); (d)'s changes go through the API.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import StockhubServer, http_request  # noqa: E402
from common import load as lean_load  # noqa: E402

import httpx2 as httpx
import psycopg

from stockhub import ids
from stockhub.db.migrate import upgrade
from stockhub.jobs.worker import Worker
from stockhub.services import tenancy
from stockhub.services.context import Hub
from stockhub.services.uploads import import_file
from stockhub.settings import Settings

ADMIN_URL = os.environ.get("STOCKHUB_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
SECRET = "bench-availability-secret"


def ean13(n: int, prefix: str = "20") -> str:
    body = f"{prefix}{n:0{12 - len(prefix)}d}"
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(body))
    return body + str((10 - total % 10) % 10)


def Server(url: str, work: Path, profile: Path | None) -> StockhubServer:  # noqa: N802
    return StockhubServer(url, work, SECRET, args=("--no-jobs",), profile=profile)


# --- the load generator: bench/common.py's lean client --------------------------------------------


def request(method: str, path: str, token: str, body: dict | None = None) -> bytes:
    return http_request(method, path, {"Authorization": f"Bearer {token}"}, json.dumps(body).encode() if body is not None else None)


def load(port: int, requests: list[bytes], clients: int) -> dict:
    result = lean_load(port, requests, clients)
    bad = [s for s in result["statuses"] if s != 200]
    if bad:
        raise SystemExit(f"unexpected statuses: {sorted(set(bad))}")
    return result


def fmt(result: dict) -> str:
    return f"{result['rate']:8.1f} req/s  p50 {result['p50']:7.1f} ms  p99 {result['p99']:7.1f} ms"


# --- setup -------------------------------------------------------------------------------------


def setup(hub: Hub, url: str, args) -> dict:
    org = tenancy.create_organization(hub, "Bench").id
    brand = tenancy.create_brand_for(hub, org, "Bench").id
    rng = random.Random(1)
    stores = []
    for n in range(args.pickup_stores):  # spread over Great Britain
        fields = {"name": f"Store {n}", "country": "GB", "latitude": rng.uniform(50.5, 55.5), "longitude": rng.uniform(-4.5, 0.5)}
        stores.append(tenancy.create_store_for(hub, brand, fields).id)
    token = tenancy.create_api_token(hub, org, "bench").secret
    products = [ean13(n) for n in range(args.products)]
    numbers = [ids.decode("store", s) for s in stores]
    big = numbers[: args.stores]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE bench_products (identifier text PRIMARY KEY)")
        with conn.cursor().copy("COPY bench_products (identifier) FROM STDIN") as copy:
            for p in products:
                copy.write_row(("0" + p,))
        started = time.perf_counter()
        conn.execute(
            "INSERT INTO stock_levels (store_id, identifier, on_hand, committed, safety_stock, price_minor, currency, last_reported_on, expired, updated_at) "
            "SELECT s, p.identifier, (hashtext(p.identifier || s) & 31), 0, 0, 199, 'GBP', current_date, false, now() "
            "FROM unnest(%s::bigint[]) AS s CROSS JOIN bench_products p",
            (big,),
        )
        bag = ["0" + p for p in products[:3]]
        conn.execute(
            "INSERT INTO stock_levels (store_id, identifier, on_hand, committed, safety_stock, price_minor, currency, last_reported_on, expired, updated_at) "
            "SELECT s, i, 5 + (s %% 7), 0, 0, 199, 'GBP', current_date, false, now() FROM unnest(%s::bigint[]) AS s CROSS JOIN unnest(%s::text[]) AS i",
            (numbers[args.stores :], bag),
        )
        conn.execute("VACUUM ANALYZE stock_levels")
        loaded = time.perf_counter() - started
    return {"org": org, "token": token, "stores": stores, "big": stores[: args.stores], "products": products, "bag": products[:3], "load_s": loaded}


def bare_group_by(url: str, store_numbers: list[int]) -> float:
    with psycopg.connect(url) as conn:
        started = time.perf_counter()
        rows = conn.execute(
            "SELECT identifier, sum(CASE WHEN expired THEN 0 ELSE greatest(on_hand - committed - safety_stock, 0) END), count(*) "
            "FROM stock_levels WHERE store_id = ANY(%s) GROUP BY identifier ORDER BY identifier",
            (store_numbers,),
        ).fetchall()
        seconds = time.perf_counter() - started
    assert rows
    return seconds


def export(server: Server, token: str, group: str, since: int | None = None) -> tuple[float, int, int]:
    params = {"format": "csv"} | ({"since": since} if since is not None else {})
    started = time.perf_counter()
    lines = 0
    with httpx.stream("GET", f"{server.url}/v1/location-groups/{group}/availability", params=params, headers={"Authorization": f"Bearer {token}"}, timeout=600, trust_env=False) as response:
        assert response.status_code == 200, response.read()
        for chunk in response.iter_bytes():
            lines += chunk.count(b"\n")
        cursor = int(response.headers["stockhub-cursor"])
    return time.perf_counter() - started, lines - 1, cursor


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--stores", type=int, default=50)
    parser.add_argument("--products", type=int, default=100_000)
    parser.add_argument("--pickup-stores", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=300, help="per run of (a) and (b)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent keep-alive connections")
    parser.add_argument("--upload-rows", type=int, default=200_000)
    parser.add_argument("--profile", type=Path, default=None)
    parser.add_argument("--only-exports", action="store_true", help="skip (a) and (b)")
    parser.add_argument("--only-lookups", action="store_true", help="(a) alone")
    args = parser.parse_args()
    name = f"stockhub_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    work = Path(tempfile.mkdtemp(prefix="stockhub-bench-availability-"))
    server = None
    out = []

    def say(line: str = "") -> None:
        print(line, flush=True)
        out.append(line)

    try:
        hub = Hub.from_settings(Settings(data_dir=work / "data", database_url=url, secret_key=SECRET))
        upgrade(hub.engine)
        data = setup(hub, url, args)
        token = data["token"]
        say(f"setup: {args.stores} stores × {args.products:,} products ({args.stores * args.products:,} levels) in {data['load_s']:.0f} s; {args.pickup_stores} stores with coordinates")
        say(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start (shared with other engineers' work)")
        if args.profile:
            args.profile.mkdir(parents=True, exist_ok=True)
        server = Server(url, work, args.profile)
        rng = random.Random(2)
        if args.only_exports:
            return exports(server, url, token, data, args, rng, say)
        bodies = [
            request("POST", "/v1/availability", token, {"keys": [{"identifier": rng.choice(data["products"]), "store_id": rng.choice(data["big"])} for _ in range(2000)]})
            for _ in range(20)
        ]
        lookups = [bodies[i % len(bodies)] for i in range(args.requests)]
        trivial = [request("GET", "/healthz", token)] * (args.requests * 10)
        load(server.port, lookups[:20], args.clients)  # warm up
        load(server.port, trivial[:200], args.clients)
        runs_a, runs_t = [], []
        for _ in range(3):
            runs_t.append(load(server.port, trivial, args.clients))
            runs_a.append(load(server.port, lookups, args.clients))
        med = lambda runs, key: statistics.median(r[key] for r in runs)  # noqa: E731
        say(f"(a) GET /healthz              {med(runs_t, 'rate'):8.1f} req/s  p50 {med(runs_t, 'p50'):7.1f} ms  p99 {med(runs_t, 'p99'):7.1f} ms  (median of 3)")
        say(f"    POST /v1/availability 2000 {med(runs_a, 'rate'):8.1f} req/s  p50 {med(runs_a, 'p50'):7.1f} ms  p99 {med(runs_a, 'p99'):7.1f} ms  (median of 3)")
        say(f"    ratio lookups/trivial: {med(runs_a, 'rate') / med(runs_t, 'rate'):.3f} (requests/s); keys/s: {2000 * med(runs_a, 'rate'):,.0f}")
        with open(work / "upload.csv", "w") as f:  # an upload beside: the first big store, UPLOAD_ROWS rows
            f.write("barcode,price,quantity\n")
            f.writelines(f"{ean13(n)},1.99,{(n * 7) % 40}\n" for n in range(args.upload_rows))
        import_file(hub, data["big"][0], work / "upload.csv")
        applying = threading.Thread(target=Worker(hub, name="bench-upload").run_until_idle)
        started = time.perf_counter()
        applying.start()
        during = load(server.port, lookups, args.clients)
        overlapped = time.perf_counter() - started
        applying.join()
        say(f"    while a {args.upload_rows:,}-row upload is applied: {fmt(during)} (the load ran {overlapped:.1f} s of the upload's {time.perf_counter() - started:.1f} s)")

        if args.only_lookups:
            return
        here = [{"latitude": rng.uniform(51.0, 55.0), "longitude": rng.uniform(-4.0, 0.0)} for _ in range(50)]
        pickups = [
            request("POST", "/v1/pickup-options", token, {"location": here[i % 50], "bag": [{"identifier": b, "quantity": 2} for b in data["bag"]], "radius_km": 50, "limit": 10})
            for i in range(args.requests)
        ]
        load(server.port, pickups[:20], args.clients)
        runs_b = [load(server.port, pickups, args.clients) for _ in range(3)]
        say(f"(b) POST /v1/pickup-options    {med(runs_b, 'rate'):8.1f} req/s  p50 {med(runs_b, 'p50'):7.1f} ms  p99 {med(runs_b, 'p99'):7.1f} ms  (median of 3, {args.pickup_stores} stores, radius 50 km)")

        exports(server, url, token, data, args, rng, say)
    finally:
        if server is not None:
            server.stop()
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        shutil.rmtree(work, ignore_errors=True)
        (Path(__file__).parent / "last-run.txt").write_text("\n".join(out) + "\n")


def exports(server: Server, url: str, token: str, data: dict, args, rng: random.Random, say) -> None:
    if True:
        group = httpx.post(f"{server.url}/v1/location-groups", json={"name": "All", "store_ids": data["big"]}, headers={"Authorization": f"Bearer {token}"}, trust_env=False).json()["id"]
        numbers = [ids.decode("store", s) for s in data["big"]]
        runs_c = [export(server, token, group) for _ in range(3)]
        bare = [bare_group_by(url, numbers) for _ in range(3)]
        export_s, rows, cursor = sorted(runs_c)[1]
        say(f"(c) full export (CSV stream)   {export_s:6.2f} s for {rows:,} products; bare SELECT … GROUP BY {statistics.median(bare):6.2f} s; ratio {export_s / statistics.median(bare):.2f} (medians of 3)")

        for share in (100, 1000):  # 1%, then 0.1% more: the increment follows the changes
            changed = max(1, args.products // share)
            picks = rng.sample(data["products"], changed)
            per_store = [picks[i :: len(data["big"])] for i in range(len(data["big"]))]
            started = time.perf_counter()
            for store, products in zip(data["big"], per_store):
                if products:
                    answer = httpx.post(
                        f"{server.url}/v1/stores/{store}/stock/adjustments",
                        json={"adjustments": [{"identifier": p, "delta": 3} for p in products]},
                        headers={"Authorization": f"Bearer {token}", "Idempotency-Key": f"bench-{share}-{store}"},
                        trust_env=False,
                        timeout=120,
                    )
                    assert answer.status_code == 200, answer.text
            write_s = time.perf_counter() - started
            increments = [export(server, token, group, since=cursor) for _ in range(3)]
            inc_s, inc_rows, next_cursor = sorted(increments)[1]
            say(
                f"(d) increment after {changed:,} products changed ({100 / share:g}%, written in {write_s:.1f} s): {inc_rows:,} rows in"
                f" {inc_s:.3f} s (median of 3) = {100 * inc_s / export_s:.1f}% of the full export's time"
            )
            assert inc_rows == changed, (inc_rows, changed)
            cursor = next_cursor


if __name__ == "__main__":
    main()
