"""`stockhub listen` beside `stockhub serve --demo`: it subscribes itself, receives real signed
deliveries from the server and verifies them with `standardwebhooks`, verifies a subscription
made by hand over the API too, refuses a forged message, and removes its subscription on Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx2 as httpx
import pytest

from test_serve import STOCKHUB, Served, _free_port, demo_credentials


class Listening:
    def __init__(self, data: Path, *args: str):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}/hooks"
        env = {k: v for k, v in os.environ.items() if not k.startswith("STOCKHUB_")} | {"STOCKHUB_DATA_DIR": str(data)}
        self.out, self.err = data.parent / "listen.out", data.parent / "listen.err"
        self.process = subprocess.Popen(
            [STOCKHUB, "listen", "--port", str(self.port), "--json", *args], env=env, stdout=open(self.out, "w"), stderr=open(self.err, "w")
        )
        self.wait(lambda: "Ready:" in self.err.read_text(), "it never said it was ready")

    def wait(self, condition, what: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert self.process.poll() is None, self.err.read_text()
            assert time.monotonic() < deadline, f"{what}: {self.err.read_text()} {self.out.read_text()}"
            time.sleep(0.1)

    def printed(self) -> list[dict]:
        return [json.loads(line) for line in self.out.read_text().splitlines() if line.strip()]


@pytest.mark.slow
def test_listen_receives_and_verifies_the_demos_signed_deliveries(tmp_path):
    data = tmp_path / "data"
    served = Served(data, "--demo")
    listening = None
    try:
        store, key, token = demo_credentials(served.output())
        auth = {"Authorization": f"Bearer {token}"}
        listening = Listening(data, "--event", "upload.processed", "--event", "order.created")
        [own] = [s for s in httpx.get(f"{served.url}/v1/webhook-subscriptions", headers=auth).json()["items"] if s["url"] == listening.url]
        assert own["event_types"] == ["order.created", "upload.processed"] and own["description"] == "stockhub listen"
        assert f"subscription {own['id']} of " in listening.err.read_text() and "signing secret whsec_" in listening.err.read_text()

        # a real delivery from the server: an upload's upload.processed, signed and verified
        upload = httpx.put(httpx.get(f"{served.url}/upload/{key}").text, content=b"barcode,price,quantity\n9780141383743,6.99,4\n").json()
        listening.wait(lambda: any(p["payload"] and p["payload"]["type"] == "upload.processed" for p in listening.printed()), "no upload.processed")
        [got] = [p for p in listening.printed() if p["payload"] and p["payload"]["type"] == "upload.processed"]
        assert got["verified"] and got["subscription"] == own["id"] and got["error"] is None
        assert got["payload"]["data"]["upload_id"] == upload["upload_id"] and got["webhook_id"] == got["payload"]["id"]

        # a subscription made by hand over the API to the listener verifies with its own secret
        mine = httpx.post(f"{served.url}/v1/webhook-subscriptions", headers=auth, json={"url": listening.url, "event_types": ["order.created"], "store_ids": [store]})
        assert mine.status_code == 201, mine.text
        booked = httpx.post(
            f"{served.url}/v1/orders",
            headers=auth,
            json={"external_id": "listen-1", "channel": {"type": "web", "name": "shop"}, "currency": "GBP",
                  "lines": [{"identifier": "9780141383743", "quantity": 1, "unit_price": "6.99"}], "fulfilment": {"type": "pickup", "store_id": store}},
        )  # fmt: skip
        assert booked.status_code == 201, booked.text
        listening.wait(lambda: {p["subscription"] for p in listening.printed() if p["payload"] and p["payload"]["type"] == "order.created"} == {own["id"], mine.json()["id"]}, "order.created not to both")
        deliveries = httpx.get(f"{served.url}/v1/webhook-subscriptions/{mine.json()['id']}/deliveries", headers=auth).json()["items"]
        assert deliveries[0]["status"] == "succeeded"

        # a forged message is refused, and says why
        forged = httpx.post(listening.url, content=b'{"type": "order.created"}', headers={"webhook-id": "evt_forged", "webhook-timestamp": str(int(time.time())), "webhook-signature": "v1,bm9wZQ=="})
        assert forged.status_code == 401 and "does not verify" in forged.text
        [refused] = [p for p in listening.printed() if p["webhook_id"] == "evt_forged"]
        assert not refused["verified"] and refused["payload"] is None and "does not verify" in refused["error"]
        assert httpx.post(listening.url, content=b"{}").status_code == 400  # not a Standard Webhooks message

        listening.process.send_signal(signal.SIGINT)  # Ctrl-C: its own subscription goes, the one made by hand stays
        assert listening.process.wait(30) == 0, listening.err.read_text()
        assert f"removed subscription {own['id']}" in listening.err.read_text()
        left = [s["id"] for s in httpx.get(f"{served.url}/v1/webhook-subscriptions", headers=auth).json()["items"] if s["url"] == listening.url]
        assert left == [mine.json()["id"]]
    finally:
        if listening and listening.process.poll() is None:
            listening.process.kill()
        served.stop()


def test_listen_without_a_demo_asks_for_an_organization(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("STOCKHUB_")} | {"STOCKHUB_DATA_DIR": str(tmp_path / "data")}
    done = subprocess.run([STOCKHUB, "listen", "--port", str(_free_port())], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "give --org" in done.stderr and str(tmp_path / "data") in done.stderr
