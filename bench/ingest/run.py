"""Ingest benchmark: stockhub's ingest beside a raw load of the same file, in one run.

    .venv/bin/python bench/ingest/run.py [--quick] [--rows 200000] [--parse-rows 1000000] [--sqlite]

Floors, like for like (PostgreSQL): (a) a first ingest beside a keyed COPY plus ledger rows (the
typed rows COPied into a table keyed by (store, identifier), and one ledger row per product
inserted from it, in one transaction); (b) a 5% re-ingest beside a keyed COPY of the whole
file (the aim: cost in proportion to what changed); parse + validate beside polars' typed
`read_csv` with a vectorised GTIN check digit test. Each figure is the median of 3 runs (each
first ingest on its own new store; the parse, under a second, of 7), printed with the machine's
load average.

Prints (a) a first full ingest of a ROWS-row feed and (b) a re-ingest with 5% of rows changed,
each as a ratio to a bare load of the same file (PostgreSQL: `COPY` into a bare table; SQLite,
`--sqlite`: one executemany into a bare table); the rows each ingest wrote (PostgreSQL: rows
whose xmin is the ingest's transaction; SQLite: rows updated at or after its start), and the
parse-and-validate time of a PARSE_ROWS-row file beside a bare `polars.read_csv` of it. On
SQLite it also prints the longest another writer of the same process waited for the write
lock during each ingest (a probe taking `BEGIN IMMEDIATE` every 50 ms, as bookings do). It also times the
parse in the sandbox (the child process with bounded memory and time that a worker reads every
upload in).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import loadavg  # noqa: E402

import polars as pl
import psycopg
from sqlalchemy import select, text

from stockhub import feeds, ids
from stockhub.db.migrate import upgrade
from stockhub.db.tables import uploads
from stockhub.feeds import sandbox
from stockhub.feeds.sandbox import read_isolated
from stockhub.jobs.worker import Worker
from stockhub.services import tenancy
from stockhub.services.context import Hub
from stockhub.services.uploads import import_file
from stockhub.settings import Settings

ADMIN_URL = os.environ.get("STOCKHUB_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def gtins(count: int, seed: int) -> list[str]:
    """Distinct valid EAN-13s (the check digit computed the GS1 way)."""
    rng = random.Random(seed)
    bodies = rng.sample(range(10**10, 10**11), count)
    out = []
    for body in bodies:
        digits = f"5{body:011d}"
        total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(digits))
        out.append(digits + str((10 - total % 10) % 10))
    return out


def write_feed(path: Path, barcodes: list[str], seed: int) -> pl.DataFrame:
    rng = random.Random(seed)
    frame = pl.DataFrame(
        {
            "barcode": barcodes,
            "price": [f"{rng.randint(100, 9999) / 100:.2f}" for _ in barcodes],
            "quantity": [str(rng.randint(0, 40)) for _ in barcodes],
            "currency": ["GBP"] * len(barcodes),
        }
    )
    frame.write_csv(path)
    return frame


def timed(action) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def sandbox_cpu_per_file(path: Path, files: int = 20) -> float:
    """CPU seconds per file of a burst of small files read in the sandbox: this process's, the
    reader process's and its children's (reaped by it, so in its /proc stat)."""
    reader = sandbox.reader_process_pid()

    def spent() -> float:
        fields = Path(f"/proc/{reader}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime
        mine = os.times()
        return ticks / os.sysconf("SC_CLK_TCK") + mine.user + mine.system

    before = spent()
    for _ in range(files):
        read_isolated("stock", path, {"default_currency": "GBP"})
    return (spent() - before) / files


def fresh_interpreter_cpu() -> float:
    """CPU seconds of a new interpreter importing the readers: what each file cost when the
    sandbox started one per file."""
    before = os.times()
    subprocess.run([sys.executable, "-c", "import stockhub.feeds.sandbox, stockhub.feeds.documents"], check=True)
    after = os.times()
    return after.children_user + after.children_system - before.children_user - before.children_system


def raw_copy(url: str, path: Path) -> float:
    """The baseline: COPY the file as it is into a bare, unindexed table."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_raw")
        conn.execute("CREATE TABLE bench_raw (barcode text, price text, quantity text, currency text)")

        def copy():
            with conn.transaction(), conn.cursor() as cur, cur.copy("COPY bench_raw FROM STDIN (FORMAT CSV, HEADER)") as cp:
                with open(path, "rb") as file:
                    while chunk := file.read(1 << 20):
                        cp.write(chunk)

        seconds = timed(copy)
        conn.execute("DROP TABLE bench_raw")
        return seconds


def keyed_copy(url: str, path: Path, ledger: bool) -> float:
    """The like-for-like floor: the file's typed rows COPied into a table keyed like stock_levels
    and, with `ledger`, one ledger row per product inserted from it, in one transaction."""
    typed = path.with_suffix(".typed.csv")
    if not typed.exists():  # typing the file is not timed: the floor is the database's part
        frame = pl.read_csv(path, schema_overrides={"barcode": pl.String, "price": pl.String, "quantity": pl.Int64})
        frame.select(
            pl.lit(1).alias("store_id"), pl.col("barcode").str.zfill(14).alias("identifier"), pl.col("quantity").alias("on_hand"),
            (pl.col("price").cast(pl.Float64) * 100).round().cast(pl.Int64).alias("price_minor"), pl.col("currency"),
        ).write_csv(typed)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS floor_levels, floor_ledger")
        conn.execute("CREATE TABLE floor_levels (store_id bigint, identifier varchar(40), on_hand int NOT NULL, price_minor bigint NOT NULL, "
                     "currency varchar(3) NOT NULL, PRIMARY KEY (store_id, identifier))")
        conn.execute("CREATE TABLE floor_ledger (id bigserial PRIMARY KEY, store_id bigint NOT NULL, identifier varchar(40) NOT NULL, "
                     "on_hand_before int NOT NULL, on_hand_after int NOT NULL, created_at timestamptz NOT NULL)")

        def copy():
            with conn.transaction(), conn.cursor() as cur:
                with cur.copy("COPY floor_levels FROM STDIN (FORMAT CSV, HEADER)") as cp, open(typed, "rb") as file:
                    while chunk := file.read(1 << 20):
                        cp.write(chunk)
                if ledger:
                    cur.execute("INSERT INTO floor_ledger (store_id, identifier, on_hand_before, on_hand_after, created_at) "
                                "SELECT store_id, identifier, 0, on_hand, now() FROM floor_levels")

        seconds = timed(copy)
        conn.execute("DROP TABLE floor_levels, floor_ledger")
        return seconds


def typed_read_with_gtin_check(data: bytes) -> pl.DataFrame:
    """The parse floor: polars' typed read, and a vectorised GS1 check digit test of every barcode."""
    frame = pl.read_csv(data, schema={"barcode": pl.String, "price": pl.Float64, "quantity": pl.Int64, "currency": pl.String})
    number = pl.col("barcode").cast(pl.Int64, strict=False)
    digit = lambda k: (number // 10**k) % 10  # noqa: E731 - k-th digit from the right
    total = sum(digit(k) * (3 if k % 2 else 1) for k in range(1, 14))
    return frame.with_columns(
        valid=pl.col("barcode").str.contains(r"^[0-9]{8,14}$") & (((10 - total % 10) % 10) == digit(0))
    )


def raw_executemany(database: Path, path: Path) -> float:
    """The SQLite baseline: the file's rows into a bare table with one executemany."""
    rows = pl.read_csv(path, infer_schema=False).rows()
    conn = sqlite3.connect(database, isolation_level=None)
    conn.execute("CREATE TABLE bench_raw (barcode text, price text, quantity text, currency text)")

    def load():
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO bench_raw VALUES (?, ?, ?, ?)", rows)
        conn.execute("COMMIT")

    seconds = timed(load)
    conn.execute("DROP TABLE bench_raw")
    conn.close()
    return seconds


class WriterProbe:
    """SQLite: another writer in the same process (as a booking in `stockhub serve`) taking the
    write lock every 50 ms; the longest it waited."""

    def __init__(self, hub: Hub):
        self.hub, self.longest, self._stop = hub, 0.0, threading.Event()

    def __enter__(self):
        self.thread = threading.Thread(target=self._run)
        self.thread.start()
        return self

    def _run(self):
        while not self._stop.wait(0.05):
            started = time.perf_counter()
            with self.hub.engine.begin():  # BEGIN IMMEDIATE
                self.longest = max(self.longest, time.perf_counter() - started)

    def __exit__(self, *exc):
        self._stop.set()
        self.thread.join()


def ingest(hub: Hub, store_id: str, path: Path) -> tuple[float, int, int]:
    """Time stockhub's ingest of a file already stored as an upload: claim, parse, validate, apply, commit."""
    recorded = import_file(hub, store_id, path)
    worker = Worker(hub, name="bench")
    seconds = timed(worker.run_once)
    number = ids.decode("upload", recorded["upload_id"])
    with hub.engine.connect() as conn:
        row = conn.execute(select(uploads.c.status, uploads.c.changed_count).where(uploads.c.id == number)).one()
        assert row.status == "applied", row
        if hub.engine.dialect.name == "sqlite":
            written = conn.execute(
                text("SELECT count(*) FROM stock_levels WHERE updated_at >= (SELECT started_at FROM uploads WHERE id = :id)"), {"id": number}
            ).scalar_one()
        else:  # rows the ingest transaction wrote carry its transaction id as xmin, like the upload row it finished
            written = conn.execute(
                text("SELECT count(*) FROM stock_levels WHERE xmin = (SELECT xmin FROM uploads WHERE id = :id)"), {"id": number}
            ).scalar_one()
    return seconds, row.changed_count, written


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--parse-rows", type=int, default=1_000_000)
    parser.add_argument("--sqlite", action="store_true", help="on a SQLite file instead of PostgreSQL")
    parser.add_argument("--quick", action="store_true", help="one run of each, 50,000 rows, a 200,000-row parse")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.parse_rows = min(args.rows, 50_000), min(args.parse_rows, 200_000)

    name = f"stockhub_bench_{uuid.uuid4().hex[:8]}"
    work = Path(tempfile.mkdtemp(prefix="stockhub-bench-"))
    database = work / "bench.sqlite3"
    if args.sqlite:
        url = f"sqlite:///{database}"
    else:
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        url = ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    baseline = (lambda path: raw_executemany(database, path)) if args.sqlite else (lambda path: raw_copy(url, path))
    try:
        hub = Hub.from_settings(Settings(data_dir=work / "data", database_url=url, secret_key="bench"))
        upgrade(hub.engine)
        probe = (lambda: WriterProbe(hub)) if args.sqlite else contextlib.nullcontext
        org = tenancy.create_organization(hub, "Bench").id
        brand = tenancy.create_brand_for(hub, org, "Bench").id
        store = tenancy.create_store_for(hub, brand, {"name": "Bench", "country": "GB"}).id

        barcodes = gtins(args.rows, seed=1)
        first = work / "first.csv"
        feed = write_feed(first, barcodes, seed=2)
        changed_count = args.rows // 20
        changed = set(random.Random(3).sample(range(args.rows), changed_count))
        second = work / "second.csv"
        feed.with_columns(
            pl.when(pl.int_range(pl.len()).is_in(list(changed)))
            .then((pl.col("quantity").cast(pl.Int64) + 1).cast(pl.String))
            .otherwise(pl.col("quantity"))
            .alias("quantity")
        ).write_csv(second)

        runs = 1 if args.quick else 3
        stores = [store] + [tenancy.create_store_for(hub, brand, {"name": f"Bench {r}", "country": "GB"}).id for r in range(1, runs)]
        results = {key: [] for key in ("copy_first", "floor_first", "first", "copy_second", "floor_second", "second", "load_first", "load_second")}
        for r in range(runs):
            results["copy_first"].append(baseline(first))
            if not args.sqlite:
                results["floor_first"].append(keyed_copy(url, first, ledger=True))
            results["load_first"].append(loadavg())
            with probe() as first_probe:
                first_s, first_changed, first_written = ingest(hub, stores[r], first)
            results["first"].append(first_s)
            results["copy_second"].append(baseline(second))
            if not args.sqlite:
                results["floor_second"].append(keyed_copy(url, second, ledger=False))
            results["load_second"].append(loadavg())
            with probe() as second_probe:
                second_s, second_changed, second_written = ingest(hub, stores[r], second)
            results["second"].append(second_s)
            if second_written != changed_count:
                raise SystemExit("re-ingest wrote rows that did not change")

        big = work / "big.csv"
        write_feed(big, gtins(args.parse_rows, seed=4), seed=5)
        data = big.read_bytes()
        bares, floors, parses, parse_loads = [], [], [], []
        # A parse takes under half a second, so a moment of the machine's noise can decide a median
        # of 3 (1.48x one day when 5 runs in a row read 1.10-1.28x): 7 runs, interleaved.
        for _ in range(1 if args.quick else 7):
            parse_loads.append(loadavg())
            bares.append(timed(lambda: pl.read_csv(data, infer_schema=False)))
            floors.append(timed(lambda: typed_read_with_gtin_check(data)))
            parses.append(timed(lambda: feeds.read_stock_file(data, default_currency="GBP")))
        isolated = timed(lambda: read_isolated("stock", big, {"default_currency": "GBP"}))
        tiny = work / "tiny.csv"
        tiny.write_bytes(b"barcode,price,quantity\n9780141383743,6.99,3\n")
        read_isolated("stock", tiny, {"default_currency": "GBP"})  # warm the file cache
        overhead = timed(lambda: read_isolated("stock", tiny, {"default_currency": "GBP"}))
        small_cpu = statistics.median(sandbox_cpu_per_file(tiny) for _ in range(3))
        fresh_cpu = statistics.median(fresh_interpreter_cpu() for _ in range(3))

        m = {key: statistics.median(values) for key, values in results.items() if values and key[:4] != "load"}
        runs_of = lambda key: ", ".join(f"{v:.2f}" for v in results[key])  # noqa: E731
        engine = "SQLite" if args.sqlite else "PostgreSQL"
        raw = "raw executemany" if args.sqlite else "raw COPY"
        print(f"ingest benchmark on {engine} {hub.engine.dialect.server_version_info}, {os.cpu_count()} cores; "
              f"{'quick: 1 run' if args.quick else 'median of 3 runs (the parse: of 7)'}")
        print(f"(a) first ingest of {args.rows:,} rows: {m['first']:.2f} s (runs {runs_of('first')})  | {raw} {m['copy_first']:.2f} s  "
              f"| ratio {m['first'] / m['copy_first']:.2f}x  [loadavg {'; '.join(results['load_first'])}]")
        if not args.sqlite:
            ratio = m["first"] / m["floor_first"]
            print(f"    floor: keyed COPY + ledger rows {m['floor_first']:.2f} s (runs {runs_of('floor_first')})  | ratio {ratio:.2f}x "
                  f"(aim <= 1.5x: {'met' if ratio <= 1.5 else 'NOT met'})")
        print(f"    rows changed {first_changed:,}, stock rows written {first_written:,}")
        print(f"(b) re-ingest, {changed_count:,} rows changed: {m['second']:.2f} s (runs {runs_of('second')})  | {raw} {m['copy_second']:.2f} s  "
              f"| ratio {m['second'] / m['copy_second']:.2f}x  [loadavg {'; '.join(results['load_second'])}]")
        if not args.sqlite:
            ratio = m["second"] / m["floor_second"]
            print(f"    floor: keyed COPY of the whole file {m['floor_second']:.2f} s (runs {runs_of('floor_second')})  | ratio {ratio:.2f}x "
                  f"(aim <= 0.75x: {'met' if ratio <= 0.75 else 'NOT met'})")
        print(f"    rows changed {second_changed:,}, stock rows written {second_written:,} (must equal {changed_count:,})")
        if args.sqlite:
            print(f"longest wait of another writer for the write lock (last run): (a) {first_probe.longest:.3f} s, (b) {second_probe.longest:.3f} s")
        parse, floor = statistics.median(parses), statistics.median(floors)
        print(f"parse+validate {args.parse_rows:,} rows: {parse:.2f} s (runs {', '.join(f'{v:.2f}' for v in parses)})  "
              f"| typed polars read_csv + vectorised GTIN check {floor:.2f} s (runs {', '.join(f'{v:.2f}' for v in floors)})  "
              f"| ratio {parse / floor:.2f}x (aim <= 1.5x: {'met' if parse / floor <= 1.5 else 'NOT met'})  [loadavg {'; '.join(parse_loads)}]")
        print(f"    untyped polars.read_csv alone: {statistics.median(bares):.2f} s")
        print(f"    the same in the sandbox: {isolated:.2f} s (a one-row file: {overhead:.2f} s, the child's start)")
        print(f"    CPU a one-row file costs in the sandbox (a child forked from the reader process): {small_cpu * 1000:.0f} ms  "
              f"| a fresh interpreter importing the readers (a child per file before) {fresh_cpu * 1000:.0f} ms  "
              f"| ratio {small_cpu / fresh_cpu:.2f}x")
        hub.engine.dispose()
    finally:
        if not args.sqlite:
            with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
