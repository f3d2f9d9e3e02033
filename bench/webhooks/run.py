"""Webhook delivery benchmark, on PostgreSQL: stockhub's delivery workers beside a raw
`FOR UPDATE SKIP LOCKED` dequeue of the same rows, in one run.

    .venv/bin/python bench/webhooks/run.py [--events 10000] [--receivers 20] [--workers 2] [--uploads 50] [--processes]

(a) EVENTS events over RECEIVERS stores, each store's subscription pointing at its own loopback
    receiver (served by a separate process, HTTP/1.1 keep-alive, answering 204). Deliveries/s of
    WORKERS stockhub workers beside the rate at which WORKERS × webhook_concurrency connections
    dequeue the same rows one per transaction with SKIP LOCKED (the floor of any DB-backed queue).
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
from common import loadavg  # noqa: E402

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
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    for message, at in seen: print(message, at)
    print("END", flush=True)
asyncio.run(main(int(sys.argv[1])))
'''


class Receivers:
    def __init__(self, count: int):
        self.process = subprocess.Popen([sys.executable, "-c", RECEIVER, str(count)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.ports = [int(p) for p in self.process.stdout.readline().split()]

    def arrivals(self) -> dict[str, float]:
        self.process.stdin.write("\n")
        self.process.stdin.flush()
        found = {}
        for line in self.process.stdout:
            if line.strip() == "END":
                break
            message, at = line.split()
            found.setdefault(message, float(at))
        self.process.wait(10)
        return found


def raw_dequeue(url: str, connections: int) -> tuple[float, int]:
    """The baseline: the same rows dequeued one per transaction by `connections` connections."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_queue")
        conn.execute("CREATE TABLE bench_queue AS SELECT id, next_attempt_at FROM webhook_deliveries")
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

        # (a) throughput
        per_store = args.events // args.receivers
        emit_started = time.perf_counter()
        for store in stores[: args.receivers]:
            number = ids.decode("store", store.id)
            with transaction(hub.engine) as conn:
                for n in range(per_store):
                    outbox.emit(conn, "order.created", organization, number, {"order_id": f"ord_{n}"})
        emit_seconds = time.perf_counter() - emit_started
        total = per_store * args.receivers
        while outbox.sequence_events(hub.engine):  # deliveries are made by the sequencer, after commit
            pass
        baseline_load = loadavg()
        baseline_s, baseline_rows = raw_dequeue(url, args.workers * settings.webhook_concurrency)
        run = run_worker_processes if args.processes else run_workers
        run_load = loadavg()
        run(settings, args.workers, lambda: delivered(hub) >= total)
        with hub.engine.connect() as conn:  # first attempt to last delivery: worker start-up is not counted
            first, last = conn.execute(
                select(func.min(webhook_attempts.c.attempted_at), func.max(webhook_deliveries.c.finished_at)).select_from(
                    webhook_deliveries.join(webhook_attempts, webhook_attempts.c.delivery_id == webhook_deliveries.c.id)
                )
            ).one()
        deliver_s = (last - first).total_seconds()

        # (b) latency: uploads to the last store, processed by one running worker
        latency_store = stores[-1]
        worker = Worker(hub, name="bench-latency")
        thread = worker.start()
        for n in range(args.uploads):
            path = work / f"stock-{n}.csv"
            path.write_text("barcode,price,quantity\n" + f"9780141383743,6.99,{n}\n036000291452,2.50,{n % 3}\n")
            import_file(hub, latency_store.id, path)
            hub.work_arrived.set()
            time.sleep(0.05)  # uploads arrive one at a time, as from a POS
        while delivered(hub) < total + args.uploads:
            time.sleep(0.05)
        worker.stop()
        thread.join(30)
        with hub.engine.connect() as conn:
            occurred = {
                ids.encode("event", row.id): row.occurred_at.timestamp()
                for row in conn.execute(select(events.c.id, events.c.occurred_at).where(events.c.type == "upload.processed"))
            }
        arrivals = receivers.arrivals()
        latencies = sorted(arrivals[e] - at for e, at in occurred.items())
        hub.engine.dispose()

        rate, floor = total / deliver_s, baseline_rows / baseline_s
        print(f"webhook benchmark on PostgreSQL, {os.cpu_count()} cores, {datetime.now():%Y-%m-%d}")
        print(f"writing {total:,} events (emit, one transaction per store): {emit_seconds:.2f} s ({total / emit_seconds:,.0f} events/s)")
        print(
            f"(a) {args.workers} worker {'processes' if args.processes else 'threads'} x {settings.webhook_concurrency} senders: {total:,} deliveries to {args.receivers} receivers in {deliver_s:.2f} s = {rate:,.0f}/s"
            f"  | raw SKIP LOCKED dequeue, {args.workers * settings.webhook_concurrency} connections: {floor:,.0f}/s  | ratio {rate / floor:.2f}x (aim >= 0.3x)"
            f"  [loadavg: stockhub {run_load}; dequeue {baseline_load}]"
        )
        print(
            f"(b) upload committed -> delivered, {len(latencies)} uploads: p50 {statistics.median(latencies) * 1000:.0f} ms, "
            f"p99 {latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000:.0f} ms (aim p99 < 1 s)"
        )
    finally:
        if receivers.process.poll() is None:
            receivers.process.kill()
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
