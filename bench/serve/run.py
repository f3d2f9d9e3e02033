"""`stockhub serve` on the machine's cores, on both databases: one API process beside several.

    .venv/bin/python bench/serve/run.py [--quick] [--processes 2]

For PostgreSQL and for SQLite (a file in WAL mode, one writer at a time), `stockhub serve` as a
user runs it (background workers on, FTP off) is started with `--workers 1` and with
`--workers N` (default: the core count) on the same data, and each answers, from 50 keep-alive
connections of the lean client (bench/common.py):

- uncontended bookings (one unit of a random one of 10,000 products), and
- single lookups (one product's level by barcode).

The baseline of each figure is the same server with one API process, measured in the same run;
the ratio says what the extra processes buy. Each figure is the median of 3 runs (`--quick`: 1),
with the load average printed beside it. Every booking must be answered 201 and every lookup 200.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "orders"))
from common import fmt, http_request, loadavg, median_run  # noqa: E402
from run import ADMIN_URL, PLENTY, SECRET, Server, booking, ean13, load_stock, stockhub_bookings, timed_run  # noqa: E402

import psycopg  # noqa: E402

from stockhub.db.migrate import upgrade  # noqa: E402
from stockhub.services import tenancy  # noqa: E402
from stockhub.services.context import Hub  # noqa: E402
from stockhub.settings import Settings  # noqa: E402

PRODUCTS = 10_000


def prepare(url: str, work: Path) -> tuple[str, str, list[str]]:
    hub = Hub.from_settings(Settings(data_dir=work / "data", database_url=url, secret_key=SECRET))
    upgrade(hub.engine)
    organization = tenancy.create_organization(hub, "Bench").id
    brand = tenancy.create_brand_for(hub, organization, "Bench").id
    store = tenancy.create_store_for(hub, brand, {"name": "Wide", "country": "GB"}).id
    token = tenancy.create_api_token(hub, organization, "bench").secret
    skus = [ean13(n, "52") for n in range(PRODUCTS)]
    load_stock(hub, store, work / "wide.csv", skus, PLENTY)
    hub.engine.dispose()
    return store, token, skus


def measure(url: str, work: Path, processes: int, store: str, token: str, skus: list[str], args, tag: str) -> dict:
    server = Server(url, work, None, processes)
    rng = random.Random(processes)
    try:
        timed_run(server.port, stockhub_bookings(token, [booking(f"warm-{tag}-{n}", store, rng.choice(skus)) for n in range(200)]), args.clients)
        bookings, lookups = [], []
        auth = {"Authorization": f"Bearer {token}"}
        for r in range(args.runs):
            bodies = [booking(f"{tag}-{r}-{n}", store, rng.choice(skus)) for n in range(args.bookings)]
            bookings.append(timed_run(server.port, stockhub_bookings(token, bodies), args.clients, server))
            asks = [http_request("GET", f"/v1/stores/{store}/stock/{rng.choice(skus)}", auth) for _ in range(args.lookups)]
            lookups.append(timed_run(server.port, asks, args.clients, server))
    finally:
        server.stop()
    for result in bookings:
        assert result["counts"] == {201: args.bookings}, f"bookings answered {result['counts']}"
    for result in lookups:
        assert result["counts"] == {200: args.lookups}, f"lookups answered {result['counts']}"
    return {"bookings": median_run(bookings), "lookups": median_run(lookups)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="one run each")
    parser.add_argument("--processes", type=int, default=os.cpu_count())
    parser.add_argument("--bookings", type=int, default=2000)
    parser.add_argument("--lookups", type=int, default=4000)
    parser.add_argument("--clients", type=int, default=50)
    args = parser.parse_args()
    args.runs = 1 if args.quick else 3
    print(f"stockhub serve: 1 API process beside {args.processes}, {args.clients} connections, "
          f"{'1 run' if args.quick else 'median of 3 runs'}; loadavg {loadavg()}", flush=True)

    name = f"stockhub_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        for database in ("postgresql", "sqlite"):
            work = Path(tempfile.mkdtemp(prefix=f"stockhub-bench-serve-{database}-"))
            url = ADMIN_URL.rsplit("/", 1)[0] + f"/{name}" if database == "postgresql" else f"sqlite:///{work / 'stockhub.db'}"
            store, token, skus = prepare(url, work)
            one = measure(url, work, 1, store, token, skus, args, "one")
            many = measure(url, work, args.processes, store, token, skus, args, "many")
            print(f"{database}:")
            for kind, unit in (("bookings", "bookings/s"), ("lookups", "lookups/s")):
                print(f"  {kind}, uncontended, random over {PRODUCTS:,} products")
                print(f"    1 API process   {fmt(one[kind], unit)}  server CPU {one[kind]['server_ms']:.2f} ms/req")
                print(f"    {args.processes} API processes {fmt(many[kind], unit)}  server CPU {many[kind]['server_ms']:.2f} ms/req")
                print(f"    ratio {many[kind]['rate'] / one[kind]['rate']:.2f}x the single process", flush=True)
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
