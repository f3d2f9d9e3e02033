"""What the benches share: round trips counted, the machine's load, medians, a lean HTTP load
generator (raw asyncio sockets, keep-alive, requests built before the clock starts), and the
thin FastAPI + psycopg app that is the floor for bookings and single lookups."""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from pathlib import Path

from sqlalchemy import event

from stockhub.db import flights


class RoundTrips:
    """Counts the database round trips an engine makes: every statement, and on PostgreSQL the
    BEGIN psycopg sends before a transaction's first statement and each COMMIT/ROLLBACK (SQLite's
    BEGIN is a statement of its own, already counted). A pool pre-ping, when on, is one more per
    checkout. A flight (stockhub.db.flights: statements pipelined) is one round trip, with the
    BEGIN or COMMIT it carries."""

    def __init__(self, engine):
        self._value = 0
        self._statements = 0
        self._flights = dict(flights.COUNTS)
        postgres = engine.dialect.name == "postgresql"
        pings = engine.pool._pre_ping

        def statement(*_):
            self._value += 1
            self._statements += 1

        def begin(conn):
            if postgres and conn.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
                self._value += 1

        def end(conn):
            if postgres and conn.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
                self._value += 1

        def checkout(*_):
            if pings:
                self._value += 1

        event.listen(engine, "before_cursor_execute", statement)
        event.listen(engine, "begin", begin)
        event.listen(engine, "commit", end)
        event.listen(engine, "rollback", end)
        event.listen(engine.pool, "checkout", checkout)

    def _flown(self, key: str) -> int:
        return flights.COUNTS[key] - self._flights[key]

    @property
    def value(self) -> int:
        """Round trips: the flights, and what went outside them (a BEGIN a flight carried, and a
        COMMIT a flight sent, were counted by SQLAlchemy's events: taken off)."""
        return self._value + self._flown("flights") - self._flown("begun") - self._flown("committed")

    @property
    def statements(self) -> int:
        return self._statements + self._flown("statements") - self._flown("committed")

    def reset(self) -> None:
        self._value = self._statements = 0
        self._flights = dict(flights.COUNTS)


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def median(values: list[float]) -> float:
    return statistics.median(values)


# --- the lean load generator: raw asyncio sockets, keep-alive, closed loop -----------------------


def http_request(method: str, path: str, headers: dict[str, str] | None = None, body: bytes | None = None) -> bytes:
    """One HTTP/1.1 request, built before the clock starts."""
    head = f"{method} {path} HTTP/1.1\r\nHost: bench\r\n" + "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    if body is not None:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return (head + "\r\n").encode() + (body or b"")


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    if length:
        await reader.readexactly(length)
    return status


async def _load(port: int, requests: list[bytes], connections: int) -> tuple[float, list[float], list[int]]:
    pending = iter(range(len(requests)))
    latencies = [0.0] * len(requests)
    statuses = [0] * len(requests)
    opened = [await asyncio.open_connection("127.0.0.1", port) for _ in range(connections)]

    async def client(reader, writer) -> None:
        for i in pending:
            started = time.perf_counter()
            writer.write(requests[i])
            statuses[i] = await _read_response(reader)
            latencies[i] = time.perf_counter() - started

    started = time.perf_counter()
    await asyncio.gather(*(client(r, w) for r, w in opened))
    seconds = time.perf_counter() - started
    for _, writer in opened:
        writer.close()
    return seconds, latencies, statuses


def load(port: int, requests: list[bytes], connections: int) -> dict:
    """Send `requests` over `connections` keep-alive connections (opened before the clock starts),
    each sending its next request when the last is answered. Latency: send to last byte."""
    cpu = time.process_time()
    seconds, latencies, statuses = asyncio.run(_load(port, requests, connections))
    ordered = sorted(latencies)
    return {
        "rate": len(requests) / seconds,
        "seconds": seconds,
        "p50": ordered[len(ordered) // 2] * 1000,
        "p99": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000,
        "statuses": statuses,
        "client_ms": (time.process_time() - cpu) * 1000 / len(requests),
        "load": loadavg(),
    }


def median_run(runs: list[dict]) -> dict:
    """The run with the median rate, with every run's rate and load average beside it."""
    ordered = sorted(runs, key=lambda r: r["rate"])
    chosen = dict(ordered[len(ordered) // 2])
    chosen["runs"] = [r["rate"] for r in runs]
    chosen["loads"] = [r["load"] for r in runs]
    return chosen


def fmt(result: dict, unit: str = "req/s") -> str:
    runs = ", ".join(f"{r:,.0f}" for r in result.get("runs", [result["rate"]]))
    loads = "; ".join(result.get("loads", [result["load"]]))
    return (f"{result['rate']:8,.0f} {unit} (runs {runs})  p50 {result['p50']:6.1f} ms  p99 {result['p99']:7.1f} ms  "
            f"client CPU {result['client_ms']:.2f} ms/req  [loadavg {loads}]")


# --- servers: stockhub as a user runs it, and the thin app ----------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(port: int, process, log_path: Path, timeout: float = 120) -> None:
    import socket

    deadline = time.monotonic() + timeout
    probe = b"GET /healthz HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                s.sendall(probe)
                if s.recv(64).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the server did not start:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.2)


def process_tree_cpu(pid: int) -> float:
    """CPU seconds of a process and its children (live ones), from /proc."""
    total = 0.0
    pids = [pid]
    while pids:
        p = pids.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            for task in Path(f"/proc/{p}/task").iterdir():
                pids += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def postgres_cpu() -> float:
    """CPU seconds of the machine's PostgreSQL: every `postgres` process, live, plus what its
    postmaster has reaped of exited ones. Other databases' work counts too: run nothing else."""
    total, tick = 0.0, os.sysconf("SC_CLK_TCK")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        name, fields = text[text.index("(") + 1:text.rindex(")")], text.rsplit(")", 1)[1].split()
        if name.startswith("postgres"):
            total += (int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])) / tick
    return total


THIN_APP = Path(__file__).with_name("thin_app.py")


def start_thin_app(db_url: str, port: int, workers: int, log_path: Path):
    """The floor for bookings and single lookups: FastAPI + psycopg doing only the essential
    statement, under uvicorn with the same settings and the same number of processes as stockhub,
    sharing one listening socket as stockhub's processes do (bench/thin_app.py says why not `--workers`)."""
    import subprocess
    import sys

    env = os.environ | {"THIN_DATABASE_URL": db_url}
    command = [sys.executable, str(THIN_APP), "--port", str(port), "--workers", str(workers)]
    log = open(log_path, "w")
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    wait_until_up(port, process, log_path)
    return process


def stop(process) -> None:
    import signal
    import subprocess

    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(60)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


class StockhubServer:
    """`stockhub serve` as a user runs it (FTP off), on `url` with `settings` (STOCKHUB_* variables)
    on top of the bench's; `args` are more of serve's flags; `profile` runs it under py-spy, whose
    collapsed stacks go to profile/server.raw (all its processes; with PYSPY_GIL=1 in the
    environment, only the thread holding the GIL: Python's CPU, not its waits)."""

    def __init__(self, url: str, work: Path, secret: str, settings: dict[str, str] | None = None, args: tuple[str, ...] = (),
                 profile: Path | None = None):
        import shutil
        import subprocess
        import sys

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("STOCKHUB_")} | {
            "STOCKHUB_DATABASE_URL": url,
            "STOCKHUB_DATA_DIR": str(work / "server-data"),
            "STOCKHUB_FTP_ENABLED": "false",
            "STOCKHUB_SECRET_KEY": secret,
        } | (settings or {})
        command = [str(Path(sys.executable).parent / "stockhub"), "serve", "--host", "127.0.0.1", "--port", str(self.port), *args]
        if profile:  # py-spy as the server's parent, following its processes, until shutdown
            profile.mkdir(parents=True, exist_ok=True)
            py_spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or "py-spy"
            command = [py_spy, "record", "--subprocesses", "--nonblocking", *(["--gil"] if os.environ.get("PYSPY_GIL") else []), "--rate", "200", "--format", "raw", "-o", str(profile / "server.raw"), "--", *command]
        self.log_path = work / "server.log"
        self.log = open(self.log_path, "w")
        self.process = subprocess.Popen(command, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_until_up(self.port, self.process, self.log_path)
        except SystemExit:
            self.stop()
            raise

    def cpu_seconds(self) -> float:
        return process_tree_cpu(self.process.pid)

    def stop(self) -> None:
        import signal
        import subprocess

        try:
            os.killpg(self.process.pid, signal.SIGINT)  # py-spy writes its profile on the child's exit
            self.process.wait(60)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.log.close()
