"""The FTP gateway for tests: live on a free loopback port, beside the `server` fixture's API and worker.

Import the fixtures into a test module: `from ftp_support import ftp_gateway, tls_files`.
"""

from __future__ import annotations

import ftplib
import io
import ssl
import subprocess
import time
from dataclasses import replace

import pytest

from stockhub.gateways.ftp import FtpGateway
from stockhub.gateways.ftp_tls import ensure_self_signed
from support import wait_for_upload


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory):
    return ensure_self_signed(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def ftp_gateway(server, tls_files):
    """start(**setting overrides) → a running gateway on the server's database and worker."""
    started = []

    def start(**overrides) -> FtpGateway:
        cert, key = tls_files
        settings = server.hub.settings.model_copy(
            update={"ftp_tls_cert": cert, "ftp_tls_key": key, "ftp_login_failure_delay_seconds": 0.01} | overrides
        )
        gateway = FtpGateway(replace(server.hub, settings=settings), host="127.0.0.1", port=0)
        gateway.start()
        started.append(gateway)
        return gateway

    yield start
    for gateway in started:
        gateway.stop()


def connect(gateway: FtpGateway, key: str, *, tls: bool = False, passive: bool = True, user: str = "apikey") -> ftplib.FTP:
    if tls:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        ftp = ftplib.FTP_TLS(context=context, timeout=30)
    else:
        ftp = ftplib.FTP(timeout=30)
    ftp.connect("127.0.0.1", gateway.port)
    ftp.login(user, key)
    if tls:
        ftp.prot_p()
    ftp.set_pasv(passive)
    return ftp


def put(ftp: ftplib.FTP, name: str, body: bytes) -> str:
    return ftp.storbinary(f"STOR {name}", io.BytesIO(body))


def get(ftp: ftplib.FTP, name: str) -> bytes:
    out = io.BytesIO()
    ftp.retrbinary(f"RETR {name}", out.write)
    return out.getvalue()


def curl(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["curl", "-sS", "--max-time", "30", *args], capture_output=True, text=True, check=check, timeout=60)


def latest_upload(client, tenant) -> dict:
    items = client.get(f"/v1/stores/{tenant.store}/uploads", params={"limit": 1}, headers=tenant.auth).json()["items"]
    assert items, "no upload was recorded"
    return wait_for_upload(client, tenant, items[0]["id"])


def upload_log(gateway: FtpGateway, key: str, upload_id: str, timeout: float = 30) -> str:
    """upload_log.txt from the store's folder once it describes `upload_id`."""
    deadline = time.monotonic() + timeout
    while True:
        with connect(gateway, key) as ftp:
            if "upload_log.txt" in ftp.nlst():
                text = get(ftp, "upload_log.txt").decode()
                if upload_id in text:
                    return text
        assert time.monotonic() < deadline, "upload_log.txt never described the upload"
        time.sleep(0.05)
