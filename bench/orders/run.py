"""Order booking benchmark, on PostgreSQL: a live stockhub server taking concurrent HTTP
bookings, beside pgbench running the bare conditional UPDATE a booking boils down to, in one run.

    .venv/bin/python bench/orders/run.py [--bookings 2000] [--clients 50] [--products 100000] [--sequential 200] [--profile DIR]
        [--rate-limit off|database|memory]

(a) contended: BOOKINGS bookings of 1 unit, round-robin over 10 SKUs of 100 units at one store,
    from CLIENTS concurrent keep-alive connections (a closed loop: each sends its next booking
    when the last one is answered). Exactly 1,000 must be accepted (201) and the rest refused
    (409); anything else fails the run. Baseline: pgbench, CLIENTS clients, BOOKINGS transactions
    in all, each `UPDATE bench_stock SET committed = committed + 1 WHERE id = :id AND
    on_hand - committed >= 1` for a random one of 10 rows of 100 units (so half of them find no
    row, like the refused bookings).
(b) uncontended: BOOKINGS bookings of 1 unit of a random one of PRODUCTS products (each with
    plenty of stock) at a second store; baseline the same UPDATE over PRODUCTS rows.

For each: accepted/refused/other counts, bookings/s, p50/p99 latency (client side, send to
last byte), the ratio to pgbench's tps (median of 3 runs), the CPU the server process and this
client used per booking, and what PostgreSQL's backends were doing (pg_stat_activity sampled
every 10 ms: wait event and statement).

Where the time goes: (c) SEQUENTIAL bookings from one client, one at a time (the server's
service time with nothing queued), and (d) the same number booked in-process through
`orders.book` with a timer around each stage and a count of the SQL statements sent.
`--profile DIR` runs the server under py-spy (collapsed stacks in DIR/server.raw, for
flamegraph.pl or speedscope) and prints its hottest stockhub frames.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import functools
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx2 as httpx
import psycopg
from sqlalchemy import event, func, select

from stockhub import feeds
from stockhub.db.migrate import upgrade
from stockhub.db.tables import stock_levels
from stockhub.jobs.worker import Worker
from stockhub.services import accounts, events, orders, stock_moves, tenancy
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


def pgbench(url: str, work: Path, rows: int, units: int, clients: int, transactions: int, runs: int = 3) -> tuple[float, list[float]]:
    """Median tps of `runs` pgbench runs of the bare conditional UPDATE over a fresh `rows`-row table."""
    script = work / f"update_{rows}.sql"
    script.write_text(
        f"\\set id random(1, {rows})\n"
        "UPDATE bench_stock SET committed = committed + 1 WHERE id = :id AND on_hand - committed >= 1;\n"
    )
    per_client = max(1, transactions // clients)
    found = []
    for _ in range(runs):
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("DROP TABLE IF EXISTS bench_stock")
            conn.execute("CREATE TABLE bench_stock (id int PRIMARY KEY, on_hand int NOT NULL, committed int NOT NULL)")
            conn.execute("INSERT INTO bench_stock SELECT g, %s, 0 FROM generate_series(1, %s) g", (units, rows))
            conn.execute("VACUUM ANALYZE bench_stock")
        ran = subprocess.run(
            [PGBENCH, "-n", "-M", "prepared", "-c", str(clients), "-j", "2", "-t", str(per_client), "-f", str(script), url],
            capture_output=True, text=True,
        )
        if ran.returncode != 0:
            raise SystemExit(f"pgbench failed:\n{ran.stderr}")
        out = ran.stdout
        found.append(float(re.search(r"tps = ([\d.]+) \(without initial connection time\)", out).group(1)))
        with psycopg.connect(url, autocommit=True) as conn:
            done = conn.execute("SELECT sum(committed) FROM bench_stock").fetchone()[0]
            if rows * units <= per_client * clients:  # the contended table: sold out exactly
                assert done == rows * units, done
            conn.execute("DROP TABLE bench_stock")
    return statistics.median(found), found


# --- the server --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, url: str, work: Path, profile: Path | None, rate_limit: str = "off"):
        self.port = free_port()
        # --rate-limit: every booking is counted against a per-token and a per-address limit set too
        # high to refuse any (the limiter's whole cost, no 429), in the database table or in memory
        limit = "off" if rate_limit == "off" else "100000000/hour"
        env = {k: v for k, v in os.environ.items() if not k.startswith("STOCKHUB_")} | {
            "STOCKHUB_DATABASE_URL": url,
            "STOCKHUB_DATA_DIR": str(work / "server-data"),
            "STOCKHUB_FTP_ENABLED": "false",
            "STOCKHUB_SECRET_KEY": SECRET,
            "STOCKHUB_RATE_LIMIT_PER_TOKEN": limit,
            "STOCKHUB_RATE_LIMIT_PER_ADDRESS": limit,
            "STOCKHUB_RATE_LIMIT_STORE": rate_limit if rate_limit != "off" else "auto",
        }
        command = [str(Path(sys.executable).parent / "stockhub"), "serve", "--host", "127.0.0.1", "--port", str(self.port), "--no-workers"]
        self.log = open(work / "server.log", "w")
        self.profile = profile
        if profile:  # py-spy as the server's parent, recording from the first request to shutdown
            py_spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or "py-spy"
            command = [py_spy, "record", "--nonblocking", "--rate", "100", "--format", "raw", "-o", str(profile / "server.raw"), "--", *command]
        self.process = subprocess.Popen(command, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(self.url + "/healthz", timeout=1, trust_env=False).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.log.flush()
                self.stop()
                raise SystemExit("the server did not start:\n" + (work / "server.log").read_text()[-3000:])
            time.sleep(0.1)
        self.pid = self._server_pid()

    def _server_pid(self) -> int:
        if not self.profile:
            return self.process.pid
        for _ in range(50):  # py-spy's child
            children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text().split()
            if children:
                return int(children[0])
            time.sleep(0.1)
        return self.process.pid

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGINT)  # py-spy writes its profile on the child's exit
            self.process.wait(60)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.log.close()


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


# --- the client --------------------------------------------------------------------------------


def machine_busy() -> tuple[int, int]:
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


async def _book_all(base_url: str, token: str, bodies: list[dict], clients: int) -> tuple[list[int], list[float], float]:
    statuses = [0] * len(bodies)
    latencies = [0.0] * len(bodies)
    next_index = iter(range(len(bodies)))
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, limits=limits, timeout=120, trust_env=False) as http:

        async def client() -> None:
            for i in next_index:
                started = time.perf_counter()
                response = await http.post("/v1/orders", json=bodies[i])
                latencies[i] = time.perf_counter() - started
                statuses[i] = response.status_code
                if response.status_code not in (201, 409):
                    print(f"    unexpected {response.status_code}: {response.text[:300]}", file=sys.stderr)

        # open every connection first so the timed run does not include connection set-up
        await asyncio.gather(*(http.get("/healthz") for _ in range(clients)))
        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        seconds = time.perf_counter() - started
    return statuses, latencies, seconds


def booking(external_id: str, store: str, sku: str) -> dict:
    return {
        "external_id": external_id,
        "channel": {"type": "marketplace", "name": "bench"},
        "currency": "GBP",
        "lines": [{"identifier": sku, "quantity": 1, "unit_price": "1.00"}],
        "fulfilment": {"type": "ship", "store_id": store},
    }


def run_http(server: Server, token: str, bodies: list[dict], clients: int, sampler: WaitSampler | None = None) -> dict:
    cpu_server, cpu_client, busy = server.cpu_seconds(), time.process_time(), machine_busy()
    if sampler:
        with sampler:
            statuses, latencies, seconds = asyncio.run(_book_all(server.url, token, bodies, clients))
    else:
        statuses, latencies, seconds = asyncio.run(_book_all(server.url, token, bodies, clients))
    busy_after = machine_busy()
    counts = collections.Counter(statuses)
    ordered = sorted(latencies)
    return {
        "accepted": counts.pop(201, 0),
        "refused": counts.pop(409, 0),
        "other": dict(counts),
        "rate": len(bodies) / seconds,
        "seconds": seconds,
        "p50": ordered[len(ordered) // 2] * 1000,
        "p99": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000,
        "server_ms": (server.cpu_seconds() - cpu_server) * 1000 / len(bodies),
        "client_ms": (time.process_time() - cpu_client) * 1000 / len(bodies),
        "busy": (busy_after[0] - busy[0]) / max(busy_after[1] - busy[1], 1),
    }


def show(title: str, result: dict, tps: float, tps_runs: list[float], sampler: WaitSampler) -> list[str]:
    ratio = result["rate"] / tps
    lines = [
        title,
        f"    accepted {result['accepted']:,}  refused (409) {result['refused']:,}  other {sum(result['other'].values())} {result['other'] or ''}",
        f"    stockhub {result['rate']:,.0f} bookings/s ({result['seconds']:.2f} s)  | pgbench {tps:,.0f} tps "
        f"(runs {', '.join(f'{t:,.0f}' for t in tps_runs)})  | ratio {ratio:.3f}x (aim >= 0.3x: {'met' if ratio >= 0.3 else 'NOT met'})",
        f"    latency p50 {result['p50']:.1f} ms  p99 {result['p99']:.1f} ms (aim p99 < 100 ms: {'met' if result['p99'] < 100 else 'NOT met'})",
        f"    CPU per booking: server process {result['server_ms']:.2f} ms, this client {result['client_ms']:.2f} ms; "
        f"machine-wide busy {100 * result['busy']:.0f}% of {os.cpu_count()} cores",
    ]
    return lines + sampler.report()


STAGES = [  # (module, function, label): timed in-process around the real functions
    (accounts, "principal_for_token", "token lookup (a read transaction)"),
    (orders, "_by_external_id", "idempotency lookup (a read transaction)"),
    (orders, "_store_numbers", "store ids of the lines (a read transaction)"),
    (feeds, "canonical_identifier", "canonical_identifier of the line (polars, one value)"),
    (orders, "_book", "the write transaction's statements (_book), of which:"),
    (stock_moves, "lock", "  share_stores + lock_levels"),
    (events, "emit_level_changes", "  inventory.updated (store stream, event, changes, fan-out)"),
    (orders, "_announce", "  order.created (re-read + render, order stream, event, fan-out)"),
    (orders, "book", "orders.book in all (+ render and COMMIT)"),
]


def breakdown(url: str, work: Path, token: str, bodies: list[dict]) -> list[str]:
    """Book in-process, one at a time, with a timer around each stage and the statements counted."""
    hub = Hub.from_settings(Settings(data_dir=work / "data", database_url=url, secret_key=SECRET))
    statements = [0]
    event.listen(hub.engine, "before_cursor_execute", lambda *_: statements.__setitem__(0, statements[0] + 1))
    cpu, wall = collections.Counter(), collections.Counter()
    originals = []

    def timed(module, name: str, label: str):
        original = getattr(module, name, None)
        if original is None:  # a stage the code no longer has (renamed since): not timed
            print(f"    (d): {module.__name__}.{name} no longer exists; its stage is not timed", file=sys.stderr)
            return
        originals.append((module, name, original))

        @functools.wraps(original)
        def wrapper(*args, **kwargs):
            c, w = time.process_time(), time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                cpu[label] += time.process_time() - c
                wall[label] += time.perf_counter() - w

        setattr(module, name, wrapper)

    def book(body: dict) -> None:
        principal = accounts.principal_for_token(hub, token)
        orders.book(hub, principal.organization, orders.Booking.model_validate(body))

    for body in bodies[:20]:  # the pool and statement caches
        book(body)
    for module, name, label in STAGES:
        timed(module, name, label)
    try:
        statements[0] = 0
        started, cpu_started = time.perf_counter(), time.process_time()
        for body in bodies[20:]:
            book(body)
        n = len(bodies) - 20
        total_wall, total_cpu = (time.perf_counter() - started) * 1000 / n, (time.process_time() - cpu_started) * 1000 / n
    finally:
        for module, name, original in originals:
            setattr(module, name, original)
        hub.engine.dispose()
    lines = [f"(d) in-process, one at a time: {total_wall:.1f} ms wall, {total_cpu:.1f} ms CPU, {statements[0] / n:.0f} SQL statements per booking "
             "(+ a BEGIN and COMMIT per transaction, and a pool ping per checkout)"]
    for _, _, label in STAGES:
        lines.append(f"    {cpu[label] * 1000 / n:6.2f} ms CPU {wall[label] * 1000 / n:6.2f} ms wall  {label}")
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bookings", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=50, help="concurrent connections (pgbench needs as many of the cluster's max_connections 100)")
    parser.add_argument("--products", type=int, default=100_000)
    parser.add_argument("--sequential", type=int, default=200, help="bookings for (c) and (d)")
    parser.add_argument("--profile", type=Path, default=None, help="run the server under py-spy; collapsed stacks go to DIR/server.raw")
    parser.add_argument(
        "--rate-limit", choices=["off", "database", "memory"], default="off",
        help="count every request against rate limits too high to refuse, in the shared table or in memory (the limiter's cost)",
    )
    args = parser.parse_args()
    if args.bookings < 2 * HOT_SKUS * HOT_UNITS:
        parser.error(f"--bookings must be at least {2 * HOT_SKUS * HOT_UNITS} so the hot SKUs sell out")

    name = f"stockhub_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    work = Path(tempfile.mkdtemp(prefix="stockhub-bench-orders-"))
    server = None
    failed = []
    try:
        # the tenant and its stock, through the services in-process
        hub = Hub.from_settings(Settings(data_dir=work / "data", database_url=url, secret_key=SECRET))
        upgrade(hub.engine)
        org = tenancy.create_organization(hub, "Bench").id
        brand = tenancy.create_brand_for(hub, org, "Bench").id
        hot = tenancy.create_store_for(hub, brand, {"name": "Hot", "country": "GB"}).id
        wide = tenancy.create_store_for(hub, brand, {"name": "Wide", "country": "GB"}).id
        token = tenancy.create_api_token(hub, org, "bench").secret
        hot_skus = [ean13(n, "50") for n in range(HOT_SKUS)]
        wide_skus = [ean13(n, "51") for n in range(args.products)]
        started = time.perf_counter()
        load_stock(hub, hot, work / "hot.csv", hot_skus, HOT_UNITS)
        load_stock(hub, wide, work / "wide.csv", wide_skus, PLENTY)
        setup_s = time.perf_counter() - started
        hub.engine.dispose()  # pgbench takes CLIENTS connections of the cluster's 100

        # the baselines, before the server holds connections
        tps_hot, tps_hot_runs = pgbench(url, work, HOT_SKUS, HOT_UNITS, args.clients, args.bookings)
        tps_wide, tps_wide_runs = pgbench(url, work, args.products, PLENTY, args.clients, args.bookings)

        if args.profile:
            args.profile.mkdir(parents=True, exist_ok=True)
        server = Server(url, work, args.profile, args.rate_limit)
        rng = random.Random(7)
        warm = [booking(f"warm-{n}", wide, rng.choice(wide_skus)) for n in range(200)]
        run_http(server, token, warm, args.clients)  # the server's pool, caches and statement preparation

        hot_bodies = [booking(f"hot-{n}", hot, hot_skus[n % HOT_SKUS]) for n in range(args.bookings)]
        hot_waits = WaitSampler(url, name)
        hot_result = run_http(server, token, hot_bodies, args.clients, hot_waits)
        wide_bodies = [booking(f"wide-{n}", wide, rng.choice(wide_skus)) for n in range(args.bookings)]
        wide_waits = WaitSampler(url, name)
        wide_result = run_http(server, token, wide_bodies, args.clients, wide_waits)
        one_bodies = [booking(f"one-{n}", wide, rng.choice(wide_skus)) for n in range(args.sequential)]
        one_result = run_http(server, token, one_bodies, 1)
        server.stop()
        server = None
        parts = breakdown(url, work, token, [booking(f"parts-{n}", wide, rng.choice(wide_skus)) for n in range(args.sequential)])

        hub = Hub.from_settings(Settings(data_dir=work / "data", database_url=url, secret_key=SECRET))
        with hub.engine.connect() as conn:
            committed = conn.execute(select(func.sum(stock_levels.c.committed)).where(stock_levels.c.identifier.in_(["0" + s for s in hot_skus]))).scalar_one()
        drift = reconcile(hub)
        hub.engine.dispose()

        print(f"orders benchmark on PostgreSQL {psycopg.connect(url).info.server_version}, {os.cpu_count()} cores; "
              f"{args.bookings:,} bookings from {args.clients} concurrent connections; set-up {setup_s:.1f} s")
        for line in show(f"(a) contended: {HOT_SKUS} SKUs x {HOT_UNITS} units at one store", hot_result, tps_hot, tps_hot_runs, hot_waits):
            print(line)
        print(f"    committed units of the 10 SKUs in the database: {committed} (must be {HOT_SKUS * HOT_UNITS})")
        for line in show(f"(b) uncontended: random SKUs over {args.products:,} products", wide_result, tps_wide, tps_wide_runs, wide_waits):
            print(line)
        print(f"(c) one client, one booking at a time: {one_result['rate']:,.1f} bookings/s, p50 {one_result['p50']:.1f} ms, "
              f"p99 {one_result['p99']:.1f} ms, server CPU {one_result['server_ms']:.2f} ms per booking")
        for line in parts:
            print(line)
        print(f"ledger reconciles with the levels: {'yes' if drift.is_empty() else f'NO ({drift.height} rows differ)'}")
        if args.profile:
            print(f"py-spy profile of the server (all runs; threads waiting in psycopg count as on-CPU): {args.profile / 'server.raw'}")
            for line in profile_summary(args.profile / "server.raw"):
                print(line)

        if hot_result["accepted"] != HOT_SKUS * HOT_UNITS or committed != HOT_SKUS * HOT_UNITS:
            failed.append(f"contended run accepted {hot_result['accepted']} bookings, committed {committed} units: must be exactly {HOT_SKUS * HOT_UNITS}")
        for label, result in (("contended", hot_result), ("uncontended", wide_result), ("sequential", one_result)):
            if result["other"]:
                failed.append(f"{label} run answered {result['other']}")
        if wide_result["accepted"] != args.bookings or one_result["accepted"] != args.sequential:
            failed.append(f"uncontended runs accepted {wide_result['accepted']} of {args.bookings}, {one_result['accepted']} of {args.sequential}")
        if not drift.is_empty():
            failed.append("the ledger does not replay to the levels")
    finally:
        if server is not None:
            server.stop()
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        shutil.rmtree(work, ignore_errors=True)
    if failed:
        raise SystemExit("FAILED: " + "; ".join(failed))


if __name__ == "__main__":
    main()
