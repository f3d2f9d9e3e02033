"""SIGTERM, as systemd, Docker or Kubernetes send it: `stockhub worker` gives back the work in hand
at once (an upload being processed, a webhook delivery in flight) so another worker takes it
without waiting for the lease; `stockhub serve` stops accepting, finishes the request in flight,
and logs JSON lines carrying request, upload and store ids."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx2 as httpx
import pytest
from sqlalchemy import select

from receiver import Receiver, Reply
from stockhub import ids
from stockhub.db.engine import reading, transaction
from stockhub.db.tables import uploads, webhook_deliveries
from stockhub.jobs.worker import Worker
from stockhub.services import events, webhooks
from stockhub.services.context import Hub
from stockhub.services.uploads import get_upload, import_file
from stockhub.settings import Settings
from support import gtins, make_tenant
from test_serve import Served, demo_credentials, wait_applied

STOCKHUB = str(Path(sys.executable).parent / "stockhub")


def _wait(condition, what: str, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)
    return found


@pytest.mark.slow
def test_a_stopped_worker_gives_back_its_upload_and_delivery_at_once(postgres_database, tmp_path):
    settings = Settings(data_dir=tmp_path / "data", database_url=postgres_database, secret_key="test-secret", webhook_allow_loopback=True)
    hub = Hub.from_settings(settings)
    tenant = make_tenant(hub, "Shutdown Books")
    organization = ids.decode("organization", tenant.organization)
    receiver, hold = Receiver(), threading.Event()
    receiver.reply = lambda _id, _payload: Reply(hold=hold)  # the delivery stays in flight
    subscription, _secret = webhooks.create_subscription(hub, organization, webhooks.SubscriptionFields(url=receiver.url, event_types=["store.status_changed"]))
    env = {k: v for k, v in os.environ.items() if not k.startswith("STOCKHUB_")} | {
        "STOCKHUB_DATABASE_URL": postgres_database, "STOCKHUB_DATA_DIR": str(settings.data_dir), "STOCKHUB_SECRET_KEY": "test-secret",
        "STOCKHUB_WEBHOOK_ALLOW_LOOPBACK": "true", "STOCKHUB_WORKER_POLL_SECONDS": "0.1", "STOCKHUB_SHUTDOWN_GRACE_SECONDS": "0",
        "STOCKHUB_WEBHOOK_TIMEOUT_SECONDS": "5",
    }
    log = open(tmp_path / "worker.log", "w+")
    worker = subprocess.Popen([STOCKHUB, "worker"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        with transaction(hub.engine) as conn:
            events.emit(conn, "store.status_changed", organization, ids.decode("store", tenant.store), {"status": "pending"})
        d = webhook_deliveries.c

        def delivery():
            with reading(hub.engine) as conn:
                return conn.execute(select(webhook_deliveries).where(d.subscription_id == subscription.id)).first()

        _wait(lambda: (row := delivery()) is not None and row.status == "delivering", "the delivery to be in flight")

        rows = 150_000  # long enough to read and apply that the signal comes mid-way
        (tmp_path / "big.csv").write_text("barcode,price,quantity\n" + "".join(f"{g},1.00,5\n" for g in gtins(rows, seed=15)))
        upload_id = import_file(hub, tenant.store, tmp_path / "big.csv")["upload_id"]
        number = ids.decode("upload", upload_id)

        def upload():
            with reading(hub.engine) as conn:
                return conn.execute(select(uploads).where(uploads.c.id == number)).one()

        _wait(lambda: upload().status == "processing", "the upload to be claimed")
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(30) == 0, Path(log.name).read_text()

        given_back = upload()
        assert (given_back.status, given_back.worker_id, given_back.lease_until, given_back.attempts) == ("received", None, None, 0)
        back = delivery()
        assert (back.status, back.worker_id, back.lease_until, back.attempts) == ("pending", None, None, 0)
        assert back.next_attempt_at <= datetime.now(UTC)  # due now, not when the lease would have lapsed
        output = Path(log.name).read_text()
        assert "gave back 1 uploads, 1 webhook deliveries" in output

        hold.set()
        receiver.reply = lambda _id, _payload: Reply()
        Worker(hub, name="the-next-worker").run_until_idle()  # another worker takes both at once
        assert get_upload(hub, None, upload_id).row.status == "applied"
        _wait(lambda: delivery().status == "succeeded", "the delivery to be made by the next worker", timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()
        hold.set()
        receiver.stop()
        log.close()
        hub.engine.dispose()


@pytest.mark.slow
def test_serve_finishes_the_request_in_flight_then_stops_and_logs_json(tmp_path):
    served = Served(tmp_path / "data", "--demo", env={"STOCKHUB_SHUTDOWN_GRACE_SECONDS": "20"})
    try:
        store, key, token = demo_credentials(served.output())
        first = httpx.put(httpx.get(f"{served.url}/upload/{key}").text, content=b"barcode,price,quantity\n9780141383743,6.99,3\n")
        assert wait_applied(served.url, token, first.json()["upload_id"])["status"] == "applied"

        put_url = httpx.get(f"{served.url}/upload/{key}", headers={"X-Request-Id": "pos-upload-2"}).text
        halfway = threading.Event()

        def body():
            yield b"barcode,price,quantity\n"
            halfway.wait(30)
            yield b"9780141383743,6.99,7\n"

        answers = []
        sending = threading.Thread(target=lambda: answers.append(httpx.put(put_url, content=body(), timeout=30)))
        sending.start()
        time.sleep(0.5)  # the request is in, its body half sent
        served.process.send_signal(signal.SIGTERM)
        _wait(lambda: _refuses(served.url), "the server to stop accepting connections", timeout=20)
        halfway.set()
        sending.join(30)
        assert answers and answers[0].status_code == 200, answers and answers[0].text
        assert served.process.wait(30) == 0
        output = served.output()
    finally:
        served.stop()

    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    assert any(line.get("request_id") == "pos-upload-2" and line.get("route") == "/upload/{upload_key}" for line in lines)
    processed = [line for line in lines if line["message"].startswith("upload processed") and line["upload_id"] == first.json()["upload_id"]]
    assert processed and processed[0]["store_id"] == store and processed[0]["worker_id"]
    ids.configure((tmp_path / "data" / "secret_key").read_text().strip().encode())  # the served install's secret
    late = ids.decode("upload", answers[0].json()["upload_id"])  # acknowledged: kept (processed now or at the next start)
    with sqlite3.connect(tmp_path / "data" / "stockhub.sqlite3") as db:
        assert db.execute("SELECT status, worker_id FROM uploads WHERE id = ?", (late,)).fetchone() in (("received", None), ("applied", None))


def _refuses(url: str) -> bool:
    try:
        httpx.get(f"{url}/healthz", timeout=2)
        return False
    except httpx.TransportError:
        return True
