"""Webhook delivery benchmark, on PostgreSQL: stockhub's delivery workers beside a raw
`FOR UPDATE SKIP LOCKED` dequeue of the same rows, each run's pair in the same run; every
figure the median of 3 runs (`--quick`: one).

    .venv/bin/python bench/webhooks/run.py [--quick] [--events 10000] [--receivers 20] [--workers 2] [--uploads 50] [--processes]

(a) EVENTS events over RECEIVERS stores, each store's subscription pointing at its own loopback
    receiver (served by a separate process, HTTP/1.1 keep-alive, answering 204). Deliveries/s of
    WORKERS stockhub workers beside the rate at which WORKERS × webhook_concurrency connections
    dequeue the same rows one per transaction with SKIP LOCKED (the floor of any DB-backed queue).
    Each run prints the CPU a delivery cost the workers, PostgreSQL and the receivers (with
    `--processes` the workers' figure includes their processes' start-up: ~2 s of imports each).
(b) UPLOADS small HTTP-style uploads processed by a running worker: the time from the upload's
    events being written (their `occurred_at`, taken before the apply; so conservative) to the
    receiver having the upload.processed message, p50 and p99.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import loadavg, postgres_cpu, process_tree_cpu  # noqa: E402

import psycopg
from sqlalchemy import func, select

from stockhub import ids
from stockhub.db.engine import transaction
from stockhub.db.migrate import upgrade
from stockhub.db.tables import events, webhook_attempts, webhook_deliveries
from stockhub.jobs.worker import Worker
from stockhub.services import events as outbox
from stockhub.services import tenancy, webhooks
from stockhub.services.context import Hub
from stockhub.services.uploads import import_file
from stockhub.settings import Settings

ADMIN_URL = os.environ.get("STOCKHUB_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")

# A minimal keep-alive HTTP/1.1 receiver on N ports, in its own process so it does not share the
# workers' interpreter; it prints "<webhook-id> <arrival unix time>" per message when told to stop.
RECEIVER = r'''
import asyncio, sys, time
seen = []
async def handle(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length, message = 0, ""
            for line in head.split(b"\r\n"):
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length": length = int(value)
                elif name == b"webhook-id": message = value.strip().decode()
            await reader.readexactly(length)
            seen.append((message, time.time()))
            writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()
async def main(count):
    servers = [await asyncio.start_server(handle, "127.0.0.1", 0, backlog=256) for _ in range(count)]
    print(" ".join(str(s.sockets[0].getsockname()[1]) for s in servers), flush=True)
    while (await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)).strip() == "report":
        for message, at in seen: print(message, at)
        print("END", flush=True)
asyncio.run(main(int(sys.argv[1])))
'''


class Receivers:
    def __init__(self, count: int):
        self.process = subprocess.Popen([sys.executable, "-c", RECEIVER, str(count)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.ports = [int(p) for p in self.process.stdout.readline().split()]

    def arrivals(self) -> dict[str, float]:
        """Every message received so far: its webhook id and when it first arrived."""
        self.process.stdin.write("report\n")
        self.process.stdin.flush()
        found = {}
        for line in self.process.stdout:
            if line.strip() == "END":
                break
            message, at = line.split()
            found.setdefault(message, float(at))
        return found


def raw_dequeue(url: str, connections: int, after: int) -> tuple[float, int]:
    """The baseline: the same rows (deliveries past id `after`) dequeued one per transaction by `connections` connections."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_queue")
        conn.execute("CREATE TABLE bench_queue AS SELECT id, next_attempt_at FROM webhook_deliveries WHERE id > %s", (after,))
        conn.execute("CREATE INDEX ON bench_queue (next_attempt_at)")
        rows = conn.execute("SELECT count(*) FROM bench_queue").fetchone()[0]
    done = [0] * connections

    def drain(slot: int) -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            while conn.execute(
                "DELETE FROM bench_queue WHERE id = (SELECT id FROM bench_queue WHERE next_attempt_at <= now() "
                "ORDER BY next_attempt_at LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING id"
            ).fetchone():
                done[slot] += 1

    started = time.perf_counter()
    threads = [threading.Thread(target=drain, args=(i,)) for i in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    assert sum(done) == rows, (sum(done), rows)
    return seconds, rows


def last_delivery(hub: Hub) -> int:
    with hub.engine.connect() as conn:
        return conn.execute(select(func.coalesce(func.max(webhook_deliveries.c.id), 0))).scalar_one()


def last_event(hub: Hub) -> int:
    with hub.engine.connect() as conn:
        return conn.execute(select(func.coalesce(func.max(events.c.id), 0))).scalar_one()


def delivered(hub: Hub) -> int:
    with hub.engine.connect() as conn:
        return conn.execute(select(func.count()).where(webhook_deliveries.c.status == "succeeded")).scalar_one()


def run_workers(settings: Settings, count: int, until) -> float:
    hubs = [Hub.from_settings(settings) for _ in range(count)]
    workers = [Worker(h, name=f"bench-{i}") for i, h in enumerate(hubs)]
    started = time.perf_counter()
    threads = [w.start() for w in workers]
    while not until():
        time.sleep(0.05)
    seconds = time.perf_counter() - started
    for worker, thread in zip(workers, threads):
        worker.stop()
        thread.join(30)
    for h in hubs:
        h.engine.dispose()
    return seconds


def run_worker_processes(settings: Settings, count: int, until) -> float:
    """The scaled-out shape: `stockhub worker` processes, each its own interpreter."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STOCKHUB_")} | {
        "STOCKHUB_DATA_DIR": str(settings.data_dir),
        "STOCKHUB_DATABASE_URL": settings.database_url,
        "STOCKHUB_SECRET_KEY": settings.secret_key,
        "STOCKHUB_WEBHOOK_ALLOW_LOOPBACK": "true",
    }
    stockhub = str(Path(sys.executable).parent / "stockhub")
    started = time.perf_counter()
    processes = [subprocess.Popen([stockhub, "worker"], env=env, stderr=subprocess.DEVNULL) for _ in range(count)]
    while not until():
        time.sleep(0.05)
    seconds = time.perf_counter() - started
    for process in processes:
        process.terminate()
        process.wait(30)
    return seconds


def deliveries_run(hub: Hub, url: str, settings: Settings, args, organization: int, stores: list, per_store: int, run: int,
                   receivers: Receivers) -> dict:
    """(a) once: events written for each store, numbered (their deliveries made), then the raw
    dequeue of the same deliveries and stockhub's workers delivering them."""
    before = last_delivery(hub)
    emit_started = time.perf_counter()
    for store in stores:
        number = ids.decode("store", store.id)
        with transaction(hub.engine) as conn:
            for n in range(per_store):
                outbox.emit(conn, "order.created", organization, number, {"order_id": f"ord_{run}_{n}"})
    emit_seconds = time.perf_counter() - emit_started
    total = per_store * len(stores)
    while outbox.sequence_events(hub.engine):  # deliveries are made by the sequencer, after commit
        pass
    floor_load = loadavg()
    floor_s, floor_rows = raw_dequeue(url, args.workers * settings.webhook_concurrency, before)
    load = loadavg()
    done_before = delivered(hub)
    cpu = _cpu(receivers)
    (run_worker_processes if args.processes else run_workers)(settings, args.workers, lambda: delivered(hub) >= done_before + total)
    cpu = {name: (after - cpu[name]) * 1000 / total for name, after in _cpu(receivers).items()}
    with hub.engine.connect() as conn:  # first attempt to last delivery: worker start-up is not counted
        first, last = conn.execute(
            select(func.min(webhook_attempts.c.attempted_at), func.max(webhook_deliveries.c.finished_at))
            .select_from(webhook_deliveries.join(webhook_attempts, webhook_attempts.c.delivery_id == webhook_deliveries.c.id))
            .where(webhook_deliveries.c.id > before)
        ).one()
    return {"events": total, "emit_s": emit_seconds, "rate": total / (last - first).total_seconds(), "floor": floor_rows / floor_s,
            "load": load, "floor_load": floor_load, "cpu": cpu}


def _cpu(receivers: Receivers) -> dict[str, float]:
    """CPU seconds so far: the workers' (this process, whose threads they are, and its polling;
    with `--processes`, its ended children: the worker processes), PostgreSQL's, the receivers'."""
    times = os.times()
    own = time.process_time() + times.children_user + times.children_system
    return {"workers": own, "PostgreSQL": postgres_cpu(), "receivers": process_tree_cpu(receivers.process.pid)}


def latency_run(hub: Hub, work: Path, store, uploads: int, receivers: Receivers, delivered_by_then: int, run: int) -> dict:
    """(b) once: uploads to one store, one at a time, processed by a running worker; from each
    upload's events being written to the receiver having its upload.processed message."""
    before = last_event(hub)
    worker = Worker(hub, name=f"bench-latency-{run}")
    thread = worker.start()
    for n in range(uploads):
        path = work / f"stock-{run}-{n}.csv"
        path.write_text("barcode,price,quantity\n" + f"9780141383743,6.99,{n + run}\n036000291452,2.50,{(n + run) % 3}\n")
        import_file(hub, store.id, path)
        hub.work_arrived.set()
        time.sleep(0.05)  # uploads arrive one at a time, as from a POS
    while delivered(hub) < delivered_by_then + uploads:
        time.sleep(0.05)
    worker.stop()
    thread.join(30)
    with hub.engine.connect() as conn:
        occurred = {
            ids.encode("event", row.id): row.occurred_at.timestamp()
            for row in conn.execute(select(events.c.id, events.c.occurred_at).where(events.c.type == "upload.processed", events.c.id > before))
        }
    arrivals = receivers.arrivals()
    latencies = sorted(arrivals[e] - at for e, at in occurred.items())
    return {"p50": statistics.median(latencies), "p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--receivers", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--uploads", type=int, default=50)
    parser.add_argument("--processes", action="store_true", help="workers as `stockhub worker` processes, not threads of this one")
    parser.add_argument("--quick", action="store_true", help="2,000 events, 20 uploads")
    args = parser.parse_args()
    if args.quick:
        args.events, args.uploads = min(args.events, 2000), min(args.uploads, 20)

    name = f"stockhub_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    work = Path(tempfile.mkdtemp(prefix="stockhub-bench-"))
    receivers = Receivers(args.receivers + 1)
    try:
        settings = Settings(data_dir=work / "data", database_url=url, secret_key="bench", webhook_allow_loopback=True, worker_poll_seconds=0.5)
        hub = Hub.from_settings(settings)
        upgrade(hub.engine)
        org = tenancy.create_organization(hub, "Bench").id
        brand = tenancy.create_brand_for(hub, org, "Bench").id
        organization = ids.decode("organization", org)
        stores = []
        for i in range(args.receivers + 1):
            store = tenancy.create_store_for(hub, brand, {"name": f"Bench {i}", "country": "GB"})
            fields = webhooks.SubscriptionFields(
                url=f"http://127.0.0.1:{receivers.ports[i]}/hooks", event_types=["order.created", "upload.processed"], store_ids=[store.id]
            )
            webhooks.create_subscription(hub, organization, fields)
            stores.append(store)

        runs = 1 if args.quick else 3
        per_store = args.events // args.receivers
        total = per_store * args.receivers
        throughput, latency = [], []
        for r in range(runs):
            throughput.append(deliveries_run(hub, url, settings, args, organization, stores[: args.receivers], per_store, r, receivers))
            latency.append(latency_run(hub, work, stores[-1], args.uploads, receivers, total * (r + 1) + args.uploads * r, r))
        hub.engine.dispose()

        print(f"webhook benchmark on PostgreSQL, {os.cpu_count()} cores, {datetime.now():%Y-%m-%d}, {'one run' if runs == 1 else f'median of {runs} runs'}")
        for run in throughput:
            print(f"  run: {run['events']:,} events written in {run['emit_s']:.2f} s; delivered at {run['rate']:,.0f}/s, raw dequeue {run['floor']:,.0f}/s: "
                  f"{run['rate'] / run['floor']:.2f}x  [loadavg: stockhub {run['load']}; dequeue {run['floor_load']}]; CPU a delivery: "
                  + ", ".join(f"{name} {ms:.2f} ms" for name, ms in run["cpu"].items()))
        rate, floor = statistics.median(r["rate"] for r in throughput), statistics.median(r["floor"] for r in throughput)
        ratio = statistics.median(r["rate"] / r["floor"] for r in throughput)
        print(
            f"(a) {args.workers} worker {'processes' if args.processes else 'threads'} x {settings.webhook_concurrency} senders, {total:,} deliveries to "
            f"{args.receivers} receivers a run: {rate:,.0f}/s  | raw SKIP LOCKED dequeue, {args.workers * settings.webhook_concurrency} connections: "
            f"{floor:,.0f}/s  | ratio {ratio:.2f}x, the median of the runs' ratios (aim >= 0.3x: {'met' if ratio >= 0.3 else 'NOT met'})"
        )
        p50 = statistics.median(run["p50"] for run in latency)
        p99 = statistics.median(run["p99"] for run in latency)
        runs_p99 = ", ".join(f"{run['p99'] * 1000:.0f}" for run in latency)
        print(
            f"(b) upload committed -> delivered, {args.uploads} uploads a run: p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms "
            f"(runs' p99: {runs_p99} ms; aim p99 < 1 s: {'met' if p99 < 1 else 'NOT met'})"
        )
    finally:
        if receivers.process.poll() is None:
            receivers.process.kill()
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
