"""Bookings and single lookups, on PostgreSQL: `stockhub serve` as a user runs it (an API
process per core, its background workers on) beside the floors, measured in the same run.

    .venv/bin/python bench/orders/run.py [--quick] [--bookings 2000] [--lookups 5000] [--clients 50] [--products 100000] [--profile DIR]
    .venv/bin/python bench/lookup/run.py [--quick]          # the single-lookup part alone

(a) contended: BOOKINGS bookings of 1 unit, round-robin over 10 SKUs of 100 units at one store
    (exactly 1,000 must be 201 and the rest 409, else the run fails); (b) uncontended: BOOKINGS
    bookings of a random one of PRODUCTS products; (e) single lookups: LOOKUPS GETs of one
    product's level by barcode, random products. All from CLIENTS keep-alive connections.

Floors, same run: the thin app (bench/thin_app.py: FastAPI + psycopg doing only the conditional
UPDATE, or the one SELECT, under uvicorn with the same settings and process count), on a copy of
the same stock table; pgbench (`-M prepared`, CLIENTS clients, `-T 10`) of the bare UPDATE.
Beside them, for (a) and (b), the thin app writing a booking's rows (`/book_whole`: the order,
the level, the line, the ledger movement, the event, in two round trips), on copies of the
same tables: how far the writes alone take a FastAPI + psycopg app from the bare UPDATE.
The load generator is a raw-socket asyncio client (bench/common.py), requests built before the
clock starts. Every figure is the median of 3 runs (each contended run on its own 10 fresh SKUs),
printed with the load average of the machine at each run and the ratio to its floor.

Where the time goes: database round trips per booking and per lookup, counted in-process
(SQLAlchemy events: statements, BEGIN, COMMIT), with their CPU and wall time, and the WAL a
booking writes (bytes, and records by kind: B-tree inserts, heap inserts, updates, row locks);
what PostgreSQL's backends wait on during (a) and (b); `--profile DIR` runs the server under py-spy.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import RoundTrips, StockhubServer, free_port, fmt, http_request, load, loadavg, median_run, postgres_cpu, process_tree_cpu, start_thin_app, stop  # noqa: E402
from thin_app import make_whole_tables  # noqa: E402

import psycopg
from sqlalchemy import func, select

from stockhub import ids
from stockhub.services.scope import scope_of
from stockhub.db.migrate import upgrade
from stockhub.db.tables import stock_levels
from stockhub.jobs.worker import Worker
from stockhub.services import accounts, events, orders, stock, tenancy
from stockhub.services.context import Hub
from stockhub.services.ledger import reconcile
from stockhub.services.uploads import import_file
from stockhub.settings import Settings

ADMIN_URL = os.environ.get("STOCKHUB_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
PGBENCH = os.environ.get("PGBENCH", "/usr/bin/pgbench")
SECRET = "bench-orders-secret"
HOT_SKUS, HOT_UNITS = 10, 100
PLENTY = 1_000_000


def ean13(n: int, prefix: str) -> str:
    body = f"{prefix}{n:0{12 - len(prefix)}d}"
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(body))
    return body + str((10 - total % 10) % 10)


def load_stock(hub: Hub, store: str, path: Path, barcodes: list[str], quantity: int) -> None:
    """One stock upload for the store, processed by a worker as any upload is."""
    with open(path, "w") as file:
        file.write("barcode,price,quantity,currency\n")
        file.writelines(f"{b},1.00,{quantity},GBP\n" for b in barcodes)
    import_file(hub, store, path)
    Worker(hub, name="bench-setup").run_until_idle()


# --- the baseline ------------------------------------------------------------------------------


def pgbench(url: str, work: Path, rows: int, units: int, clients: int, seconds: int, runs: int = 3) -> dict:
    """pgbench's tps (median of `runs`, each `-T seconds`) of the bare conditional UPDATE over a fresh `rows`-row table."""
    script = work / f"update_{rows}.sql"
    script.write_text(
        f"\\set id random(1, {rows})\n"
        "UPDATE bench_stock SET committed = committed + 1 WHERE id = :id AND on_hand - committed >= 1;\n"
    )
    found, loads = [], []
    for _ in range(runs):
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("DROP TABLE IF EXISTS bench_stock")
            conn.execute("CREATE TABLE bench_stock (id int PRIMARY KEY, on_hand int NOT NULL, committed int NOT NULL)")
            conn.execute("INSERT INTO bench_stock SELECT g, %s, 0 FROM generate_series(1, %s) g", (units, rows))
            conn.execute("VACUUM ANALYZE bench_stock")
        loads.append(loadavg())
        ran = subprocess.run(
            [PGBENCH, "-n", "-M", "prepared", "-c", str(clients), "-j", "2", "-T", str(seconds), "-f", str(script), url],
            capture_output=True, text=True,
        )
        if ran.returncode != 0:
            raise SystemExit(f"pgbench failed:\n{ran.stderr}")
        found.append(float(re.search(r"tps = ([\d.]+) \(without initial connection time\)", ran.stdout).group(1)))
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("DROP TABLE bench_stock")
    return {"rate": statistics.median(found), "runs": found, "loads": loads}


def Server(url: str, work: Path, profile: Path | None, workers: int, rate_limit: str = "database") -> StockhubServer:  # noqa: N802
    """`stockhub serve` as a user runs it: API processes (default: one per core) and the background workers;
    rate limits counted as users' servers count them (`database`), never reached."""
    limit = "off" if rate_limit == "off" else "100000000/hour"
    settings = {"STOCKHUB_RATE_LIMIT_PER_TOKEN": limit, "STOCKHUB_RATE_LIMIT_PER_ADDRESS": limit,
                "STOCKHUB_RATE_LIMIT_STORE": rate_limit if rate_limit != "off" else "auto"}
    return StockhubServer(url, work, SECRET, settings, ("--workers", str(workers)), profile)


# --- what PostgreSQL waits on during a run -----------------------------------------------------


class WaitSampler:
    """Samples pg_stat_activity of the bench database every 10 ms: per (wait event, statement) the
    share of samples' active backends found there."""

    def __init__(self, url: str, database: str):
        self.url, self.database = url, database
        self.counts: collections.Counter = collections.Counter()
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *_):
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self._stop.is_set():
                rows = conn.execute(
                    "SELECT coalesce(wait_event_type || ':' || wait_event, 'CPU'), state, left(regexp_replace(query, '\\s+', ' ', 'g'), 70) "
                    "FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid() AND backend_type = 'client backend' "
                    "AND state <> 'idle'",
                    (self.database,),
                ).fetchall()
                self.samples += 1
                for wait, state, query in rows:
                    if state == "idle in transaction":  # between statements: waiting for the server's Python
                        self.counts[("idle in transaction (app)", "")] += 1
                    else:
                        self.counts[(wait, query)] += 1
                time.sleep(0.01)

    def report(self, top: int = 6) -> list[str]:
        total = sum(self.counts.values()) or 1
        lines = [f"      PostgreSQL backends busy on average: {total / max(self.samples, 1):.1f} (of these:)"]
        for (wait, query), n in self.counts.most_common(top):
            lines.append(f"      {100 * n / total:5.1f}%  {wait:<32} {query}")
        return lines


# --- the runs -----------------------------------------------------------------------------------


def booking(external_id: str, store: str, sku: str) -> dict:
    return {
        "external_id": external_id,
        "channel": {"type": "marketplace", "name": "bench"},
        "currency": "GBP",
        "lines": [{"identifier": sku, "quantity": 1, "unit_price": "1.00"}],
        "fulfilment": {"type": "ship", "store_id": store},
    }


def stockhub_bookings(token: str, bodies: list[dict]) -> list[bytes]:
    auth = {"Authorization": f"Bearer {token}"}
    return [http_request("POST", "/v1/orders", auth, json.dumps(b).encode()) for b in bodies]


def thin_bookings(store: int, skus: list[str]) -> list[bytes]:
    return [http_request("POST", "/book", None, json.dumps({"store": store, "identifier": "0" + sku}).encode()) for sku in skus]


def whole_bookings(organization: int, store: int, skus: list[str], run: str) -> list[bytes]:
    """The thin app's second floor (bench/thin_app.py, /book_whole): the rows a booking writes."""
    return [http_request("POST", "/book_whole", None, json.dumps({"organization": organization, "store": store, "external_id": f"{run}-{n}",
                                                                   "identifier": "0" + sku}).encode()) for n, sku in enumerate(skus)]


def timed_run(port: int, requests: list[bytes], clients: int, server=None, sampler=None) -> dict:
    cpu, database_cpu = (server.cpu_seconds() if server else 0.0), postgres_cpu()
    if sampler:
        with sampler:
            result = load(port, requests, clients)
    else:
        result = load(port, requests, clients)
    if server:
        result["server_ms"] = (server.cpu_seconds() - cpu) * 1000 / len(requests)
    result["database_ms"] = (postgres_cpu() - database_cpu) * 1000 / len(requests)
    counts = collections.Counter(result["statuses"])
    result["counts"] = dict(counts)
    return result


def show(title: str, ours: dict, thin: dict, floor: dict | None = None, unit: str = "bookings/s", aim: float = 0.5, p99_aim: float | None = 100,
         whole: dict | None = None) -> list[str]:
    ratio = ours["rate"] / thin["rate"]
    lines = [
        title,
        f"    stockhub  {fmt(ours, unit)}  answers {ours['counts']}  {cpu(ours)}",
        f"    thin app  {fmt(thin, unit)}  answers {thin['counts']}  {cpu(thin)}",
    ]
    if whole:
        lines.append(f"    thin app, a booking's rows (/book_whole)  {fmt(whole, unit)}  answers {whole['counts']}  {cpu(whole)}")
    lines += [
        f"    ratio {ratio:.2f}x the thin app (aim >= {aim}x: {'met' if ratio >= aim else 'NOT met'})"
        + (f"; p99 {ours['p99']:.0f} ms (aim < {p99_aim:.0f} ms: {'met' if ours['p99'] < p99_aim else 'NOT met'})" if p99_aim else ""),
    ]
    if whole:
        lines.append(f"    beside the thin app writing a booking's rows: stockhub {ours['rate'] / whole['rate']:.2f}x; those rows alone take the thin app "
                     f"to {whole['rate'] / thin['rate']:.2f}x of its bare UPDATE")
    if floor:
        lines.append(f"    pgbench bare UPDATE (-T): {floor['rate']:,.0f} tps (runs {', '.join(f'{t:,.0f}' for t in floor['runs'])}) "
                     f"[loadavg {'; '.join(floor['loads'])}]; stockhub is {ours['rate'] / floor['rate']:.3f}x, the thin app {thin['rate'] / floor['rate']:.3f}x")
    return lines


def cpu(result: dict) -> str:
    return f"server CPU {result.get('server_ms', 0):.2f} ms/req, PostgreSQL's {result['database_ms']:.2f}"


def in_process(url: str, work: Path, token: str, store: str, skus: list[str], n: int) -> list[str]:
    """Round trips, CPU and wall per booking and per single lookup, in-process, one at a time."""
    hub = Hub.from_settings(Settings(data_dir=work / "data", database_url=url, secret_key=SECRET))
    trips = RoundTrips(hub.engine)
    rng = random.Random(3)
    principal = accounts.principal_for_token(hub, token)

    def book(i: int) -> None:
        principal = accounts.principal_for_token(hub, token)  # the token cache, as the API does
        orders.book(hub, principal.organization, orders.Booking.model_validate(booking(f"inproc-{i}", store, rng.choice(skus))))

    def lookup(_: int) -> None:
        principal = accounts.principal_for_token(hub, token)
        stock.get_stock(hub, scope_of(principal, "store"), store, rng.choice(skus))

    lines = []
    for label, fn in (("booking", book), ("single lookup", lookup)):
        for i in range(20):  # the pool, statement caches, the token cache
            fn(-i - 1 if label == "booking" else i)
        while events.sequence_events(hub.engine):
            pass
        trips.reset()
        wal = WalWritten(url)
        cpu, wall = time.process_time(), time.perf_counter()
        for i in range(n):
            fn(i)
        cpu, wall = (time.process_time() - cpu) * 1000 / n, (time.perf_counter() - wall) * 1000 / n
        lines.append(f"    {label}: {trips.value / n:.1f} database round trips carrying {trips.statements / n:.1f} statements besides BEGIN/COMMIT, "
                     f"{cpu:.2f} ms CPU, {wall:.2f} ms wall, one at a time in-process (token cache hit)")
        if label == "booking":
            while events.sequence_events(hub.engine, 20):  # its events numbered, in batches as under load
                pass
            lines += wal.report(n)
    hub.engine.dispose()
    del principal
    return lines


class WalWritten:
    """What PostgreSQL wrote to its WAL from now on, per request: a count that the machine's noise
    does not move (unlike CPU), so a change to what a booking writes shows in one run. With
    pg_walinspect (PostgreSQL 15+ contrib), also its records by kind: B-tree inserts, heap inserts,
    updates and row locks. Other databases' writes count too: run nothing else."""

    def __init__(self, url: str):
        self.conn = psycopg.connect(url, autocommit=True)
        self.start = self.conn.execute("SELECT pg_current_wal_lsn()").fetchone()[0]

    def report(self, n: int) -> list[str]:
        end = self.conn.execute("SELECT pg_current_wal_lsn()").fetchone()[0]
        written = self.conn.execute("SELECT pg_wal_lsn_diff(%s, %s)", (end, self.start)).fetchone()[0]
        lines = [f"    booking's WAL: {float(written) / n:,.0f} bytes a booking, its events numbered"]
        try:
            self.conn.execute("CREATE EXTENSION IF NOT EXISTS pg_walinspect")
            kinds = self.conn.execute(
                'SELECT "resource_manager/record_type", count FROM pg_get_wal_stats(%s, %s, true) WHERE count > 0 ORDER BY count DESC LIMIT 6',
                (self.start, end),
            ).fetchall()
            lines.append("      records a booking: " + ", ".join(f"{kind} {count / n:.1f}" for kind, count in kinds))
        except psycopg.Error as error:
            lines.append(f"      (records by kind need pg_walinspect: {str(error).strip()[:80]})")
        self.conn.close()
        return lines


def profile_summary(path: Path, top: int = 12) -> list[str]:
    """The stockhub functions most often on the stack in py-spy's collapsed output (share of all samples)."""
    inclusive, total = collections.Counter(), 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        total += int(count)
        functions = {re.sub(r":\d+\)$", ")", f) for f in stack.split(";")}
        for frame in {f for f in functions if "stockhub/" in f and "<module>" not in f and "cli.py" not in f}:
            inclusive[frame] += int(count)
    return [f"    {100 * n / max(total, 1):5.1f}%  {frame}" for frame, n in inclusive.most_common(top)]


def main(only_lookups: bool = False) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate-limit", choices=["off", "database", "memory"], default="database",
                        help="how the server counts requests (default: as a user's server does, in the database; limits never reached)")
    parser.add_argument("--quick", action="store_true", help="one run each, 10,000 products, pgbench -T 3: a few minutes")
    parser.add_argument("--bookings", type=int, default=2000)
    parser.add_argument("--lookups", type=int, default=5000)
    parser.add_argument("--clients", type=int, default=50, help="concurrent connections (pgbench needs as many of the cluster's max_connections 100)")
    parser.add_argument("--products", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="API processes of stockhub and of the thin app (default: the core count)")
    parser.add_argument("--only-lookups", action="store_true", default=only_lookups)
    parser.add_argument("--profile", type=Path, default=None, help="run the server under py-spy; collapsed stacks go to DIR/server.raw")
    args = parser.parse_args()
    runs = 1 if args.quick else 3
    seconds = 3 if args.quick else 10
    if args.quick:
        args.products = min(args.products, 10_000)
    if args.bookings < 2 * HOT_SKUS * HOT_UNITS:
        parser.error(f"--bookings must be at least {2 * HOT_SKUS * HOT_UNITS} so the hot SKUs sell out")

    name = f"stockhub_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    work = Path(tempfile.mkdtemp(prefix="stockhub-bench-orders-"))
    server = thin = None
    failed = []
    out = []

    def say(line: str = "") -> None:
        print(line, flush=True)
        out.append(line)

    try:
        hub = Hub.from_settings(Settings(data_dir=work / "data", database_url=url, secret_key=SECRET))
        upgrade(hub.engine)
        org = tenancy.create_organization(hub, "Bench").id
        brand = tenancy.create_brand_for(hub, org, "Bench").id
        hot = tenancy.create_store_for(hub, brand, {"name": "Hot", "country": "GB"}).id
        wide = tenancy.create_store_for(hub, brand, {"name": "Wide", "country": "GB"}).id
        token = tenancy.create_api_token(hub, org, "bench").secret
        hot_sets = [[ean13(r * HOT_SKUS + n, "50") for n in range(HOT_SKUS)] for r in range(3 * runs)]  # stockhub's runs, the thin app's, its whole bookings'
        wide_skus = [ean13(n, "51") for n in range(args.products)]
        started = time.perf_counter()
        load_stock(hub, hot, work / "hot.csv", [s for skus in hot_sets for s in skus], HOT_UNITS)
        load_stock(hub, wide, work / "wide.csv", wide_skus, PLENTY)
        setup_s = time.perf_counter() - started
        hub.engine.dispose()
        hot_n, wide_n, org_n = ids.decode("store", hot), ids.decode("store", wide), ids.decode("organization", org)
        with psycopg.connect(url, autocommit=True) as conn:  # the thin app's copy: same shape, same key, same rows
            conn.execute("CREATE TABLE thin_stock_levels (LIKE stock_levels INCLUDING ALL)")
            conn.execute("INSERT INTO thin_stock_levels SELECT * FROM stock_levels")
            make_whole_tables(conn)
            conn.execute("VACUUM ANALYZE thin_stock_levels")
            conn.execute("VACUUM ANALYZE stock_levels")
        say(f"orders and lookups benchmark on PostgreSQL {psycopg.connect(url).info.server_version}, {os.cpu_count()} cores, "
            f"{args.workers} API processes each; {args.clients} connections; {'quick: 1 run each' if args.quick else 'median of 3 runs'}; "
            f"set-up {setup_s:.1f} s; loadavg {loadavg()}")

        if not args.only_lookups:  # pgbench first, before the servers hold connections
            tps_hot = pgbench(url, work, HOT_SKUS, HOT_UNITS, args.clients, seconds, runs)
            tps_wide = pgbench(url, work, args.products, PLENTY, args.clients, seconds, runs)

        thin_port = free_port()
        thin = start_thin_app(url, thin_port, args.workers, work / "thin.log")
        thin_cpu = SimpleNamespace(cpu_seconds=lambda: process_tree_cpu(thin.pid))  # its CPU per request, as stockhub's
        if args.profile:
            args.profile.mkdir(parents=True, exist_ok=True)
        server = Server(url, work, args.profile, args.workers, args.rate_limit)
        rng = random.Random(7)
        # warm both: pools, caches, prepared statements
        load(server.port, stockhub_bookings(token, [booking(f"warm-{n}", wide, rng.choice(wide_skus)) for n in range(300)]), args.clients)
        load(thin_port, thin_bookings(wide_n, [rng.choice(wide_skus) for _ in range(300)]), args.clients)
        load(thin_port, whole_bookings(org_n, wide_n, [rng.choice(wide_skus) for _ in range(300)], "warm"), args.clients)

        if not args.only_lookups:
            hot_ours, hot_thin, wide_ours, wide_thin, hot_whole, wide_whole = [], [], [], [], [], []
            waits_hot, waits_wide = WaitSampler(url, name), WaitSampler(url, name)
            for r in range(runs):
                bodies = [booking(f"hot-{r}-{n}", hot, hot_sets[r][n % HOT_SKUS]) for n in range(args.bookings)]
                hot_ours.append(timed_run(server.port, stockhub_bookings(token, bodies), args.clients, server, waits_hot if r == 0 else None))
                hot_thin.append(timed_run(thin_port, thin_bookings(hot_n, [hot_sets[runs + r][n % HOT_SKUS] for n in range(args.bookings)]), args.clients, thin_cpu))
                hot_whole.append(timed_run(thin_port, whole_bookings(org_n, hot_n, [hot_sets[2 * runs + r][n % HOT_SKUS] for n in range(args.bookings)], f"hot-{r}"),
                                           args.clients, thin_cpu))
                bodies = [booking(f"wide-{r}-{n}", wide, rng.choice(wide_skus)) for n in range(args.bookings)]
                wide_ours.append(timed_run(server.port, stockhub_bookings(token, bodies), args.clients, server, waits_wide if r == 0 else None))
                wide_thin.append(timed_run(thin_port, thin_bookings(wide_n, [rng.choice(wide_skus) for _ in range(args.bookings)]), args.clients, thin_cpu))
                wide_whole.append(timed_run(thin_port, whole_bookings(org_n, wide_n, [rng.choice(wide_skus) for _ in range(args.bookings)], f"wide-{r}"),
                                            args.clients, thin_cpu))
            for result in hot_ours:
                if result["counts"] != {201: HOT_SKUS * HOT_UNITS, 409: args.bookings - HOT_SKUS * HOT_UNITS}:
                    failed.append(f"a contended run answered {result['counts']}")
            for result in wide_ours + wide_whole:
                if result["counts"] != {201: args.bookings}:
                    failed.append(f"an uncontended run answered {result['counts']}")
            for result in hot_whole:
                if result["counts"] != {201: HOT_SKUS * HOT_UNITS, 409: args.bookings - HOT_SKUS * HOT_UNITS}:
                    failed.append(f"a contended run of the thin app's whole bookings answered {result['counts']}")
            for line in show(f"(a) contended: {HOT_SKUS} SKUs x {HOT_UNITS} units at one store, {args.bookings:,} bookings", median_run(hot_ours), median_run(hot_thin), tps_hot,
                             whole=median_run(hot_whole)):
                say(line)
            for line in waits_hot.report():
                say(line)
            for line in show(f"(b) uncontended: random SKUs over {args.products:,} products, {args.bookings:,} bookings", median_run(wide_ours), median_run(wide_thin), tps_wide,
                             whole=median_run(wide_whole)):
                say(line)
            for line in waits_wide.report():
                say(line)

        look_ours, look_thin = [], []
        auth = {"Authorization": f"Bearer {token}"}
        for r in range(runs):
            skus = [rng.choice(wide_skus) for _ in range(args.lookups)]
            look_ours.append(timed_run(server.port, [http_request("GET", f"/v1/stores/{wide}/stock/{s}", auth) for s in skus], args.clients, server))
            look_thin.append(timed_run(thin_port, [http_request("GET", f"/stock/{wide_n}/0{s}") for s in skus], args.clients, thin_cpu))
        for result in look_ours + look_thin:
            if result["counts"] != {200: args.lookups}:
                failed.append(f"a lookup run answered {result['counts']}")
        for line in show(f"(e) single lookups: one product's level by barcode, random over {args.products:,} products, {args.lookups:,} requests",
                         median_run(look_ours), median_run(look_thin), unit="lookups/s", p99_aim=None):
            say(line)
        server.stop()
        server = None
        stop(thin)
        thin = None

        say("(d) where the time goes, in-process, one at a time:")
        for line in in_process(url, work, token, wide, wide_skus, 200):
            say(line)

        if not args.only_lookups:
            hub = Hub.from_settings(Settings(data_dir=work / "data", database_url=url, secret_key=SECRET))
            with hub.engine.connect() as conn:
                hot_skus = [s for skus in hot_sets[:runs] for s in skus]
                committed = conn.execute(select(func.sum(stock_levels.c.committed)).where(stock_levels.c.identifier.in_(["0" + s for s in hot_skus]))).scalar_one()
            drift = reconcile(hub)
            hub.engine.dispose()
            say(f"committed units of the contended SKUs: {committed} (must be {runs * HOT_SKUS * HOT_UNITS}); "
                f"ledger replays to the levels: {'yes' if drift.is_empty() else f'NO ({drift.height} rows differ)'}")
            if committed != runs * HOT_SKUS * HOT_UNITS:
                failed.append("oversold or undersold")
            if not drift.is_empty():
                failed.append("the ledger does not replay to the levels")
        if args.profile:
            say(f"py-spy profile of the server (all runs): {args.profile / 'server.raw'}")
            for line in profile_summary(args.profile / "server.raw"):
                say(line)
    finally:
        if server is not None:
            server.stop()
        if thin is not None:
            stop(thin)
        if failed and (work / "server.log").exists():
            warnings = [line for line in (work / "server.log").read_text().splitlines() if " WARNING " in line or " ERROR " in line]
            print("server warnings and errors (first 10):\n" + "\n".join(warnings[:10]))
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        shutil.rmtree(work, ignore_errors=True)
    if failed:
        raise SystemExit("FAILED: " + "; ".join(failed))


if __name__ == "__main__":
    main()
