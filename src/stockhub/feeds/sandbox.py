"""Reading an untrusted file in a child process with bounded memory and time.

The readers are native code (polars, calamine): a hostile file can make them abort the process
or allocate without bound. `read_isolated` runs them in `python -m stockhub.feeds.sandbox`,
limited to `memory_mb` of address space beyond what the idle reader maps (RLIMIT_AS) and to
`timeout_seconds` of wall time, so whatever the file does only ends the child; the caller gets
the parsed file or `ReaderFailed` saying why. Pulled XML and JSON documents are turned into
stock CSVs the same way (`run_isolated` with kind "document", feeds/documents.py).
The child answers with the parsed frames as Arrow IPC (no pickle crosses the boundary).
"""

from __future__ import annotations

import ctypes
import io
import json
import os
import resource
import signal
import struct
import subprocess
import sys
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import polars as pl

from stockhub.feeds.catalog_document import CatalogDocument, read_catalog_document
from stockhub.feeds.decode import Limits
from stockhub.feeds.product_file import ProductFile, read_product_file
from stockhub.feeds.stock_file import StockFile, read_stock_file

READERS = {
    "stock": (StockFile, read_stock_file),
    "products": (ProductFile, read_product_file),
    "catalog": (CatalogDocument, read_catalog_document),  # a catalog import's JSON or NDJSON document
}
_LENGTH = struct.Struct(">Q")


class ReaderFailed(Exception):
    """The reader died, ran out of memory or time on this file; str() is the reason for people."""


@dataclass(frozen=True)
class Sandbox:
    memory_mb: int = 2048
    timeout_seconds: float = 120.0
    limits: Limits = field(default_factory=Limits)


def read_isolated(kind: str, source: bytes | Path, options: dict, sandbox: Sandbox = Sandbox()) -> StockFile | ProductFile | CatalogDocument:
    """Parse `source` (the file's bytes, or its path) as a `kind` file in a limited child process.

    `options` are the reader's keyword arguments (default_currency, custom_identifiers, ...).
    """
    request = {"kind": kind, "options": options, "limits": asdict(sandbox.limits)}
    return _decode(kind, run_isolated(request, source, sandbox))


def run_isolated(request: dict, source: bytes | Path, sandbox: Sandbox = Sandbox(), subject: str = "file") -> bytes:
    """The child's answer to `request` (its `kind` says what the child does) about `source`,
    run with the sandbox's memory and time; ReaderFailed (saying why, about the `subject`) when
    the child dies, runs out of memory or out of time."""
    request = request | {"memory_mb": sandbox.memory_mb, "path": str(source) if isinstance(source, Path) else None}
    try:
        done = subprocess.run(
            [sys.executable, "-m", "stockhub.feeds.sandbox", json.dumps(request)],
            input=None if isinstance(source, Path) else source,
            stdin=subprocess.DEVNULL if isinstance(source, Path) else None,
            capture_output=True,
            timeout=sandbox.timeout_seconds,
            env=_child_environment(),
        )
    except subprocess.TimeoutExpired:
        raise ReaderFailed(f"the {subject} could not be read: the reader took longer than {sandbox.timeout_seconds:g} s") from None
    if done.returncode != 0:
        raise ReaderFailed(_failure(done.returncode, done.stderr[-4096:], sandbox, subject))
    return done.stdout


def _child_environment() -> dict[str, str]:
    """The server's environment without its settings and the object storage's credentials
    (secrets among them): the child needs none."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("STOCKHUB_", "AWS_"))} | {"RUST_BACKTRACE": "0"}


def _failure(code: int, stderr: bytes, sandbox: Sandbox, subject: str = "file") -> str:
    if b"memory allocation of" in stderr or b"MemoryError" in stderr or code == -signal.SIGKILL:
        return f"the {subject} could not be read: the reader ran out of memory (limit {sandbox.memory_mb} MB)"
    how = f"signal {signal.Signals(-code).name}" if code < 0 and -code in signal.valid_signals() else f"exit status {code}"
    return f"the {subject} could not be read: the reader crashed ({how})"


def _decode(kind: str, answer: bytes):
    parts, at = [], 0
    for _ in range(3):
        (size,) = _LENGTH.unpack_from(answer, at)
        parts.append(answer[at + _LENGTH.size : at + _LENGTH.size + size])
        at += _LENGTH.size + size
    meta = json.loads(parts[0])
    kind_type, _ = READERS[kind]
    extra = {name: meta[name] for name in _EXTRA if name in meta and name in {f.name for f in fields(kind_type)}}
    return kind_type(
        rows=pl.read_ipc(parts[1]),
        rejections=pl.read_ipc(parts[2]),
        line_count=meta["line_count"],
        superseded_count=meta["superseded_count"],
        warnings=tuple(meta["warnings"]),
        invalid_reason=meta["invalid_reason"],
        **extra,
    )


_EXTRA = ("skipped_count", "preset")  # what only some readers tell


def _encode(parsed) -> bytes:
    meta = {k: getattr(parsed, k) for k in ("line_count", "superseded_count", "warnings", "invalid_reason", *_EXTRA) if hasattr(parsed, k)}
    parts = [json.dumps(meta).encode()]
    for frame in (parsed.rows, parsed.rejections):
        buffer = io.BytesIO()
        frame.write_ipc(buffer)
        parts.append(buffer.getvalue())
    return b"".join(_LENGTH.pack(len(part)) + part for part in parts)


def _die_with_parent() -> None:
    """Linux: the child is killed when the process that started it dies (a kill -9 of the server)."""
    try:
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _address_space() -> int:
    """This process's mapped address space in bytes (Linux), 0 where unknown."""
    try:
        return int(Path("/proc/self/statm").read_text().split()[0]) * resource.getpagesize()
    except (OSError, ValueError, IndexError):
        return 0


def main() -> None:
    request = json.loads(sys.argv[1])
    _die_with_parent()
    if request["kind"] == "document":  # a pulled XML or JSON document to a stock CSV (feeds/documents.py)
        from stockhub.feeds.documents import answer_in_child

        work = lambda data: answer_in_child(data, request)  # noqa: E731
    else:
        _, read = READERS[request["kind"]]
        read_stock_file(b"barcode,price,quantity\n", default_currency="GBP")  # start polars' threads: mapped, barely used
        work = lambda data: _encode(read(data, limits=Limits(**request["limits"]), **request["options"]))  # noqa: E731
    # Libraries and thread stacks map ~1 GB that is hardly touched; the file may take memory_mb more.
    memory = _address_space() + request["memory_mb"] * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    data = Path(request["path"]).read_bytes() if request["path"] else sys.stdin.buffer.read()
    try:
        answer = work(data)
    except MemoryError:
        sys.stderr.write("MemoryError\n")
        sys.stderr.flush()
        os._exit(3)
    sys.stdout.buffer.write(answer)
    sys.stdout.buffer.flush()


if __name__ == "__main__":
    main()
