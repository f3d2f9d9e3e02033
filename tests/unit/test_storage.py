"""The file-storage contract (stockhub.storage), held against every backend: the local folder and
S3-compatible object storage on a real S3 server (moto in server mode); a new backend joins by
adding itself to BACKENDS."""

from __future__ import annotations

import io
import threading

import pytest

from stockhub.storage import LocalStorage, S3Storage, from_url

BACKENDS = {
    "local": lambda request, tmp_path: LocalStorage(tmp_path / "files"),
    "s3": lambda request, tmp_path: from_url(
        request.getfixturevalue("s3_storage_url"), tmp_path, endpoint_url=request.getfixturevalue("s3_server").endpoint_url
    ),
}


@pytest.fixture(params=sorted(BACKENDS))
def storage(request, tmp_path):
    return BACKENDS[request.param](request, tmp_path)


def test_a_put_file_reads_back_whole(storage):
    body = bytes(range(256)) * 5000  # over one copy chunk
    assert storage.put("uploads/7/stock.csv", body) == len(body)
    assert storage.read_bytes("uploads/7/stock.csv") == body
    with storage.open("uploads/7/stock.csv") as file:
        assert file.read(3) == b"\x00\x01\x02"
    stored = storage.stat("uploads/7/stock.csv")
    assert (stored.key, stored.size) == ("uploads/7/stock.csv", len(body))


def test_put_takes_a_stream_and_replaces_the_file_of_its_key(storage):
    storage.put("ftp/str_a/upload_log.txt", b"first, longer text")
    storage.put("ftp/str_a/upload_log.txt", io.BytesIO(b"second"))
    assert storage.read_bytes("ftp/str_a/upload_log.txt") == b"second"


def test_nothing_appears_until_commit_and_an_abandoned_writer_leaves_nothing(storage):
    with storage.writer("uploads/1/a") as out:
        out.write(b"half a file")
        assert storage.stat("uploads/1/a") is None
        assert storage.list("uploads") == []
        assert storage.list("") == []  # the whole storage: no part of a file shows
    assert storage.stat("uploads/1/a") is None

    with pytest.raises(RuntimeError), storage.writer("uploads/1/b") as out:
        out.write(b"refused half-way")
        raise RuntimeError("too large")
    assert storage.list("uploads") == []

    with storage.writer("uploads/1/c") as out:
        out.write(b"all ")
        out.write(b"of it")
        out.commit()
    assert storage.read_bytes("uploads/1/c") == b"all of it"
    assert [s.key for s in storage.list("uploads")] == ["uploads/1/c"]


def test_a_reader_sees_the_old_file_or_the_new_one_never_a_part(storage):
    old, new = b"o" * 200_000, b"n" * 300_000
    storage.put("ftp/s/log", old)
    seen, stop = set(), threading.Event()

    def read():
        while not stop.is_set():
            seen.add(storage.read_bytes("ftp/s/log"))

    reader = threading.Thread(target=read)
    reader.start()
    for _ in range(20):
        storage.put("ftp/s/log", new)
        storage.put("ftp/s/log", old)
    stop.set()
    reader.join()
    assert seen <= {old, new}


def test_list_is_per_folder_at_any_depth_and_delete_removes(storage):
    for key in ["uploads/1/x", "uploads/1/deep/y", "uploads/10/z", "ftp/s/upload_log.txt"]:
        storage.put(key, key.encode())
    assert [s.key for s in storage.list("uploads/1")] == ["uploads/1/deep/y", "uploads/1/x"]
    assert {s.key for s in storage.list("uploads")} == {"uploads/1/x", "uploads/1/deep/y", "uploads/10/z"}
    assert storage.list("nothing/here") == []
    assert {s.size for s in storage.list("uploads/10")} == {len(b"uploads/10/z")}
    storage.delete("uploads/1/x")
    storage.delete("uploads/1/x")  # absent is fine
    assert storage.stat("uploads/1/x") is None
    with pytest.raises(FileNotFoundError):
        storage.open("uploads/1/x")
    assert [s.key for s in storage.list("uploads/1")] == ["uploads/1/deep/y"]


def test_a_working_storage_passes_its_check(storage):
    storage.check()  # raises OSError saying why when it cannot be used


@pytest.mark.parametrize("key", ["", "/etc/passwd", "../secret_key", "uploads/../../x", "uploads//x", "uploads/./x", "a\\b", "a\0b"])
def test_a_key_outside_the_storage_is_refused(storage, key):
    with pytest.raises(ValueError):
        storage.put(key, b"x")
    with pytest.raises(ValueError):
        storage.open(key)


def test_storage_url_chooses_the_backend(tmp_path):
    assert from_url(None, tmp_path).local_folder() == tmp_path.resolve()
    assert from_url(f"file://{tmp_path}/elsewhere", tmp_path).local_folder() == (tmp_path / "elsewhere").resolve()
    s3 = from_url("s3://bucket/some/prefix", tmp_path, endpoint_url="http://127.0.0.1:9", region="eu-west-1")
    assert isinstance(s3, S3Storage) and (s3.bucket, s3.prefix) == ("bucket", "some/prefix/") and s3.local_folder() is None
    assert from_url("s3://bucket", tmp_path, endpoint_url=None).prefix == ""
    for wrong in ("s3:///prefix", "ftp://host/x", "/srv/files"):
        with pytest.raises(ValueError, match="file:///path .* or s3://bucket|name the bucket"):
            from_url(wrong, tmp_path)


# --- S3: what a real server does with large files, seeks, missing objects and outages ---


@pytest.fixture
def s3(request, tmp_path, s3_server, s3_storage_url):
    storage = from_url(s3_storage_url, tmp_path, endpoint_url=s3_server.endpoint_url)
    storage.part_size = 5 * 1024 * 1024  # S3's smallest part
    return storage


def test_s3_a_large_file_goes_in_parts_and_reads_back_as_a_stream(s3):
    body = bytes(range(251)) * (12 * 1024 * 1024 // 251)  # 12 MB: three parts
    with s3.writer("uploads/1/big.csv") as out:
        for at in range(0, len(body), 1024 * 1024):
            out.write(body[at : at + 1024 * 1024])
            assert len(out.buffer) < s3.part_size  # never more than a part held in memory
        assert out.upload_id is not None and len(out.parts) == 2
        assert s3.stat("uploads/1/big.csv") is None  # a multipart upload shows only once completed
        out.commit()
    assert s3.stat("uploads/1/big.csv").size == len(body)
    with s3.open("uploads/1/big.csv") as file:
        assert file.read(1000) == body[:1000]
        file.seek(10_000_000)  # a ranged read from there (an FTP client resuming a download)
        assert file.read(500) == body[10_000_000:10_000_500]
        file.seek(-10, io.SEEK_END)
        assert file.read() == body[-10:]
        assert file.read(10) == b""
        file.seek(0)
        assert file.read() == body


def test_s3_an_abandoned_multipart_upload_leaves_no_parts_behind(s3):
    with pytest.raises(RuntimeError), s3.writer("uploads/1/half") as out:
        out.write(b"x" * (6 * 1024 * 1024))
        raise RuntimeError("client went away")
    assert s3.list("") == []
    assert s3.client.list_multipart_uploads(Bucket=s3.bucket).get("Uploads", []) == []


def test_s3_keys_live_under_the_prefix_and_missing_objects_are_file_not_found(s3):
    s3.put("ftp/str_a/upload_log.txt", b"log")
    names = [item["Key"] for item in s3.client.list_objects_v2(Bucket=s3.bucket)["Contents"]]
    assert names == ["stockhub/ftp/str_a/upload_log.txt"]
    with pytest.raises(FileNotFoundError):
        s3.open("ftp/str_a/other.txt")
    assert s3.stat("ftp/str_a") is None  # a folder is no file


def test_s3_an_unreachable_server_or_missing_bucket_is_an_os_error(tmp_path, s3_server):
    missing = from_url("s3://no-such-bucket/p", tmp_path, endpoint_url=s3_server.endpoint_url)
    with pytest.raises(OSError, match="object storage refused"):
        missing.put("a/b", b"x")
    with pytest.raises(FileNotFoundError, match="no such bucket"):
        missing.check()
    down = S3Storage("bucket", endpoint_url="http://127.0.0.1:9")
    with pytest.raises(OSError, match="object storage"):
        down.stat("a/b")


def test_the_object_storage_credentials_never_reach_the_parsing_sandbox(monkeypatch):
    from stockhub.feeds import sandbox

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "do-not-leak")
    monkeypatch.setenv("STOCKHUB_SECRET_KEY", "do-not-leak")
    child = sandbox._child_environment()  # what the child reading an untrusted file is started with
    assert "do-not-leak" not in child.values() and "PATH" in child
