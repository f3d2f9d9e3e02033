"""Receivers that misbehave cannot hold up anyone else's webhooks: an attempt has a total deadline,
and one subscription holds only its share of the senders. Both databases."""

from __future__ import annotations

import select
import socket
import threading
import time

import pytest

from receiver import Receiver, webhook_settings
from stockhub import ids
from stockhub.db.engine import transaction
from stockhub.services import events
from stockhub.settings import Settings
from support import make_tenant


@pytest.fixture
def settings(database_url, tmp_path) -> Settings:
    return webhook_settings(database_url, tmp_path, webhook_lease_seconds=10, webhook_concurrency=4)


class Dripper:
    """A receiver that reads the request, then answers one byte every `every` seconds, forever:
    each byte comes well within any read timeout, and the answer never ends."""

    def __init__(self, every: float = 0.2):
        self.every = every
        self.connections = 0
        self.open = self.most_open = 0  # connections being answered now, and the most at once
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}/hooks"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._drip, args=(sock,), daemon=True).start()

    def _drip(self, sock: socket.socket) -> None:
        with self._lock:
            self.open += 1
            self.most_open = max(self.most_open, self.open)
        try:
            self._answer(sock)
        finally:
            with self._lock:
                self.open -= 1

    def _answer(self, sock: socket.socket) -> None:
        with sock:
            sock.recv(65536)
            for byte in b"HTTP/1.1 200 OK\r\nx-padding: " + b"a" * 100_000:
                readable, _, _ = select.select([sock], [], [], self.every)
                if self._stop.is_set() or (readable and not sock.recv(1)):
                    return  # the sender gave up (or the test is over)
                try:
                    sock.sendall(bytes([byte]))
                except OSError:
                    return

    def stop(self) -> None:
        self._stop.set()
        self._listener.close()


def subscribe(client, tenant, url: str, **fields) -> dict:
    answer = client.post("/v1/webhook-subscriptions", json={"url": url, "event_types": ["order.created"], **fields}, headers=tenant.auth)
    assert answer.status_code == 201, answer.text
    return answer.json()


def emit_orders(hub, tenant, count: int, prefix: str = "ord") -> None:
    organization, store = ids.decode("organization", tenant.organization), ids.decode("store", tenant.store)
    with transaction(hub.engine) as conn:
        for n in range(count):
            events.emit(conn, "order.created", organization, store, {"order_id": f"{prefix}_{n}"})
    hub.ring()


def test_a_dripping_receiver_times_out_and_holds_up_no_other_organization(client, server, tenant):
    dripper = Dripper()
    healthy = Receiver()
    other = make_tenant(server.hub, "Other Books")
    try:
        slow_subscription = subscribe(client, tenant, dripper.url)
        healthy.secrets.append(subscribe(client, other, healthy.url)["secret"])
        emit_orders(server.hub, tenant, 20)  # first in the queue: more than all the senders
        time.sleep(0.3)
        started = time.monotonic()
        emit_orders(server.hub, other, 12)
        healthy.wait_for(lambda r: len({x.message_id for x in r}) == 12, timeout=8)
        assert time.monotonic() - started < 8

        # the dripping receiver's attempts end at the 1 s deadline, as timeouts, and are retried
        deadline = time.monotonic() + 15
        while True:
            items = client.get(f"/v1/webhook-subscriptions/{slow_subscription['id']}/deliveries", headers=tenant.auth).json()["items"]
            attempts = [d["last_attempt"] for d in items if d["last_attempt"] is not None]
            if attempts:
                break
            assert time.monotonic() < deadline, items
            time.sleep(0.1)
        for attempt in attempts:
            assert attempt["status_code"] is None and "timed out" in attempt["error"] and "within 1 s" in attempt["error"]
            assert 900 <= attempt["latency_ms"] < 3000
        assert all(d["status"] in ("pending", "delivering") for d in items)
        assert dripper.most_open == 2  # its share of the 4 senders (a quarter, at least 2)
    finally:
        dripper.stop()
        healthy.stop()
