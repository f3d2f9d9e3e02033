"""Reading an untrusted file in a child process with bounded memory and time.

The readers are native code (polars, calamine): a hostile file can make them abort the process
or allocate without bound. `read_isolated` runs them in `python -m stockhub.feeds.sandbox`,
limited to `memory_mb` of address space beyond what the idle reader maps (RLIMIT_AS) and to
`timeout_seconds` of wall time, so whatever the file does only ends the child; the caller gets
the parsed file or `ReaderFailed` saying why. Pulled XML and JSON documents are turned into
stock CSVs the same way (`run_isolated` with kind "document", feeds/documents.py).
The child writes the parsed frames as Arrow IPC files into a temporary directory the parent made
for the one request, and answers their summary as JSON on stdout (no pickle crosses the boundary).

The child is started warm: importing polars takes 0.2–1.8 s, more than parsing a small upload,
so each process keeps WARM_CHILDREN children pre-started (`prestart`; a worker calls it when it starts). The
child imports the readers and starts polars' threads, then waits for one request on its stdin;
it applies the memory limit when the request comes, answers it, and exits: one child per file
still, so a hostile file only ends its own child. A parse takes a waiting child and starts
another: at once for a small file, once the file is read for a large one (the import would
take a core from a long parse).
"""

from __future__ import annotations

import atexit
import ctypes
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import Future, ThreadPoolExecutor
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
    with tempfile.TemporaryDirectory(prefix="stockhub-parse-") as out:
        request = {"kind": kind, "options": options, "limits": asdict(sandbox.limits), "out": out}
        return _decode(kind, run_isolated(request, source, sandbox), Path(out))


def run_isolated(request: dict, source: bytes | Path, sandbox: Sandbox = Sandbox(), subject: str = "file") -> bytes:
    """The child's answer to `request` (its `kind` says what the child does) about `source`,
    run with the sandbox's memory and time; ReaderFailed (saying why, about the `subject`) when
    the child dies, runs out of memory or out of time."""
    request = request | {"memory_mb": sandbox.memory_mb, "path": str(source) if isinstance(source, Path) else None}
    size = source.stat().st_size if isinstance(source, Path) else len(source)
    child = _warm.take(replace_now=size < LONG_PARSE_BYTES)
    message = json.dumps(request).encode() + b"\n" + (b"" if isinstance(source, Path) else source)
    try:
        stdout, stderr = child.communicate(message, timeout=sandbox.timeout_seconds)
    except subprocess.TimeoutExpired:
        child.kill()
        child.communicate()
        raise ReaderFailed(f"the {subject} could not be read: the reader took longer than {sandbox.timeout_seconds:g} s") from None
    except BaseException:
        child.kill()
        child.wait()
        raise
    finally:
        _warm.prestart()  # a large file's child's replacement, now that its import no longer takes a core from the parse
    if child.returncode != 0:
        raise ReaderFailed(_failure(child.returncode, stderr[-4096:], sandbox, subject))
    return stdout


WARM_CHILDREN = 2  # waiting children per process: uploads that come close together find one warm (~80 MB each)
# A file this large parses long enough that its child's replacement, importing polars meanwhile,
# would slow it (200,000 rows: 0.32 s against 0.57 s); a smaller one's replacement starts at once,
# so a burst of small uploads never waits for an import.
LONG_PARSE_BYTES = 4 << 20


def prestart() -> None:
    """Have warm children waiting (a worker calls this when it starts, so its first file is quick too)."""
    _warm.prestart()


def prestarted_pids() -> list[int]:
    """The process ids of the children waiting for the next files, oldest first (for tests and doctors)."""
    return _warm.waiting_pids()


class _WarmChildren:
    """This process's waiting children. Children are started from one long-lived thread: Linux's
    PR_SET_PDEATHSIG (the child dies with its parent) fires when the *thread* that started the
    child ends, so a child started from a short-lived thread (a pull fetcher, a request) would be
    killed while waiting."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: list[Future] = []
        self._starter: ThreadPoolExecutor | None = None
        self._pid = os.getpid()

    def _start(self) -> Future:
        if self._starter is None:
            self._starter = ThreadPoolExecutor(1, thread_name_prefix="stockhub-sandbox-start")
        return self._starter.submit(_spawn)

    def _forked(self) -> None:
        """A forked process has none of its parent's children or threads."""
        if self._pid != os.getpid():
            self._lock, self._waiting, self._starter, self._pid = threading.Lock(), [], None, os.getpid()

    def _fill(self) -> None:
        while len(self._waiting) < WARM_CHILDREN:
            self._waiting.append(self._start())

    def prestart(self) -> None:
        self._forked()
        with self._lock:
            self._fill()

    def take(self, replace_now: bool = True) -> subprocess.Popen:
        """A waiting child (the oldest started; one started now if there is none), and with
        `replace_now` another started in its place (else once the file is read: `run_isolated`)."""
        self._forked()
        with self._lock:
            taken = self._waiting.pop(0) if self._waiting else self._start()
            if replace_now:
                self._fill()
        child = taken.result()
        if child.poll() is not None:  # it died waiting (killed from outside): a fresh one
            with self._lock:
                fresh = self._start()
            child = fresh.result()
        return child

    def waiting_pids(self) -> list[int]:
        self._forked()
        with self._lock:
            waiting = list(self._waiting)
        return [future.result().pid for future in waiting]

    def close(self) -> None:
        """At exit: end the waiting children (they would exit anyway on their stdin closing)."""
        if self._pid != os.getpid():
            return
        with self._lock:
            waiting, self._waiting = self._waiting, []
        for future in waiting:
            if future.done() and future.exception() is None:
                child = future.result()
                child.kill()
                child.wait()


# A reader is background work: started ahead (importing polars takes a core for a while) and
# parsing at a lower CPU priority, so neither slows the requests the server is answering.
_LOW_PRIORITY_START = "import os, runpy; os.nice(10); runpy.run_module('stockhub.feeds.sandbox', run_name='__main__')"


def _spawn() -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", _LOW_PRIORITY_START, str(os.getpid())],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_child_environment(),
    )


_warm = _WarmChildren()
atexit.register(_warm.close)


def _child_environment() -> dict[str, str]:
    """The server's environment without its settings and the object storage's credentials
    (secrets among them): the child needs none."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("STOCKHUB_", "AWS_"))} | {"RUST_BACKTRACE": "0"}


def _failure(code: int, stderr: bytes, sandbox: Sandbox, subject: str = "file") -> str:
    if b"memory allocation of" in stderr or b"MemoryError" in stderr or code == -signal.SIGKILL:
        return f"the {subject} could not be read: the reader ran out of memory (limit {sandbox.memory_mb} MB)"
    how = f"signal {signal.Signals(-code).name}" if code < 0 and -code in signal.valid_signals() else f"exit status {code}"
    return f"the {subject} could not be read: the reader crashed ({how})"


def _decode(kind: str, answer: bytes, out: Path):
    """The child's answer: its JSON summary on stdout, the two frames as Arrow IPC files in `out`
    (read from the files, not piped: a million rows are ~80 MB that the pipe, the answer's
    slicing and a copy into polars would each go over again)."""
    meta = json.loads(answer)
    kind_type, _ = READERS[kind]
    extra = {name: meta[name] for name in _EXTRA if name in meta and name in {f.name for f in fields(kind_type)}}
    return kind_type(
        rows=pl.read_ipc(out / _ROWS),
        rejections=pl.read_ipc(out / _REJECTIONS),
        line_count=meta["line_count"],
        superseded_count=meta["superseded_count"],
        warnings=tuple(meta["warnings"]),
        invalid_reason=meta["invalid_reason"],
        **extra,
    )


_EXTRA = ("skipped_count", "preset")  # what only some readers tell


_ROWS, _REJECTIONS = "rows.arrow", "rejections.arrow"


def _encode(parsed, out: Path) -> bytes:
    """Writes the parsed frames to `out` as Arrow IPC files; the summary to answer on stdout."""
    meta = {k: getattr(parsed, k) for k in ("line_count", "superseded_count", "warnings", "invalid_reason", *_EXTRA) if hasattr(parsed, k)}
    parsed.rows.write_ipc(out / _ROWS)
    parsed.rejections.write_ipc(out / _REJECTIONS)
    return json.dumps(meta).encode()


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
    _die_with_parent()
    if len(sys.argv) > 1 and os.getppid() != int(sys.argv[1]):
        os._exit(0)  # the parent died before the line above took effect
    from stockhub.feeds.documents import answer_in_child

    read_stock_file(b"barcode,price,quantity\n", default_currency="GBP")  # start polars' threads: mapped, barely used
    line = sys.stdin.buffer.readline()  # waiting, warm, for the one request this child answers
    if not line:
        os._exit(0)  # the parent is gone or closing: nothing to do
    request = json.loads(line)
    if request["kind"] == "document":  # a pulled XML or JSON document to a stock CSV (feeds/documents.py)
        work = lambda data: answer_in_child(data, request)  # noqa: E731
    else:
        _, read = READERS[request["kind"]]
        work = lambda data: _encode(read(data, limits=Limits(**request["limits"]), **request["options"]), Path(request["out"]))  # noqa: E731
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
    sys.stderr.flush()
    # The parent waits for this process to end: an interpreter's orderly exit, with polars and
    # the frames to tear down, took 0.1-0.3 s; the answer is written and nothing else is kept.
    os._exit(0)


if __name__ == "__main__":
    main()
