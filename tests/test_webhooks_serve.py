"""A `stockhub serve` killed (-9) while delivering an event it has committed: once restarted,
the event is delivered (at least once, with the same id). Both databases."""

from __future__ import annotations

import threading
import time

import httpx2 as httpx
import pytest

from receiver import Receiver, Reply
from test_serve import Served, demo_credentials


@pytest.mark.slow
def test_an_event_committed_before_a_kill_is_delivered_after_the_restart(tmp_path, database_url):
    env = {
        "STOCKHUB_DATABASE_URL": database_url,
        "STOCKHUB_WEBHOOK_ALLOW_LOOPBACK": "true",
        "STOCKHUB_WEBHOOK_TIMEOUT_SECONDS": "2",
        "STOCKHUB_WEBHOOK_LEASE_SECONDS": "3",
        "STOCKHUB_WORKER_POLL_SECONDS": "0.2",
    }
    arrived, never = threading.Event(), threading.Event()
    receiver = Receiver()
    receiver.reply = lambda _id, _payload: (arrived.set(), Reply(204, hold=never))[1]  # mid-delivery when killed
    data = tmp_path / "data"
    served = Served(data, "--demo", env=env)
    try:
        store, key, token = demo_credentials(served.output())
        auth = {"Authorization": f"Bearer {token}"}
        made = httpx.post(f"{served.url}/v1/webhook-subscriptions", json={"url": receiver.url, "event_types": ["upload.processed"]}, headers=auth)
        assert made.status_code == 201, made.text
        receiver.secrets.append(made.json()["secret"])
        put_url = httpx.get(f"{served.url}/upload/{key}").text
        assert httpx.put(put_url, content=b"barcode,price,quantity\n9780141383743,6.99,4\n").status_code == 200
        assert arrived.wait(30), served.output()
    finally:
        served.kill()
    assert receiver.received == []  # the one attempt never got its answer back

    receiver.reply = lambda _id, _payload: Reply(204)
    restarted = Served(data, env=env)
    try:
        [got] = receiver.wait_for(lambda r: len(r) == 1)
        assert got.payload is not None and got.payload["type"] == "upload.processed" and got.payload["store_id"] == store
        subscription = made.json()["id"]
        deadline = time.monotonic() + 30
        while (items := httpx.get(f"{restarted.url}/v1/webhook-subscriptions/{subscription}/deliveries", headers=auth).json()["items"])[0]["status"] != "succeeded":
            assert time.monotonic() < deadline, items
            time.sleep(0.1)
        detail = httpx.get(f"{restarted.url}/v1/webhook-deliveries/{items[0]['id']}", headers=auth).json()
        assert detail["event_id"] == got.message_id
        assert "lease expired" in detail["attempts"][0]["error"] and detail["attempts"][-1]["status_code"] == 204
    finally:
        restarted.stop()
        never.set()
        receiver.stop()
