"""The FTP gateway keeps and serves a store's folder through the file storage, wherever
STOCKHUB_STORAGE_URL puts it: nothing of it lives in the data folder."""

from __future__ import annotations

import pytest

from ftp_support import connect, ftp_gateway, get, latest_upload, put, tls_files, upload_log  # noqa: F401
from stockhub.jobs.worker import Worker
from stockhub.settings import Settings

BOOK = "9780141383743"
STOCK = f"barcode,price,quantity\n{BOOK},6.99,3\n".encode()


@pytest.fixture(params=["folder", "s3"])
def settings(request, database_url, tmp_path) -> Settings:
    """Files in another local folder, or in a bucket of a real S3 server (moto)."""
    if request.param == "s3":
        s3 = request.getfixturevalue("s3_server")
        where = {"storage_url": request.getfixturevalue("s3_storage_url"), "s3_endpoint_url": s3.endpoint_url}
    else:
        where = {"storage_url": f"file://{tmp_path}/files"}
    return Settings(data_dir=tmp_path / "data", database_url=database_url, secret_key="test-secret", worker_poll_seconds=0.2, **where)


def test_the_ftp_folder_is_the_storage_folder(client, server, tenant, ftp_gateway, tmp_path):
    storage, folder = server.hub.storage, f"ftp/{tenant.store}"
    server.worker.stop()  # the listing below is the folder as put: no upload_log.txt written yet
    storage.put(f"{folder}/notice.txt", b"put by key, e.g. by another node")
    gateway = ftp_gateway()
    with connect(gateway, tenant.upload_key) as ftp:
        assert put(ftp, "stock.csv", STOCK).startswith("226")
        assert ftp.mkd("archive") == "/archive"
        ftp.cwd("archive")
        assert ftp.pwd() == "/archive" and ftp.nlst() == []
        assert put(ftp, "old.csv", STOCK).startswith("226")  # any name in any folder is a stock file
        ftp.cwd("/")
        assert ftp.nlst() == ["archive", "notice.txt", "stock.csv"]
        assert get(ftp, "notice.txt") == b"put by key, e.g. by another node"
        assert ftp.size("stock.csv") == len(STOCK)
        listing: list[str] = []
        ftp.retrlines("LIST", listing.append)
        assert any(line.startswith("d") and line.endswith(" archive") for line in listing)
        assert any(line.startswith("-") and f" {len(STOCK)} " in line and line.endswith(" stock.csv") for line in listing)
        facts = dict(ftp.mlsd())
        assert facts["archive"]["type"] == "dir" and facts["stock.csv"]["size"] == str(len(STOCK))

    Worker(server.hub, name="after-the-listing").run_until_idle()
    record = latest_upload(client, tenant)
    assert record["status"] == "applied" and record["filename"] == "old.csv"
    text = upload_log(gateway, tenant.upload_key, record["id"])  # written by the worker, by key; served by FTP
    assert storage.read_bytes(f"{folder}/upload_log.txt").decode() == text
    assert storage.read_bytes(f"{folder}/stock.csv") == STOCK and storage.read_bytes(f"{folder}/archive/old.csv") == STOCK
    assert [storage.read_bytes(s.key) for s in storage.list("uploads")] == [STOCK, STOCK]  # the two uploads' raw files
    assert not (tmp_path / "data" / "ftp").exists() and not (tmp_path / "data" / "uploads").exists()
