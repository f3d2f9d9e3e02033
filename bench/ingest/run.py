"""Ingest benchmark, on PostgreSQL: stockhub's ingest beside a raw COPY of the same file, in one run.

    .venv/bin/python bench/ingest/run.py [--rows 200000] [--parse-rows 1000000]

Prints (a) a first full ingest of a ROWS-row feed and (b) a re-ingest with 5% of rows changed,
each as a ratio to `COPY` of the same file into a bare table; the rows each ingest wrote
(counted by PostgreSQL: rows whose xmin is the ingest's transaction), and the parse-and-validate
time of a PARSE_ROWS-row file beside a bare `polars.read_csv` of it, in this process and in the
sandbox (the child process with bounded memory and time that a worker reads every upload in).
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
import uuid
from pathlib import Path

import polars as pl
import psycopg
from sqlalchemy import select, text

from stockhub import feeds, ids
from stockhub.db.engine import make_engine
from stockhub.db.migrate import upgrade
from stockhub.db.tables import uploads
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


def ingest(hub: Hub, store_id: str, path: Path) -> tuple[float, int, int]:
    """Time stockhub's ingest of a file already stored as an upload: claim, parse, validate, apply, commit."""
    recorded = import_file(hub, store_id, path)
    worker = Worker(hub, name="bench")
    seconds = timed(worker.run_once)
    number = ids.decode("upload", recorded["upload_id"])
    with hub.engine.connect() as conn:
        row = conn.execute(select(uploads.c.status, uploads.c.changed_count).where(uploads.c.id == number)).one()
        assert row.status == "applied", row
        # rows the ingest transaction wrote carry its transaction id as xmin, like the upload row it finished
        written = conn.execute(
            text("SELECT count(*) FROM stock_levels WHERE xmin = (SELECT xmin FROM uploads WHERE id = :id)"), {"id": number}
        ).scalar_one()
    return seconds, row.changed_count, written


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--parse-rows", type=int, default=1_000_000)
    args = parser.parse_args()

    name = f"stockhub_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    work = Path(tempfile.mkdtemp(prefix="stockhub-bench-"))
    try:
        hub = Hub.from_settings(Settings(data_dir=work / "data", database_url=url, secret_key="bench"))
        upgrade(hub.engine)
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

        copy_first = raw_copy(url, first)
        first_s, first_changed, first_written = ingest(hub, store, first)
        copy_second = raw_copy(url, second)
        second_s, second_changed, second_written = ingest(hub, store, second)

        big = work / "big.csv"
        write_feed(big, gtins(args.parse_rows, seed=4), seed=5)
        data = big.read_bytes()
        bare = timed(lambda: pl.read_csv(data, infer_schema=False))
        parse = timed(lambda: feeds.read_stock_file(data, default_currency="GBP"))
        isolated = timed(lambda: read_isolated("stock", big, {"default_currency": "GBP"}))
        tiny = work / "tiny.csv"
        tiny.write_bytes(b"barcode,price,quantity\n9780141383743,6.99,3\n")
        read_isolated("stock", tiny, {"default_currency": "GBP"})  # warm the file cache
        overhead = timed(lambda: read_isolated("stock", tiny, {"default_currency": "GBP"}))

        print(f"ingest benchmark on PostgreSQL {hub.engine.dialect.server_version_info}, {os.cpu_count()} cores")
        print(f"(a) first ingest of {args.rows:,} rows: {first_s:.2f} s  | raw COPY {copy_first:.2f} s  | ratio {first_s / copy_first:.2f}x (aim <= 3x)")
        print(f"    rows changed {first_changed:,}, stock rows written {first_written:,}")
        print(f"(b) re-ingest, {changed_count:,} rows changed: {second_s:.2f} s  | raw COPY {copy_second:.2f} s  | ratio {second_s / copy_second:.2f}x (aim <= 1.5x)")
        print(f"    rows changed {second_changed:,}, stock rows written {second_written:,} (must equal {changed_count:,})")
        print(f"parse+validate {args.parse_rows:,} rows: {parse:.2f} s  | bare polars.read_csv {bare:.2f} s  | ratio {parse / bare:.2f}x")
        print(f"    the same in the sandbox: {isolated:.2f} s (a one-row file: {overhead:.2f} s, the child's start)")
        if second_written != changed_count:
            raise SystemExit("re-ingest wrote rows that did not change")
        hub.engine.dispose()
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
