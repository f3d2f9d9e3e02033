"""Slow HTTP clients are not held for ever: a request head must arrive within
HTTP_HEADER_TIMEOUT_SECONDS, a body may pause at most HTTP_BODY_IDLE_TIMEOUT_SECONDS between
chunks, and an upload must arrive before its URL expires (plus a grace). Raw sockets against the
server `stockhub serve` runs (api/server.py); meanwhile everyone else is answered. Both databases."""

from __future__ import annotations

import socket
import threading
import time
from urllib.parse import urlsplit

import pytest

from stockhub.settings import Settings
from support import upload, upload_and_wait

STOCK = b"barcode,price,quantity\n9780141383743,6.99,3\n"


@pytest.fixture
def settings(database_url, tmp_path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data", database_url=database_url, secret_key="test-secret", worker_poll_seconds=0.2,
        http_header_timeout_seconds=1, http_body_idle_timeout_seconds=1, http_body_timeout_seconds=2,
        upload_url_ttl_seconds=3, upload_url_grace_seconds=1,
    )  # fmt: skip


def connect(server) -> socket.socket:
    address = urlsplit(server.url)
    return socket.create_connection((address.hostname, address.port), timeout=10)


def until_closed(sock: socket.socket, timeout: float = 10) -> tuple[bytes, float]:
    """What the server sends until it closes the connection, and when it closed (monotonic)."""
    sock.settimeout(timeout)
    got = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            return got, time.monotonic()
        got += chunk


def drip(sock: socket.socket, data: bytes, every: float, stop: threading.Event) -> None:
    for byte in data:
        if stop.wait(every):
            return
        try:
            sock.sendall(bytes([byte]))
        except OSError:
            return


def uploads_of(client, tenant) -> list:
    return client.get(f"/v1/stores/{tenant.store}/uploads", headers=tenant.auth).json()["items"]


def put_head(put_url: str, length: int) -> bytes:
    address = urlsplit(put_url)
    return (
        f"PUT {address.path}?{address.query} HTTP/1.1\r\nHost: {address.netloc}\r\n"
        f"Content-Type: text/csv\r\nContent-Length: {length}\r\n\r\n"
    ).encode()


def test_half_sent_request_heads_are_closed_while_others_are_served(server, client, tenant):
    stop = threading.Event()
    started = time.monotonic()
    half_sent = [connect(server) for _ in range(30)]
    for sock in half_sent:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    silent = connect(server)  # connects and sends nothing
    dripping = connect(server)  # sends its head a byte at a time: the limit is on the whole head
    threading.Thread(target=drip, args=(dripping, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" * 10, 0.2, stop), daemon=True).start()
    try:
        for _ in range(5):  # everyone else is answered meanwhile, at once
            asked = time.monotonic()
            assert client.get("/healthz").status_code == 200
            assert time.monotonic() - asked < 1
        assert upload_and_wait(client, tenant, STOCK)["status"] == "applied"
        for sock in [*half_sent, dripping]:
            answer, closed_at = until_closed(sock)
            assert answer.startswith(b"HTTP/1.1 408 "), answer
            assert closed_at - started < 4
        answer, closed_at = until_closed(silent)
        assert answer == b"" and closed_at - started < 4
    finally:
        stop.set()
        for sock in [*half_sent, silent, dripping]:
            sock.close()


def test_a_stalled_body_is_cut_and_nothing_is_applied(server, client, tenant):
    put_url = client.get(f"/upload/{tenant.upload_key}", params={"type": "stock"}).text
    sock = connect(server)
    try:
        sock.sendall(put_head(put_url, len(STOCK) + 1000) + STOCK)  # then nothing more
        sent = time.monotonic()
        answer, closed_at = until_closed(sock)
        assert answer.startswith(b"HTTP/1.1 408 ") and closed_at - sent < 3, answer
    finally:
        sock.close()
    assert client.get("/healthz").status_code == 200
    assert uploads_of(client, tenant) == []
    assert list((server.hub.settings.upload_dir / "incoming").iterdir()) == []  # the partial file is gone


def test_a_body_dripping_under_the_idle_timeout_is_cut_at_the_body_timeout(server, client, tenant):
    stop = threading.Event()
    sock = connect(server)
    try:
        head = f"POST /v1/orders HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {tenant.token}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
        sock.sendall(head.encode())
        sent = time.monotonic()
        # a byte every 0.3 s: never idle for the 1 s body timeout, but the whole body takes 5 minutes
        threading.Thread(target=drip, args=(sock, b"{" + b" " * 999, 0.3, stop), daemon=True).start()
        for _ in range(3):
            assert client.get("/healthz").status_code == 200
        answer, closed_at = until_closed(sock)
    finally:
        stop.set()
        sock.close()
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert 1.5 <= closed_at - sent < 3.5
    assert client.get("/v1/orders", headers=tenant.auth).json()["items"] == []


def test_an_upload_dripping_past_its_url_expiry_is_cut_and_nothing_is_applied(server, client, tenant):
    put_url = client.get(f"/upload/{tenant.upload_key}", params={"type": "stock"}).text
    expires = int(dict(part.split("=") for part in urlsplit(put_url).query.split("&"))["expires"])
    stop = threading.Event()
    sock = connect(server)
    try:
        sock.sendall(put_head(put_url, 1000))
        # a byte every 0.3 s: never idle for the 1 s body timeout, but 1000 bytes take 5 minutes
        threading.Thread(target=drip, args=(sock, b"x" * 1000, 0.3, stop), daemon=True).start()
        answer, _ = until_closed(sock)
        cut_at = time.time()
    finally:
        stop.set()
        sock.close()
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert b"did not arrive before the upload URL expired" in answer
    assert expires + 1 - 0.5 <= cut_at < expires + 1 + 3  # at the expiry plus the grace (and a drain of the rest)
    assert uploads_of(client, tenant) == []
    # a fresh URL works as ever
    assert upload(client, tenant.upload_key, STOCK)["status"] == "received"
