"""`stockhub serve` as a person runs it: one process, embedded SQLite, driven with curl."""

from __future__ import annotations

import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx2 as httpx
import pytest

STOCKHUB = str(Path(sys.executable).parent / "stockhub")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Served:
    def __init__(self, data_dir: Path, *args: str, env: dict | None = None):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ftp_port = _free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("STOCKHUB_")} | {
            "STOCKHUB_DATA_DIR": str(data_dir),
            "STOCKHUB_FTP_PORT": str(self.ftp_port),
            # one API process unless a test asks for more (`--workers`): each is a Python start,
            # seconds on a loaded CI machine; the test of several processes is below
            "STOCKHUB_WORKERS": "1",
        } | (env or {})
        self.log = open(data_dir.parent / f"serve-{self.port}.log", "w+")
        self.process = subprocess.Popen(
            [STOCKHUB, "serve", "--port", str(self.port), *args], env=env, stdout=self.log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 60
        try:
            while True:
                assert self.process.poll() is None, self.output()
                try:
                    if httpx.get(f"{self.url}/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, self.output()
                time.sleep(0.2)
        except AssertionError:  # a server that did not start in time must not outlive the test
            self.kill()
            raise

    def output(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text()

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.log.close()


def demo_credentials(text: str) -> tuple[str, str, str]:
    store, key = re.search(r"store (str_\w+)\s+upload key (\S+)", text).groups()
    token = re.search(r"API token\s+(\S+)", text).group(1)
    return store, key, token


def curl(*args: str) -> str:
    return subprocess.run(["curl", "-sS", "--fail-with-body", *args], capture_output=True, text=True, check=True, timeout=60).stdout


def wait_applied(url: str, token: str, upload_id: str, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        record = httpx.get(f"{url}/v1/uploads/{upload_id}", headers={"Authorization": f"Bearer {token}"}).json()
        if record["status"] not in ("received", "processing"):
            return record
        assert time.monotonic() < deadline
        time.sleep(0.1)


@pytest.mark.slow
def test_serve_demo_then_curl_the_two_step_upload(tmp_path):
    served = Served(tmp_path / "data", "--demo")
    try:
        store, key, token = demo_credentials(served.output())
        assert (tmp_path / "data" / "stockhub.sqlite3").exists()
        (tmp_path / "stock.csv").write_text("barcode,price,quantity\n9780141383743,6.99,3\n9781409162988,20,0\n")
        put_url = curl(f"{served.url}/upload/{key}?type=stock")
        answer = curl("-T", str(tmp_path / "stock.csv"), put_url)  # the first body, verbatim, as the URL
        upload_id = re.search(r'"upload_id":"(upl_\w+)"', answer).group(1)
        assert wait_applied(served.url, token, upload_id)["status"] == "applied"
        level = curl("-H", f"Authorization: Bearer {token}", f"{served.url}/v1/stores/{store}/stock/9780141383743")
        assert '"on_hand":3' in level and '"price":"6.99"' in level
    finally:
        served.stop()


@pytest.mark.slow
def test_an_acknowledged_upload_survives_a_killed_process(tmp_path):
    data = tmp_path / "data"
    served = Served(data, "--demo", "--no-workers")  # nothing processes it before the kill
    store, key, token = demo_credentials(served.output())
    put_url = httpx.get(f"{served.url}/upload/{key}").text
    answer = httpx.put(put_url, content=b"barcode,price,quantity\n9780141383743,6.99,4\n")
    assert answer.status_code == 200
    served.kill()

    restarted = Served(data)
    try:
        record = wait_applied(restarted.url, token, answer.json()["upload_id"])
        assert record["status"] == "applied"
        level = httpx.get(f"{restarted.url}/v1/stores/{store}/stock/9780141383743", headers={"Authorization": f"Bearer {token}"})
        assert level.json()["on_hand"] == 4
    finally:
        restarted.stop()


@pytest.mark.slow
def test_serve_demo_again_reuses_the_demo_and_a_busy_port_changes_nothing(tmp_path):
    data = tmp_path / "data"
    first = Served(data, "--demo")
    try:
        store, key, token = demo_credentials(first.output())
        env = {k: v for k, v in os.environ.items() if not k.startswith("STOCKHUB_")} | {
            "STOCKHUB_DATA_DIR": str(data), "STOCKHUB_FTP_PORT": str(_free_port())
        }
        busy = subprocess.run([STOCKHUB, "serve", "--demo", "--port", str(first.port)], env=env, capture_output=True, text=True, timeout=60)
        assert httpx.get(f"{first.url}/upload/{key}").status_code == 200  # the key was not rotated
        assert busy.returncode != 0 and f"cannot start on 127.0.0.1:{first.port}" in busy.stderr
        assert "upload key" not in busy.stdout
    finally:
        first.stop()

    again = Served(data, "--demo")
    try:
        assert demo_credentials(again.output()) == (store, key, token)
        assert "first start" in again.output()
        assert httpx.get(f"{again.url}/v1/stores/{store}", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    finally:
        again.stop()
    with sqlite3.connect(data / "stockhub.sqlite3") as db:
        assert db.execute("SELECT count(*) FROM api_tokens").fetchone() == (1,)  # no new token per start


def _stock_file(rows: int) -> bytes:
    """`rows` distinct valid EAN-13s: a file that takes the worker seconds to apply."""
    lines = ["barcode,price,quantity"]
    for body in range(10**10, 10**10 + rows):
        digits = f"5{body:011d}"
        check = (10 - sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(digits)) % 10) % 10
        lines.append(f"{digits}{check},1.99,2")
    return ("\n".join(lines) + "\n").encode()


@pytest.mark.slow
def test_an_upload_interrupted_by_a_kill_is_taken_back_at_once_on_restart(tmp_path):
    """The lease is 300 s; a restarted process takes its host's interrupted upload back in seconds,
    and the store's next upload, queued behind it, follows."""
    data = tmp_path / "data"
    served = Served(data, "--demo")
    store, key, token = demo_credentials(served.output())
    auth = {"Authorization": f"Bearer {token}"}
    big = httpx.put(httpx.get(f"{served.url}/upload/{key}").text, content=_stock_file(100_000), timeout=60).json()
    after = httpx.put(httpx.get(f"{served.url}/upload/{key}").text, content=b"barcode,price,quantity\n9780141383743,6.99,4\n")
    deadline = time.monotonic() + 30
    while httpx.get(f"{served.url}/v1/uploads/{big['upload_id']}", headers=auth).json()["status"] != "processing":
        assert time.monotonic() < deadline, "the upload was never seen processing"
        time.sleep(0.02)
    served.kill()

    restarted = Served(data)
    try:
        # within 120 s, not after the 300 s lease (on an idle machine: a few seconds)
        assert wait_applied(restarted.url, token, big["upload_id"], timeout=120)["status"] == "applied"
        assert wait_applied(restarted.url, token, after.json()["upload_id"])["status"] == "applied"
        level = httpx.get(f"{restarted.url}/v1/stores/{store}/stock/9780141383743", headers=auth)
        assert level.json()["on_hand"] == 4
    finally:
        restarted.stop()


def _children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


@pytest.mark.slow
def test_serve_with_two_api_processes_wakes_the_workers_and_never_oversells(tmp_path, database_url, hub, settings):
    """Two API processes share the port and the database; the background workers run once, in the
    supervisor, and an upload received by an API process wakes them at once (their poll is 60 s)."""
    from receiver import Receiver
    from support import make_tenant

    tenant = make_tenant(hub)
    store, key, token = tenant.store, tenant.upload_key, tenant.token
    env = {
        "STOCKHUB_DATABASE_URL": database_url,
        "STOCKHUB_SECRET_KEY": settings.secret_key,
        "STOCKHUB_FTP_ENABLED": "false",
        "STOCKHUB_WEBHOOK_ALLOW_LOOPBACK": "true",
        "STOCKHUB_WORKER_POLL_SECONDS": "60",
    }
    receiver = Receiver()
    served = Served(settings.data_dir, "--workers", "2", env=env)
    try:
        api = _children(served.process.pid)
        assert len(api) == 2, served.output()
        auth = {"Authorization": f"Bearer {token}"}
        made = httpx.post(f"{served.url}/v1/webhook-subscriptions", json={"url": receiver.url, "event_types": ["upload.processed"]}, headers=auth)
        assert made.status_code == 201, made.text
        receiver.secrets.append(made.json()["secret"])

        put_url = httpx.get(f"{served.url}/upload/{key}").text
        sent = time.monotonic()
        answer = httpx.put(put_url, content=b"barcode,price,quantity\n9780141383743,6.99,5\n")
        assert answer.status_code == 200, answer.text
        upload_id = answer.json()["upload_id"]
        ours = lambda received: [x for x in received if x.payload and x.payload["data"].get("upload_id") == upload_id]  # noqa: E731
        [got] = ours(receiver.wait_for(lambda received: ours(received), timeout=20))
        assert time.monotonic() - sent < 20  # not the 60 s poll: the API process woke the supervisor's workers
        assert got.payload["type"] == "upload.processed" and got.payload["data"]["status"] == "applied"

        ticks = {pid: _cpu_ticks(pid) for pid in api}
        answers: list[int] = []

        def book(n: int) -> None:
            for k in range(2):  # a fresh connection each time: the kernel hands them to either process
                body = {
                    "external_id": f"two-processes-{n}-{k}",
                    "channel": {"type": "marketplace", "name": "test"},
                    "currency": "GBP",
                    "lines": [{"identifier": "9780141383743", "quantity": 1, "unit_price": "6.99"}],
                    "fulfilment": {"type": "ship", "store_id": store},
                }
                answers.append(httpx.post(f"{served.url}/v1/orders", json=body, headers=auth | {"Connection": "close"}, timeout=60).status_code)

        threads = [threading.Thread(target=book, args=(n,)) for n in range(12)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert sorted(answers) == [201] * 5 + [409] * 19, answers  # 5 units: exactly 5 bookings, never more
        level = httpx.get(f"{served.url}/v1/stores/{store}/stock/9780141383743", headers=auth).json()
        assert level["on_hand"] == 5 and level["committed"] == 5 and level["available"] == 0
        assert all(_cpu_ticks(pid) > ticks[pid] for pid in api), "both API processes served bookings"
        served.kill()  # SIGKILL: the API processes end with their supervisor
        deadline = time.monotonic() + 10
        while any(Path(f"/proc/{pid}").exists() and "Z" not in Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1][:3] for pid in api):
            assert time.monotonic() < deadline, "an API process outlived its supervisor"
            time.sleep(0.1)
    finally:
        served.stop()
        receiver.stop()


def test_connections_to_the_served_port_have_nagle_off():
    """The socket `stockhub serve` listens on is a TCP one (not protocol 0), so asyncio turns Nagle
    off on each connection it accepts, as uvicorn serves them. With Nagle on, every answer's body
    (written after its head) waited for the client's delayed ACK: ~44 ms a request on a kept-alive
    connection, whatever the request."""
    import asyncio

    from stockhub.cli import _http_socket

    async def accept_one() -> int:
        listening = _http_socket("127.0.0.1", 0)
        listening.listen()
        accepted = asyncio.get_running_loop().create_future()
        server = await asyncio.start_server(lambda reader, writer: accepted.set_result(writer), sock=listening)
        async with server:
            _, client = await asyncio.open_connection(*listening.getsockname())
            writer = await asyncio.wait_for(accepted, 10)
            nodelay = writer.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            client.close()
            writer.close()
        return nodelay

    assert asyncio.run(accept_one()) != 0
