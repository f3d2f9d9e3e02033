"""A store's FTP folder served from the file storage (stockhub.storage), for pyftpdlib.

pyftpdlib asks an `AbstractedFS` for everything it does with files; this one answers from the
storage interface, so the gateway lists, serves and keeps files wherever storage keeps them (a
local folder, or object storage) and needs no directory of its own. Paths are virtual: the
root is `/ftp/<store id>`, the storage key of the store's folder with a leading `/`.

- A folder is any key prefix with files under it; `mkdir` keeps an empty one with a hidden
  `.folder` marker. Nothing here is a link.
- A file being uploaded is spooled to a local temporary file (`Incoming`): the gateway takes it
  in when the transfer completes (gateways/ftp.py), then drops the spool. Resuming (REST before
  STOR), appending, deleting, renaming and chmod are refused.
"""

from __future__ import annotations

import errno
import io
import os
import stat
import tempfile
import time

from pyftpdlib.filesystems import AbstractedFS

from stockhub.storage import Storage

FOLDER_MARKER = ".folder"


class Incoming(io.FileIO):
    """An upload being received: a local temporary file, and the key it was sent to."""

    key: str


def _missing(path: str) -> OSError:
    return FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)


def _refused(path: str) -> OSError:
    return PermissionError(errno.EPERM, "not allowed here", path)


class StorageFS(AbstractedFS):
    def __init__(self, root: str, cmd_channel):
        super().__init__(root, cmd_channel)
        self.storage: Storage = cmd_channel.hub.storage

    def _key(self, path: str) -> str | None:
        """The storage key of a virtual path inside the root; None outside it."""
        path = os.path.normpath(path)
        if path != self.root and not path.startswith(self.root + "/"):
            return None
        return path.lstrip("/")

    def _entries(self, path: str) -> dict[str, os.stat_result]:
        """A folder's direct children: name → stat."""
        key = self._key(path)
        if key is None:
            return {}
        children: dict[str, os.stat_result] = {}
        for stored in self.storage.list(key):
            name, _, rest = stored.key[len(key) + 1 :].partition("/")
            if rest:
                children.setdefault(name, _folder_stat())
            elif name != FOLDER_MARKER:
                children[name] = _file_stat(stored.size, stored.modified.timestamp())
        return children

    # --- paths: virtual, no links
    def realpath(self, path: str) -> str:
        return os.path.normpath(path)

    def validpath(self, path: str) -> bool:
        return self._key(path) is not None

    def islink(self, path: str) -> bool:
        return False

    def readlink(self, path: str) -> str:
        raise _missing(path)

    def isfile(self, path: str) -> bool:
        key = self._key(path)
        return key is not None and path != self.root and self.storage.stat(key) is not None

    def isdir(self, path: str) -> bool:
        key = self._key(path)
        return key is not None and (os.path.normpath(path) == self.root or bool(self.storage.list(key)))

    def lexists(self, path: str) -> bool:
        return self.isfile(path) or self.isdir(path)

    def stat(self, path: str) -> os.stat_result:
        key = self._key(path)
        if self.isdir(path):
            return _folder_stat()
        stored = self.storage.stat(key) if key is not None else None
        if stored is None:
            raise _missing(path)
        return _file_stat(stored.size, stored.modified.timestamp())

    lstat = stat

    def getsize(self, path: str) -> int:
        return self.stat(path).st_size

    def getmtime(self, path: str) -> float:
        return self.stat(path).st_mtime

    # --- folders
    def chdir(self, path: str) -> None:
        if not self.isdir(path):
            raise _missing(path)
        self.cwd = self.fs2ftp(path)

    def mkdir(self, path: str) -> None:
        if self.lexists(path):
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), path)
        if not self.isdir(os.path.dirname(path)):
            raise _missing(path)
        self.storage.put(f"{self._key(path)}/{FOLDER_MARKER}", b"")

    def listdir(self, path: str) -> list[str]:
        if not self.isdir(path):
            raise _missing(path)
        return sorted(self._entries(path))

    listdirinfo = listdir

    # --- files
    def open(self, filename: str, mode: str):
        key = self._key(filename)
        if key is None:
            raise _missing(filename)
        if mode == "rb":
            try:
                return self.storage.open(key)
            except (FileNotFoundError, IsADirectoryError):
                raise _missing(filename) from None
        if mode != "wb":  # resuming or appending: never part of an upload
            raise _refused(filename)
        if not self.isdir(os.path.dirname(filename)) or self.isdir(filename):
            raise _missing(filename)
        fd, spool = tempfile.mkstemp(prefix="stockhub-ftp-")
        os.close(fd)
        incoming = Incoming(spool, "wb")
        incoming.key = key
        return incoming

    def mkstemp(self, suffix="", prefix="", dir=None, mode="wb"):
        raise _refused(dir or self.root)

    def remove(self, path: str) -> None:
        raise _refused(path)

    def rmdir(self, path: str) -> None:
        raise _refused(path)

    def rename(self, src: str, dst: str) -> None:
        raise _refused(src)

    def chmod(self, path: str, mode) -> None:
        raise _refused(path)

    def utime(self, path: str, timeval) -> None:
        raise _refused(path)

    def get_user_by_uid(self, uid) -> str:
        return "stockhub"

    def get_group_by_gid(self, gid) -> str:
        return "stockhub"


def _file_stat(size: int, modified: float) -> os.stat_result:
    return os.stat_result((stat.S_IFREG | 0o444, 0, 0, 1, 0, 0, size, modified, modified, modified))


def _folder_stat() -> os.stat_result:
    now = time.time()
    return os.stat_result((stat.S_IFDIR | 0o555, 0, 0, 1, 0, 0, 0, now, now, now))
