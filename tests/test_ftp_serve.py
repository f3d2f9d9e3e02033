"""`stockhub serve --demo` runs the FTP gateway beside the API, with a self-signed certificate for FTPS."""

from __future__ import annotations

import subprocess
import time

import pytest

from test_serve import Served, demo_credentials


def curl(*args: str) -> str:
    return subprocess.run(["curl", "-sS", "--max-time", "30", *args], capture_output=True, text=True, check=True, timeout=60).stdout


def _log(base: str) -> str:
    try:
        return curl("--ssl-reqd", "-k", base + "upload_log.txt")
    except subprocess.CalledProcessError:
        return ""  # the worker writes it just after applying the upload


@pytest.mark.slow
def test_serve_demo_takes_stock_files_over_ftp_and_ftps(tmp_path):
    served = Served(tmp_path / "data", "--demo")
    try:
        store, key, token = demo_credentials(served.output())
        assert f"ftp://apikey:{key}@127.0.0.1:{served.ftp_port}/" in served.output()
        assert (tmp_path / "data" / "tls" / "ftp-cert.pem").exists()
        base = f"ftp://apikey:{key}@127.0.0.1:{served.ftp_port}/"
        for options, quantity in (([], 3), (["--ssl-reqd", "-k"], 5)):
            (tmp_path / "stock.csv").write_text(f"barcode,price,quantity\n9780141383743,6.99,{quantity}\n")
            curl(*options, "-T", str(tmp_path / "stock.csv"), base)
            deadline = time.monotonic() + 30
            while f'"on_hand":{quantity}' not in curl("-H", f"Authorization: Bearer {token}", f"{served.url}/v1/stores/{store}/stock/9780141383743"):
                assert time.monotonic() < deadline, served.output()
                time.sleep(0.1)
        deadline = time.monotonic() + 30
        while "status:    applied" not in (log := _log(base)) or "lines:     1" not in log:
            assert time.monotonic() < deadline, log
            time.sleep(0.1)
        assert "file:      stock.csv" in log and "received over ftp" in log
    finally:
        served.stop()
