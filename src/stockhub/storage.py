"""Where files live: raw uploads, upload logs and the stores' FTP folders, behind one interface.

Callers name a file by a *key*, a relative path such as `uploads/<store>/<name>` or
`ftp/<store id>/upload_log.txt`, never by a local path, so the same code runs on a local folder
(the embedded default, under `data_dir`) or on S3-compatible object storage (`S3Storage`, boto3),
chosen by `STOCKHUB_STORAGE_URL` (`s3://bucket/prefix`, with `STOCKHUB_S3_ENDPOINT_URL` for a
server other than AWS).

The contract (tests/unit/test_storage.py holds every backend to it):

- `writer(key)` streams a file in; it appears, whole and durable (it survives a crash), only
  when `commit()` returns, replacing any file of that key at once; an uncommitted writer
  leaves nothing behind. `put(key, data)` is the one-shot form.
- `open(key)` reads a file as a stream (FileNotFoundError when there is none; `local_copy(key)`
  a local path to it, for readers that want one), `stat(key)` its size and
  time or None, `delete(key)` removes it (absent is fine), `list(folder)` the files under a
  folder ("" all), at any depth, in key order.

The FTP gateway serves each store's folder `ftp/<store id>` from here too (gateways/ftp_fs.py,
a pyftpdlib AbstractedFS over this interface), spooling a transfer in progress to a local
temporary file: with any backend, what FTP lists is what stockhub put.
"""

from __future__ import annotations

import errno
import io
import os
import secrets
import shutil
import stat
import tempfile
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlsplit
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

    @abstractmethod
    def check(self) -> None:
        """Raise OSError (saying why) unless the storage answers and takes files: for readiness checks."""

    def read_bytes(self, key: str) -> bytes:
        with self.open(key) as file:
            return file.read()

    @contextmanager
    def local_copy(self, key: str) -> Iterator[Path]:
        """A local file with the key's content, for a reader that wants a path (the parsing sandbox):
        streamed down to a temporary file, removed afterwards (a local backend gives its own file)."""
        with self.open(key) as source, tempfile.NamedTemporaryFile(prefix="stockhub-", suffix=".spool") as copy:
            shutil.copyfileobj(source, copy, _CHUNK)
            copy.flush()
            yield Path(copy.name)

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

    @contextmanager
    def local_copy(self, key: str) -> Iterator[Path]:
        path = self.path(key)
        if not path.is_file():
            raise FileNotFoundError(errno.ENOENT, "no such file", key)
        yield path

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

    def check(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise PermissionError(errno.EACCES, "the storage folder is not writable", str(self.root))


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


_boto_lock = threading.Lock()
_boto_session = None


class S3Storage(Storage):
    """Files as objects in an S3-compatible bucket (AWS S3, MinIO, Ceph, ...), under `prefix`.

    Credentials and region come from the usual AWS settings (AWS_ACCESS_KEY_ID,
    AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_PROFILE, AWS_DEFAULT_REGION, instance roles);
    `endpoint_url` points at a server other than AWS. A file is streamed in as a multipart upload
    of `part_size` parts (one PUT when smaller), which S3 shows only once completed: whole, and
    never a part. Reads stream the object (ranged GETs after a seek, pinned to the ETag first
    seen), so no file is held whole in memory.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        endpoint_url: str | None = None,
        region: str | None = None,
        addressing_style: str | None = None,
        part_size: int = 8 * 1024 * 1024,
    ):
        import boto3
        from botocore.config import Config

        self.bucket, self.prefix, self.part_size = bucket, prefix.strip("/") + "/" if prefix.strip("/") else "", part_size
        config = Config(
            s3={"addressing_style": addressing_style or ("path" if endpoint_url else "auto")},
            retries={"mode": "standard", "max_attempts": 5},
            max_pool_connections=32,
            connect_timeout=10,
            read_timeout=60,
        )
        with _boto_lock:  # one session (its loaded service models) for every client; making one is not thread-safe
            global _boto_session
            if _boto_session is None:
                _boto_session = boto3.session.Session()
            self.client = _boto_session.client("s3", endpoint_url=endpoint_url, region_name=region, config=config)

    def __repr__(self) -> str:
        return f"S3Storage(s3://{self.bucket}/{self.prefix})"

    def object_key(self, key: str) -> str:
        return self.prefix + check_key(key)

    def writer(self, key: str) -> Writer:
        return _S3Writer(self, self.object_key(key))

    def open(self, key: str) -> BinaryIO:
        return io.BufferedReader(_S3Reader(self, self.object_key(key), key), buffer_size=256 * 1024)

    def stat(self, key: str) -> Stored | None:
        name = self.object_key(key)
        try:
            with _s3_errors(name):
                head = self.client.head_object(Bucket=self.bucket, Key=name)
        except FileNotFoundError:
            return None
        return Stored(key, head["ContentLength"], head["LastModified"].astimezone(UTC))

    def delete(self, key: str) -> None:
        name = self.object_key(key)
        with _s3_errors(name):
            self.client.delete_object(Bucket=self.bucket, Key=name)

    def list(self, folder: str) -> list[Stored]:
        prefix = self.object_key(folder) + "/" if folder else self.prefix
        found = []
        with _s3_errors(prefix):
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    found.append(Stored(item["Key"][len(self.prefix) :], item["Size"], item["LastModified"].astimezone(UTC)))
        return sorted(found, key=lambda stored: stored.key)

    def check(self) -> None:
        try:
            with _s3_errors(self.bucket):
                self.client.head_bucket(Bucket=self.bucket)
        except FileNotFoundError:
            raise FileNotFoundError(errno.ENOENT, "no such bucket", self.bucket) from None


class _S3Writer(Writer):
    def __init__(self, storage: S3Storage, name: str):
        self.storage, self.name = storage, name
        self.buffer = bytearray()
        self.upload_id: str | None = None
        self.parts: list[dict] = []
        self.done = False

    def write(self, data: bytes) -> None:
        self.buffer += data
        self.size += len(data)
        while len(self.buffer) >= self.storage.part_size:
            self._send_part(self.storage.part_size)

    def _send_part(self, length: int) -> None:
        s3, bucket = self.storage.client, self.storage.bucket
        with _s3_errors(self.name):
            if self.upload_id is None:
                self.upload_id = s3.create_multipart_upload(Bucket=bucket, Key=self.name)["UploadId"]
            number = len(self.parts) + 1
            body = bytes(self.buffer[:length])
            del self.buffer[:length]
            sent = s3.upload_part(Bucket=bucket, Key=self.name, UploadId=self.upload_id, PartNumber=number, Body=body)
        self.parts.append({"ETag": sent["ETag"], "PartNumber": number})

    def commit(self) -> None:
        s3, bucket = self.storage.client, self.storage.bucket
        if self.upload_id is None:
            with _s3_errors(self.name):
                s3.put_object(Bucket=bucket, Key=self.name, Body=bytes(self.buffer))
        else:
            if self.buffer:
                self._send_part(len(self.buffer))
            with _s3_errors(self.name):
                s3.complete_multipart_upload(
                    Bucket=bucket, Key=self.name, UploadId=self.upload_id, MultipartUpload={"Parts": self.parts}
                )
        self.buffer.clear()
        self.done = True

    def abort(self) -> None:
        if self.done:
            return
        self.done = True
        self.buffer.clear()
        if self.upload_id is not None:
            try:
                self.storage.client.abort_multipart_upload(Bucket=self.storage.bucket, Key=self.name, UploadId=self.upload_id)
            except Exception:  # a leftover part is the bucket's lifecycle rule's to clear, not a reason to fail
                pass


class _S3Reader(io.RawIOBase):
    """An object read as a stream; a seek starts a ranged GET at the new position on the next read."""

    def __init__(self, storage: S3Storage, name: str, key: str):
        self.storage, self.object_name, self.name = storage, name, key
        self.position, self.body, self.etag = 0, None, None
        self._start()  # FileNotFoundError now, not at the first read

    def _start(self) -> None:
        request = {"Bucket": self.storage.bucket, "Key": self.object_name}
        if self.position:
            request["Range"] = f"bytes={self.position}-"
        if self.etag:
            request["IfMatch"] = self.etag  # the same version throughout, never a mix of two
        with _s3_errors(self.object_name):
            got = self.storage.client.get_object(**request)
        self.etag = got["ETag"]
        self.length = int(got["ContentRange"].rsplit("/", 1)[1]) if "ContentRange" in got else got["ContentLength"]
        self.body = got["Body"]

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self.body is None:
            if self.position >= self.length:
                return 0
            self._start()
        with _s3_errors(self.object_name):
            data = self.body.read(len(buffer))
        buffer[: len(data)] = data
        self.position += len(data)
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        target = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.length}[whence] + offset
        if target < 0:
            raise ValueError(f"negative seek position {target}")
        if target != self.position:
            self._drop_body()
            self.position = target
        return self.position

    def tell(self) -> int:
        return self.position

    def _drop_body(self) -> None:
        if self.body is not None:
            self.body.close()
            self.body = None

    def close(self) -> None:
        self._drop_body()
        super().close()


class _s3_errors:
    """botocore's errors as the OSErrors callers of a storage expect: a missing object is
    FileNotFoundError, anything else (no bucket, denied, unreachable) an OSError naming it."""

    def __init__(self, name: str):
        self.name = name

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, error, traceback) -> bool:
        if error is None or isinstance(error, OSError):
            return False
        from botocore.exceptions import BotoCoreError, ClientError

        if isinstance(error, ClientError):
            code = str(error.response.get("Error", {}).get("Code", ""))
            if code in ("NoSuchKey", "404", "NotFound"):
                raise FileNotFoundError(errno.ENOENT, "no such object", self.name) from error
            raise OSError(errno.EIO, f"object storage refused: {error}", self.name) from error
        if isinstance(error, BotoCoreError):
            raise OSError(errno.EIO, f"object storage unreachable: {error}", self.name) from error
        return False


def from_url(url: str | None, data_dir: Path, **s3_options) -> Storage:
    """`STOCKHUB_STORAGE_URL`: unset (a local folder, the data folder), `file:///path`, or
    `s3://bucket/prefix` (`s3_options`: endpoint_url, region, addressing_style)."""
    if not url:
        return LocalStorage(data_dir)
    parts = urlsplit(url)
    if parts.scheme == "file":
        return LocalStorage(Path(url2pathname(parts.path)))
    if parts.scheme == "s3":
        if not parts.netloc:
            raise ValueError(f"storage_url {url!r}: name the bucket, s3://bucket or s3://bucket/prefix")
        return S3Storage(parts.netloc, unquote(parts.path), **{k: v for k, v in s3_options.items() if v})
    raise ValueError(f"storage_url {url!r}: file:///path (a local folder) or s3://bucket/prefix (S3-compatible object storage)")
