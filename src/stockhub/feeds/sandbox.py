"""Reading an untrusted file in a child process with bounded memory and time.

The readers are native code (polars, calamine): a hostile file can make them abort the process
or allocate without bound. `read_isolated` runs them in `python -m stockhub.feeds.sandbox`,
limited to `memory_mb` of address space beyond what the idle reader maps (RLIMIT_AS) and to
`timeout_seconds` of wall time, so whatever the file does only ends the child; the caller gets
the parsed file or `ReaderFailed` saying why. Pulled XML and JSON documents are turned into
stock CSVs the same way (`run_isolated` with kind "document", feeds/documents.py).
The child writes the parsed frames as Arrow IPC files into a temporary directory the parent made
for the one request, and answers their summary as JSON on its socket (no pickle crosses the boundary).

A child is forked, not started: importing polars costs ~0.3 s of CPU, ten times the parse of a
small file (it was half the CPU of a burst of uploads). So each server process starts one reader
process ahead (`prestart`; a worker calls it when it starts), which imports the readers and then
only forks: one child per file, as before, so a hostile file only ends its own child. The reader
process starts no thread of polars' before it forks (jemalloc's background threads are turned off
in it, and polars' thread pool starts in the child, on first use): a fork copies only the thread
that forks, and a lock another thread held would be held for ever in the child. Each request
passes the reader process two sockets (SCM_RIGHTS): the child answers on one and writes its
stderr to the other; the reader process says the child's pid first and its exit status last.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import json
import math
import os
import resource
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
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
    request = request | {
        "memory_mb": sandbox.memory_mb,
        # all its threads together, within the wall time: ends a child the server stopped waiting for before it was forked
        "cpu_seconds": math.ceil(sandbox.timeout_seconds * (os.cpu_count() or 1)) + 1,
        "path": str(source) if isinstance(source, Path) else None,
    }
    message = json.dumps(request).encode() + b"\n" + (b"" if isinstance(source, Path) else source)
    deadline = time.monotonic() + sandbox.timeout_seconds
    for _attempt in (1, 2):
        reader, answer, errors = _readers.fork()
        with answer, errors:
            try:
                code, said, stderr = _exchange(answer, errors, message, deadline)
            except TimeoutError:
                raise ReaderFailed(f"the {subject} could not be read: the reader took longer than {sandbox.timeout_seconds:g} s") from None
        if code is not None:
            break
        _readers.ended(reader)  # no child was forked: the reader process is gone (killed from outside); once more, with a new one
    if code != 0:
        raise ReaderFailed(_failure(code if code is not None else -signal.SIGKILL, stderr, sandbox, subject))
    return said


STDERR_KEPT = 4096  # the end of a child's stderr: what says why it failed


def _exchange(answer: socket.socket, errors: socket.socket, message: bytes, deadline: float) -> tuple[int | None, bytes, bytes]:
    """Send the child its request, and read what is said until the reader process closes the
    socket: (the child's exit status, its answer, its stderr); the status is None when no child
    was forked. TimeoutError past `deadline`, the child killed."""
    received = {answer: bytearray(), errors: bytearray()}
    unsent = memoryview(message)
    with selectors.DefaultSelector() as selector:
        selector.register(answer, selectors.EVENT_READ | selectors.EVENT_WRITE)
        selector.register(errors, selectors.EVENT_READ)
        while selector.get_map():
            left = deadline - time.monotonic()
            if left <= 0:
                if (pid := _pid_in(received[answer])) is not None:
                    _kill(pid)
                raise TimeoutError
            for key, events in selector.select(left):
                sock = key.fileobj
                if events & selectors.EVENT_WRITE:
                    try:
                        unsent = unsent[sock.send(unsent[: 1 << 20]) :]
                    except (BrokenPipeError, ConnectionResetError):
                        unsent = unsent[:0]  # the child is gone: its status says why
                    if not unsent:
                        with contextlib.suppress(OSError):
                            sock.shutdown(socket.SHUT_WR)  # the end of the file
                        selector.modify(answer, selectors.EVENT_READ)
                if events & selectors.EVENT_READ:
                    try:
                        chunk = sock.recv(1 << 20)
                    except ConnectionResetError:  # the reader process died with the request unread
                        chunk = b""
                    if chunk:
                        received[sock] += chunk
                        if sock is errors:
                            del received[errors][:-STDERR_KEPT]  # what the reader prints is bounded only by its time
                    else:
                        selector.unregister(sock)
    # the child says "pid N\n" then its answer; once it ended, its reader process "\nexit C\n"
    said, _, status = bytes(received[answer]).rpartition(b"\nexit ")
    head, _, body = said.partition(b"\n")
    if not status.endswith(b"\n") or not status[:-1].lstrip(b"-").isdigit():  # the reader process died
        return (None if _pid_in(received[answer]) is None else -signal.SIGKILL), b"", bytes(received[errors])
    return int(status), body if head.startswith(b"pid ") else b"", bytes(received[errors])


def _pid_in(received: bytearray) -> int | None:
    head, newline, _ = bytes(received[:32]).partition(b"\n")
    return int(head[4:]) if newline and head.startswith(b"pid ") else None


def _kill(pid: int) -> None:
    """The child is the reader process's, which reaps it (and has not yet: it has not said its status)."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def prestart() -> None:
    """Start this process's reader process, so its first file does not wait for polars' import
    (a worker calls this when it starts)."""
    _readers.start()


def reader_process_pid() -> int | None:
    """The pid of the process that forks a child per file (for tests and doctors), if started."""
    return _readers.pid()


class _ReaderProcess:
    """This process's reader process, and the socket its requests go over. It is started from one
    long-lived thread: Linux's PR_SET_PDEATHSIG (it dies with its parent) fires when the *thread*
    that started it ends, so one started from a short-lived thread (a pull fetcher, a request)
    would be killed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._starting: Future | None = None
        self._starter: ThreadPoolExecutor | None = None
        self._owner = os.getpid()

    def _forked(self) -> None:
        """A forked server process has none of its parent's children or threads."""
        if self._owner != os.getpid():
            self._lock, self._starting, self._starter, self._owner = threading.Lock(), None, None, os.getpid()

    def start(self) -> Future:
        """The reader process being started or running; a new one if it failed to start or ended."""
        self._forked()
        with self._lock:
            if self._starting is None or not _running(self._starting):
                if self._starting is not None and self._starting.exception() is None:
                    self._starting.result()[1].close()  # the ended one's socket
                if self._starter is None:
                    self._starter = ThreadPoolExecutor(1, thread_name_prefix="stockhub-sandbox-start")
                self._starting = self._starter.submit(_spawn)
            return self._starting

    def pid(self) -> int | None:
        self._forked()
        starting = self._starting
        return starting.result()[0].pid if starting is not None else None

    def fork(self) -> tuple[subprocess.Popen | None, socket.socket, socket.socket]:
        """Have a child forked for one request: the reader process asked, the socket to talk to the
        child, and one to hear its stderr."""
        answer, answer_theirs = socket.socketpair()
        errors, errors_theirs = socket.socketpair()
        reader = None
        try:
            reader, control = self.start().result()
            with self._lock:
                socket.send_fds(control, [b"f"], [answer_theirs.fileno(), errors_theirs.fileno()])
        except OSError:  # the reader process is gone: the exchange finds no child, and the caller asks again
            pass
        finally:
            answer_theirs.close()
            errors_theirs.close()
        return reader, answer, errors

    def ended(self, reader: subprocess.Popen | None) -> None:
        """`reader` closed its socket without forking: it is dying (a process killed from outside
        is reaped only once all its threads have ended). Wait for that, so `start` makes another."""
        if reader is None:  # it could not be started: `start` tries again
            return
        with contextlib.suppress(subprocess.TimeoutExpired):
            reader.wait(5)

    def close(self) -> None:
        """At exit: end the reader process (it would exit anyway on its socket closing)."""
        if self._owner != os.getpid():
            return
        with self._lock:
            starting, self._starting = self._starting, None
        if starting is not None and starting.done() and starting.exception() is None:
            process, control = starting.result()
            control.close()
            process.kill()
            process.wait()


def _running(starting: Future) -> bool:
    return not starting.done() or (starting.exception() is None and starting.result()[0].poll() is None)


# The reader process is background work: it parses at a lower CPU priority, so it does not slow the
# requests the server is answering.
_LOW_PRIORITY_START = "import os, runpy; os.nice(10); runpy.run_module('stockhub.feeds.sandbox', run_name='__main__')"


def _spawn() -> tuple[subprocess.Popen, socket.socket]:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    with theirs:
        process = subprocess.Popen(
            [sys.executable, "-c", _LOW_PRIORITY_START, str(os.getpid()), str(theirs.fileno())],
            stdin=subprocess.DEVNULL,
            pass_fds=[theirs.fileno()],
            env=_child_environment(),
        )
    return process, ours


_readers = _ReaderProcess()
atexit.register(_readers.close)


def _child_environment() -> dict[str, str]:
    """The server's environment without its settings and the object storage's credentials
    (secrets among them): the child needs none. jemalloc (polars' allocator) starts no background
    thread, so the reader process has none when it forks."""
    kept = {k: v for k, v in os.environ.items() if not k.startswith(("STOCKHUB_", "AWS_"))}
    return kept | {"RUST_BACKTRACE": "0", "_RJEM_MALLOC_CONF": "background_thread:false"}


def _failure(code: int, stderr: bytes, sandbox: Sandbox, subject: str = "file") -> str:
    if b"memory allocation of" in stderr or b"MemoryError" in stderr or code == -signal.SIGKILL:
        return f"the {subject} could not be read: the reader ran out of memory (limit {sandbox.memory_mb} MB)"
    how = f"signal {signal.Signals(-code).name}" if code < 0 and -code in signal.valid_signals() else f"exit status {code}"
    return f"the {subject} could not be read: the reader crashed ({how})"


def _decode(kind: str, answer: bytes, out: Path):
    """The child's answer: its JSON summary on the socket, the two frames as Arrow IPC files in `out`
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
    """Writes the parsed frames to `out` as Arrow IPC files; the summary to answer on the socket."""
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
    """The reader process: imports the readers, then forks a child for each request until the
    server closes the socket."""
    _die_with_parent()
    if os.getppid() != int(sys.argv[1]):
        os._exit(0)  # the server died before the line above took effect
    from stockhub.feeds import documents  # noqa: F401 (imported here, once, for every child)

    control = socket.socket(fileno=int(sys.argv[2]))
    awake, wake = os.pipe()
    os.set_blocking(awake, False)
    os.set_blocking(wake, False)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.set_wakeup_fd(wake)
    children: dict[int, socket.socket] = {}
    with selectors.DefaultSelector() as selector:
        selector.register(control, selectors.EVENT_READ)
        selector.register(awake, selectors.EVENT_READ)
        while True:
            for key, _ in selector.select():
                if key.fileobj is control:
                    try:
                        message, fds, _, _ = socket.recv_fds(control, 16, 2)
                    except InterruptedError:
                        continue
                    if not message:
                        os._exit(0)  # the server is gone or closing
                    answer, errors = (socket.socket(fileno=fd) for fd in fds)
                    pid = os.fork()
                    if pid == 0:
                        selector.close()
                        for fd in (control.fileno(), awake, wake):
                            os.close(fd)
                        for other in children.values():  # the other files' sockets: not this child's to write to, nor to hold open
                            other.close()
                        _child(answer, errors)
                    errors.close()
                    children[pid] = answer
                else:
                    with contextlib.suppress(BlockingIOError):
                        os.read(awake, 4096)
                    _reap(children)


def _reap(children: dict[int, socket.socket]) -> None:
    """Say each ended child's exit status on its socket, after all it said, and close it."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        answer = children.pop(pid, None)
        if answer is not None:
            with contextlib.suppress(OSError):
                answer.sendall(b"\nexit %d\n" % os.waitstatus_to_exitcode(status))
            answer.close()


def _child(answer: socket.socket, errors: socket.socket) -> None:
    """One request, in a child forked for it: read it, answer it, exit."""
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    _die_with_parent()
    os.dup2(errors.fileno(), 2)
    errors.close()
    try:
        answer.sendall(b"pid %d\n" % os.getpid())  # first, so the server can end this child in time
        reading = answer.makefile("rb")
        request = json.loads(reading.readline())
        if request["kind"] == "document":  # a pulled XML or JSON document to a stock CSV (feeds/documents.py)
            from stockhub.feeds.documents import answer_in_child

            work = lambda data: answer_in_child(data, request)  # noqa: E731
        else:
            _, read = READERS[request["kind"]]
            work = lambda data: _encode(read(data, limits=Limits(**request["limits"]), **request["options"]), Path(request["out"]))  # noqa: E731
        # Libraries and thread stacks map ~1 GB that is hardly touched; the file may take memory_mb
        # more. Polars' threads start first (a file of no rows), so their stacks are not the file's.
        read_stock_file(b"barcode,price,quantity\n", default_currency="GBP")
        memory = _address_space() + request["memory_mb"] * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        resource.setrlimit(resource.RLIMIT_CPU, (request["cpu_seconds"], request["cpu_seconds"] + 1))
        data = Path(request["path"]).read_bytes() if request["path"] else reading.read()
        try:
            said = work(data)
        except MemoryError:
            os.write(2, b"MemoryError\n")
            os._exit(3)
        answer.sendall(said)
    except BaseException:
        traceback.print_exc()
        sys.stderr.flush()
        os._exit(1)
    # The answer is sent and nothing else is kept: no orderly exit (tearing down polars and the
    # frames took 0.1-0.3 s).
    os._exit(0)


if __name__ == "__main__":
    main()
