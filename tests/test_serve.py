"""`stockhub serve` as a person runs it: one process, embedded SQLite, driven with curl."""

from __future__ import annotations

import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
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
        } | (env or {})
        self.log = open(data_dir.parent / f"serve-{self.port}.log", "w+")
        self.process = subprocess.Popen(
            [STOCKHUB, "serve", "--port", str(self.port), *args], env=env, stdout=self.log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 60
        while True:
            assert self.process.poll() is None, self.output()
            try:
                if httpx.get(f"{self.url}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, self.output()
            time.sleep(0.2)

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


def wait_applied(url: str, token: str, upload_id: str) -> dict:
    deadline = time.monotonic() + 30
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
