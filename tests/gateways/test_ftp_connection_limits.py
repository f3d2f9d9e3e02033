"""Idle and unauthenticated FTP connections cannot exhaust the gateway: one address holds at most
`FTP_MAX_CONNECTIONS_PER_ADDRESS` connections, and a connection that has not logged in within
`FTP_LOGIN_TIMEOUT_SECONDS` is closed."""

from __future__ import annotations

import ftplib
import socket
import time

from ftp_support import ftp_gateway, put, tls_files  # noqa: F401

STOCK = b"barcode,price,quantity\n9780141383743,6.99,3\n"


def open_idle(port: int, source: str = "127.0.0.1") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))
    return sock


def read_all(sock: socket.socket, timeout: float = 10) -> bytes:
    """Everything the server sends until it closes the connection (or `timeout`)."""
    sock.settimeout(timeout)
    got = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(4096)
        except TimeoutError:
            break
        if not chunk:
            return got + b"<closed>"
        got += chunk
    return got


def read_reply(sock: socket.socket) -> bytes:
    sock.settimeout(10)
    got = b""
    while not got.endswith(b"\r\n"):
        chunk = sock.recv(4096)
        if not chunk:
            break
        got += chunk
    return got


def test_one_address_cannot_hold_more_than_its_share_of_connections(tenant, ftp_gateway):
    gateway = ftp_gateway(ftp_max_connections_per_address=3, ftp_tls_cert=None, ftp_tls_key=None)
    held = [open_idle(gateway.port) for _ in range(3)]
    try:
        for sock in held:
            assert read_reply(sock).startswith(b"220")
        extra = [open_idle(gateway.port) for _ in range(5)]
        for sock in extra:
            answer = read_all(sock, timeout=5)
            assert answer.startswith(b"421 Too many connections from the same IP address"), answer
            assert answer.endswith(b"<closed>")
            sock.close()
        # another address still logs in and uploads while 127.0.0.1 holds its share
        with ftplib.FTP(timeout=30, source_address=("127.0.0.2", 0)) as ftp:
            ftp.connect("127.0.0.1", gateway.port)
            ftp.login("apikey", tenant.upload_key)
            assert put(ftp, "stock.csv", STOCK).startswith("226")
    finally:
        for sock in held:
            sock.close()
    # the address's slots are freed when its connections close
    time.sleep(0.3)
    with ftplib.FTP(timeout=30) as ftp:
        ftp.connect("127.0.0.1", gateway.port)
        ftp.login("apikey", tenant.upload_key)


def test_a_connection_that_does_not_log_in_in_time_is_closed(tenant, ftp_gateway):
    gateway = ftp_gateway(ftp_login_timeout_seconds=1.0, ftp_tls_cert=None, ftp_tls_key=None)
    idle = open_idle(gateway.port)
    assert read_reply(idle).startswith(b"220")
    started = time.monotonic()
    for _ in range(4):  # commands before login do not extend the deadline
        idle.sendall(b"NOOP\r\n")
        assert read_reply(idle).startswith(b"200")
        time.sleep(0.2)
    answer = read_all(idle, timeout=5)
    assert answer.startswith(b"421 Not logged in in time") and answer.endswith(b"<closed>"), answer
    assert time.monotonic() - started < 3
    idle.close()

    # a logged-in connection outlives the login deadline
    with ftplib.FTP(timeout=30) as ftp:
        ftp.connect("127.0.0.1", gateway.port)
        ftp.login("apikey", tenant.upload_key)
        time.sleep(1.5)
        assert ftp.pwd() == "/"
        assert put(ftp, "stock.csv", STOCK).startswith("226")
