"""Where files live: raw uploads, upload logs and the stores' FTP folders, behind one interface.

Callers name a file by a *key*, a relative path such as `uploads/<store>/<name>` or
`ftp/<store id>/upload_log.txt`, never by a local path, so the same code runs on a local folder
(the embedded default, under `data_dir`) or on S3-compatible object storage (issue 15), chosen
by `STOCKHUB_STORAGE_URL`.

The contract (tests/unit/test_storage.py holds every backend to it):

- `writer(key)` streams a file in; it appears, whole and durable (it survives a crash), only
  when `commit()` returns, replacing any file of that key at once; an uncommitted writer
  leaves nothing behind. `put(key, data)` is the one-shot form.
- `open(key)` reads a file (FileNotFoundError when there is none), `stat(key)` its size and
  time or None, `delete(key)` removes it (absent is fine), `list(folder)` the files under a
  folder ("" all), at any depth, in key order.

The FTP gateway serves each store's folder `ftp/<store id>` from here too (gateways/ftp_fs.py,
a pyftpdlib AbstractedFS over this interface), spooling a transfer in progress to a local
temporary file: with any backend, what FTP lists is what stockhub put.
"""

from __future__ import annotations

import os
import secrets
import stat
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit
from urllib.request import url2pathname

_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Stored:
    key: str
    size: int
    modified: datetime


def check_key(key: str) -> str:
    """A key is relative, `/`-separated, without empty, `.` or `..` parts."""
    parts = key.split("/")
    if not key or key.startswith("/") or "\\" in key or "\0" in key or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"not a storage key: {key!r}")
    return key


class Writer(ABC):
    """A file being written: nothing of it is visible until `commit()`; leaving the block without
    committing (an error, a refused size) throws it away."""

    size = 0

    @abstractmethod
    def write(self, data: bytes) -> None: ...

    @abstractmethod
    def commit(self) -> None: ...

    @abstractmethod
    def abort(self) -> None: ...

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, *exc) -> None:
        self.abort()  # a no-op once committed


class Storage(ABC):
    @abstractmethod
    def writer(self, key: str) -> Writer: ...

    @abstractmethod
    def open(self, key: str) -> BinaryIO: ...

    @abstractmethod
    def stat(self, key: str) -> Stored | None: ...

    @abstractmethod
    def delete(self, key: str) -> None: ...

    @abstractmethod
    def list(self, folder: str) -> list[Stored]: ...

    def put(self, key: str, data: bytes | BinaryIO) -> int:
        with self.writer(key) as out:
            if isinstance(data, bytes):
                out.write(data)
            else:
                while chunk := data.read(_CHUNK):
                    out.write(chunk)
            out.commit()
            return out.size

    def read_bytes(self, key: str) -> bytes:
        with self.open(key) as file:
            return file.read()

    def local_folder(self, folder: str = "") -> Path | None:
        """The local directory holding `folder` ("" the root), for a backend that has one (migrating old local paths)."""
        return None


class LocalStorage(Storage):
    """Files under a local folder. A file is written under `.partial/` beside the others (same
    file system), fsynced, renamed into place and its folder fsynced: atomic and durable."""

    PARTIAL = ".partial"

    def __init__(self, root: Path):
        self.root = Path(root).resolve()

    def path(self, key: str) -> Path:
        return self.root / check_key(key)

    def writer(self, key: str) -> Writer:
        target = self.path(key)
        partial = self.root / self.PARTIAL
        partial.mkdir(parents=True, exist_ok=True)
        return _LocalWriter(target, partial / secrets.token_hex(16))

    def open(self, key: str) -> BinaryIO:
        return open(self.path(key), "rb")

    def stat(self, key: str) -> Stored | None:
        try:
            info = self.path(key).stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        return None if not stat.S_ISREG(info.st_mode) else Stored(key, info.st_size, datetime.fromtimestamp(info.st_mtime, UTC))

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def list(self, folder: str) -> list[Stored]:
        base = self.path(folder) if folder else self.root
        found = []
        for directory, folders, files in os.walk(base):
            folders[:] = sorted(f for f in folders if not (directory == str(self.root) and f == self.PARTIAL))
            for name in sorted(files):
                key = Path(directory, name).relative_to(self.root).as_posix()
                if (stored := self.stat(key)) is not None:
                    found.append(stored)
        return sorted(found, key=lambda stored: stored.key)

    def local_folder(self, folder: str = "") -> Path:
        return self.path(folder) if folder else self.root


class _LocalWriter(Writer):
    def __init__(self, target: Path, partial: Path):
        self.target, self.partial = target, partial
        self.file = open(partial, "wb")
        self.done = False

    def write(self, data: bytes) -> None:
        self.file.write(data)
        self.size += len(data)

    def commit(self) -> None:
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        self.target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self.partial, self.target)
        _fsync_dir(self.target.parent)
        self.done = True

    def abort(self) -> None:
        if not self.done:
            self.file.close()
            self.partial.unlink(missing_ok=True)
            self.done = True


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def from_url(url: str | None, data_dir: Path) -> Storage:
    """`STOCKHUB_STORAGE_URL`: unset (a local folder, the data folder) or `file:///path`."""
    if not url:
        return LocalStorage(data_dir)
    parts = urlsplit(url)
    if parts.scheme == "file":
        return LocalStorage(Path(url2pathname(parts.path)))
    raise ValueError(f"storage_url {url!r}: only file:// (a local folder) is supported")

