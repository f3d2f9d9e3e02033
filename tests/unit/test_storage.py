"""The file-storage contract (stockhub.storage), held against every backend: a new backend (S3,
issue 15) joins by adding itself to BACKENDS."""

from __future__ import annotations

import io
import threading

import pytest

from stockhub.storage import LocalStorage, from_url

BACKENDS = {"local": lambda tmp_path: LocalStorage(tmp_path / "files")}


@pytest.fixture(params=sorted(BACKENDS))
def storage(request, tmp_path):
    return BACKENDS[request.param](tmp_path)


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


@pytest.mark.parametrize("key", ["", "/etc/passwd", "../secret_key", "uploads/../../x", "uploads//x", "uploads/./x", "a\\b", "a\0b"])
def test_a_key_outside_the_storage_is_refused(storage, key):
    with pytest.raises(ValueError):
        storage.put(key, b"x")
    with pytest.raises(ValueError):
        storage.open(key)


def test_storage_url_chooses_the_backend(tmp_path):
    assert from_url(None, tmp_path).local_folder() == tmp_path.resolve()
    assert from_url(f"file://{tmp_path}/elsewhere", tmp_path).local_folder() == (tmp_path / "elsewhere").resolve()
    with pytest.raises(ValueError, match="only file://"):
        from_url("s3://bucket/prefix", tmp_path)
