"""stockhub processes for fleet tests: API, worker and FTP nodes started as separate `stockhub`
commands (as a deployment runs them), sharing a PostgreSQL database and an S3 bucket, each with
its own empty data folder — so nothing can pass between them but the database and the storage.

`test_serve.Served` is the one-process (`stockhub serve`) form of the same thing.
"""

from __future__ import annotations

import ftplib
import io
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx2 as httpx

STOCKHUB = str(Path(sys.executable).parent / "stockhub")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def answers_http(url: str) -> Callable[[], bool]:
    def ready() -> bool:
        try:
            return httpx.get(url, timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    return ready


def answers_ftp(port: int) -> Callable[[], bool]:
    def ready() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
                return sock.recv(3) == b"220"
        except OSError:
            return False

    return ready


class Node:
    """One `stockhub <args>` process with its own log file; `ready` says when it serves."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], folder: Path, ready: Callable[[], bool] | None):
        self.name, self.args, self.env, self.ready = name, args, env, ready
        self.folder = folder
        self.logs: list[Path] = []
        self.process: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        data = self.folder / self.name
        data.mkdir(parents=True, exist_ok=True)
        log = self.folder / f"{self.name}-{len(self.logs)}.log"
        self.logs.append(log)
        with open(log, "w") as out:
            env = self.env | {"STOCKHUB_DATA_DIR": str(data)}
            self.process = subprocess.Popen([STOCKHUB, *self.args], env=env, stdout=out, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 120) -> None:  # a loaded 2-core machine starts five nodes slowly
        deadline = time.monotonic() + timeout
        while not (self.ready is None or self.ready()):
            assert self.process.poll() is None, f"{self.name} exited:\n{self.output()}"
            assert time.monotonic() < deadline, f"{self.name} did not start:\n{self.output()}"
            time.sleep(0.1)

    def output(self) -> str:
        return "\n".join(f"--- {log.name}\n{log.read_text(errors='replace')[-4000:]}" for log in self.logs)

    def kill(self) -> None:
        """kill -9: no shutdown code runs."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def restart(self) -> None:
        self.kill()
        self.start()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclass
class Fleet:
    """API, worker and FTP nodes on one database and one bucket."""

    env: dict[str, str]
    folder: Path
    nodes: dict[str, Node] = field(default_factory=dict)

    def api(self, name: str) -> Node:
        port = free_port()
        node = Node(name, ["serve", "--no-jobs", "--no-ftp", "--workers", "1", "--host", "127.0.0.1", "--port", str(port)], self.env, self.folder, answers_http(f"http://127.0.0.1:{port}/healthz"))
        node.url = f"http://127.0.0.1:{port}"
        self.nodes[name] = node
        return node

    def worker(self, name: str) -> Node:
        self.nodes[name] = node = Node(name, ["worker"], self.env, self.folder, None)
        return node

    def ftp(self, name: str) -> Node:
        port = free_port()
        node = Node(name, ["ftp", "--host", "127.0.0.1", "--port", str(port)], self.env, self.folder, answers_ftp(port))
        node.port = port
        self.nodes[name] = node
        return node

    def wait_ready(self) -> None:
        for node in self.nodes.values():
            node.wait_ready()

    def output(self) -> str:
        return "\n".join(node.output() for node in self.nodes.values())

    def stop(self) -> None:
        for node in self.nodes.values():
            node.stop()


def fleet_env(database_url: str, storage_url: str, s3_env: dict[str, str], **settings: str) -> dict[str, str]:
    """The environment of every node: no STOCKHUB_* setting of the caller's leaks in."""
    return {k: v for k, v in os.environ.items() if not k.startswith("STOCKHUB_")} | s3_env | {
        "STOCKHUB_DATABASE_URL": database_url,
        "STOCKHUB_STORAGE_URL": storage_url,
        "STOCKHUB_SECRET_KEY": "fleet-test-secret",  # one secret for the fleet: it keys every public id
        "STOCKHUB_WORKER_POLL_SECONDS": "0.2",
    } | {f"STOCKHUB_{name.upper()}": value for name, value in settings.items()}


def ftp_put(port: int, upload_key: str, name: str, body: bytes) -> str:
    with ftplib.FTP() as ftp:
        ftp.connect("127.0.0.1", port, timeout=30)
        ftp.login("apikey", upload_key)
        return ftp.storbinary(f"STOR {name}", io.BytesIO(body))


def ftp_get(port: int, upload_key: str, name: str) -> bytes:
    with ftplib.FTP() as ftp:
        ftp.connect("127.0.0.1", port, timeout=30)
        ftp.login("apikey", upload_key)
        out = io.BytesIO()
        ftp.retrbinary(f"RETR {name}", out.write)
        return out.getvalue()


def two_step_upload(url: str, upload_key: str, body: bytes, timeout: float = 30, put_to: str | None = None) -> httpx.Response:
    """The POS's two-step HTTP upload; the PUT's answer (200 when acknowledged). `put_to`: send
    the file to another node than the one that signed the URL (a load balancer's choice)."""
    step1 = httpx.get(f"{url}/upload/{upload_key}", params={"type": "stock"}, timeout=timeout)
    step1.raise_for_status()
    target = step1.text if put_to is None else put_to + step1.text.removeprefix(url)
    return httpx.put(target, content=body, headers={"Content-Type": "text/csv"}, timeout=timeout)
