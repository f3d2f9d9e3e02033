"""stockhub as a fleet: two API nodes, two workers and an FTP node, each its own `stockhub`
process with its own empty data folder, sharing only PostgreSQL and an S3 bucket (a real S3
server: moto in server mode). Uploads through every door — the two-step HTTP upload through
either API node (or asked of one and sent to the other), FTP — apply exactly once and in order
per store, and the FTP node serves the upload log a worker wrote."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx2 as httpx
import pytest
from sqlalchemy import func, select

from nodes import Fleet, fleet_env, ftp_get, ftp_put, two_step_upload
from stockhub import ids
from stockhub.db.engine import make_engine
from stockhub.db.tables import stock_levels, stock_movements, uploads
from stockhub.services import tenancy
from stockhub.services.context import Hub
from stockhub.settings import Settings
from support import gtins

STORES, UPLOADS_PER_STORE = 2, 6


def stock_file(marker: str, product: str, k: int) -> bytes:
    """The k-th file of a store: its marker product at k units, and one product of its own."""
    return f"barcode,price,quantity\n{marker},1.00,{k}\n{product},2.00,1\n".encode()


def wait_until_finished(engine, count: int, timeout: float, fleet: Fleet) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with engine.connect() as conn:
            finished = conn.execute(select(func.count()).where(uploads.c.status.not_in(["received", "processing"]))).scalar_one()
        if finished == count:
            return
        assert time.monotonic() < deadline, f"{finished}/{count} uploads finished\n{fleet.output()}"
        time.sleep(0.2)


@pytest.mark.slow
def test_uploads_through_every_door_of_a_fleet_apply_once_in_order(request, tmp_path, empty_postgres_url, s3_server, s3_storage_url):
    database = empty_postgres_url  # the nodes, started together, migrate it among themselves
    env = fleet_env(database, s3_storage_url, s3_server.env)
    fleet = Fleet(env, tmp_path / "nodes")
    request.addfinalizer(fleet.stop)
    api1, api2 = fleet.api("api1"), fleet.api("api2")
    fleet.worker("worker1"), fleet.worker("worker2")
    ftp = fleet.ftp("ftp")

    settings = Settings(
        data_dir=tmp_path / "tests", database_url=database, secret_key=env["STOCKHUB_SECRET_KEY"],
        storage_url=s3_storage_url, s3_endpoint_url=s3_server.endpoint_url,
    )  # fmt: skip
    began = time.monotonic()
    fleet.wait_ready()
    print(f"nodes ready after {time.monotonic() - began:.1f} s")
    hub = Hub(settings, make_engine(database))
    try:
        org = tenancy.create_organization(hub, "Fleet").id
        brand = tenancy.create_brand_for(hub, org, "Fleet").id
        stores = [tenancy.create_store_for(hub, brand, {"name": f"Fleet {n}", "country": "GB"}) for n in range(STORES)]
        token = tenancy.create_api_token(hub, org).secret
        codes = gtins(STORES * (UPLOADS_PER_STORE + 1), seed=15)

        doors = {
            "http via api1": lambda key, body, _: two_step_upload(api1.url, key, body),
            "http via api2": lambda key, body, _: two_step_upload(api2.url, key, body),
            "http signed by api1, sent to api2": lambda key, body, _: two_step_upload(api1.url, key, body, put_to=api2.url),
            "ftp": lambda key, body, name: ftp_put(ftp.port, key, name, body),
        }
        sent: dict[int, list[str]] = {}  # store → its uploads' doors, in the order sent
        failures: list[str] = []
        lock = threading.Lock()

        def send_all(n: int) -> None:
            store, marker = stores[n], codes[n * (UPLOADS_PER_STORE + 1)]
            for k in range(1, UPLOADS_PER_STORE + 1):
                door = list(doors)[(n + k) % len(doors)]
                answer = doors[door](store.secret, stock_file(marker, codes[n * (UPLOADS_PER_STORE + 1) + k], k), f"stock-{k}.csv")
                ok = answer.startswith("226") if isinstance(answer, str) else answer.status_code == 200
                with lock:
                    sent.setdefault(n, []).append(door)
                    if not ok:
                        failures.append(f"store {n} upload {k} via {door}: {answer if isinstance(answer, str) else answer.text}")

        with ThreadPoolExecutor(STORES) as pool:  # the stores send at once; each store one file after another
            list(pool.map(send_all, range(STORES)))
        assert not failures, failures
        print(f"uploads sent after {time.monotonic() - began:.1f} s")
        wait_until_finished(hub.engine, STORES * UPLOADS_PER_STORE, 90, fleet)
        print(f"uploads applied after {time.monotonic() - began:.1f} s")

        with hub.engine.connect() as conn:
            for n, store in enumerate(stores):
                number, marker = ids.decode("store", store.id), codes[n * (UPLOADS_PER_STORE + 1)]
                rows = conn.execute(
                    select(uploads.c.id, uploads.c.status, uploads.c.source, uploads.c.path, uploads.c.finished_at)
                    .where(uploads.c.store_id == number)
                    .order_by(uploads.c.id)
                ).all()
                assert [r.status for r in rows] == ["applied"] * UPLOADS_PER_STORE, rows
                assert [r.source for r in rows] == [{"ftp": "ftp"}.get(d, "http") for d in sent[n]]
                assert all(r.path.startswith(f"uploads/{number}/") for r in rows)  # storage keys, not local paths
                assert [r.finished_at for r in rows] == sorted(r.finished_at for r in rows)  # applied in the order received
                # exactly once: one ledger movement of the marker per upload, k-1 → k, in upload order
                moves = conn.execute(
                    select(stock_movements.c.upload_id, stock_movements.c.on_hand_before, stock_movements.c.on_hand_after)
                    .where(stock_movements.c.store_id == number, stock_movements.c.identifier == f"0{marker}")
                    .order_by(stock_movements.c.id)
                ).all()
                assert [tuple(m) for m in moves] == [(r.id, k, k + 1) for k, r in enumerate(rows)]
                levels = dict(conn.execute(select(stock_levels.c.identifier, stock_levels.c.on_hand).where(stock_levels.c.store_id == number)).all())
                assert len(levels) == UPLOADS_PER_STORE + 1 and levels[f"0{marker}"] == UPLOADS_PER_STORE

                # the FTP node serves the log a worker wrote (into the bucket) after the store's last upload
                log = ftp_get(ftp.port, store.secret, "upload_log.txt").decode()
                assert f"upload:    {ids.encode('upload', rows[-1].id)}" in log and "status:    applied" in log
                # either API node answers for any upload, whatever door it came in by
                for api in (api1, api2):
                    record = httpx.get(f"{api.url}/v1/uploads/{ids.encode('upload', rows[0].id)}", headers={"Authorization": f"Bearer {token}"})
                    assert record.status_code == 200 and record.json()["status"] == "applied"

        stored = hub.storage.list("")
        assert len([s for s in stored if s.key.startswith("uploads/")]) == STORES * UPLOADS_PER_STORE
        assert {f"ftp/{s.id}/upload_log.txt" for s in stores} <= {s.key for s in stored}
        for node in fleet.nodes.values():  # nothing kept in a node's own folder
            folder = tmp_path / "nodes" / node.name
            assert not (folder / "uploads").exists() and not (folder / "ftp").exists(), node.name
    finally:
        hub.engine.dispose()
