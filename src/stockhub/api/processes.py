"""`stockhub serve` on several cores: API worker processes sharing one listening socket and the database.

The process a user starts (the supervisor) migrates the database, takes the ports, runs the
background workers (uploads, the event sequencer, webhook deliveries, mail, sweeps) and the FTP
gateway, and starts `count` API processes (`python -m stockhub.api.processes`) that accept on
the same listening socket (passed as a file descriptor). They are started early, so their imports
overlap the supervisor's own start, and begin accepting when it tells them (a byte on their stdin). So the background workers run exactly
once, whatever the number of API processes.

Waking the workers across processes: a transaction in an API process that leaves work for them
(`db.engine.new_work`: an upload received, an event to number and deliver) rings its bell after
commit; in an API process the bell is one UDP datagram to the supervisor's wake-up socket on
loopback, whose listener sets the workers' in-process bell. No database round trip and the same
on SQLite and PostgreSQL; the workers' poll (`WORKER_POLL_SECONDS`) stays as the safety net for a
lost datagram.

An API process ends with its supervisor: the kernel kills it when the supervisor dies (even by
SIGKILL), and it watches its parent besides. The supervisor restarts an API process that dies on
its own, and on SIGTERM/SIGINT stops them all (each finishes its requests in flight).
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time

from stockhub.services.context import Hub

log = logging.getLogger(__name__)

WAKE = b"w"  # a wake-up datagram: look at every queue
EVENTS_ONLY = b"e"  # only events to number and deliver


def listen_for_wake_ups(hub: Hub) -> int:
    """In the supervisor: a loopback UDP socket whose every datagram rings the workers' bell. Returns its port."""
    wake = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    wake.bind(("127.0.0.1", 0))

    def listen() -> None:
        while True:
            try:
                data = wake.recv(16)
            except OSError:
                return
            hub.ring(events_only=data == EVENTS_ONLY)

    threading.Thread(target=listen, name="stockhub-wake-ups", daemon=True).start()
    return wake.getsockname()[1]


def wake_bell(port: int):
    """In an API process: what rings the supervisor's workers (one datagram, never blocks)."""
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender.setblocking(False)

    def ring(events_only: bool = False) -> None:
        try:
            sender.sendto(EVENTS_ONLY if events_only else WAKE, ("127.0.0.1", port))
        except OSError:  # a full buffer means a wake-up is already pending
            pass

    return ring


class ApiProcesses:
    """The supervisor's side: start, watch, restart and stop the API processes."""

    def __init__(self, listening: socket.socket, count: int, wake_port: int, *, host: str, port: int, allow_loopback: bool):
        self.listening, self.count, self.wake_port = listening, count, wake_port
        self.host, self.port, self.allow_loopback = host, port, allow_loopback
        self.children: list[subprocess.Popen] = []
        self._stopping = threading.Event()

    def _start_one(self) -> subprocess.Popen:
        command = [sys.executable, "-m", "stockhub.api.processes", "--fd", str(self.listening.fileno()), "--wake-port", str(self.wake_port),
                   "--host", self.host, "--port", str(self.port), "--parent", str(os.getpid())]
        if self.allow_loopback:
            command.append("--allow-loopback")
        return subprocess.Popen(command, pass_fds=[self.listening.fileno()], stdin=subprocess.PIPE)

    def start(self) -> None:
        """Start the processes: they import and get ready while the supervisor finishes its own
        start (the demo), and accept requests once `go()` tells them to."""
        self.children = [self._start_one() for _ in range(self.count)]

    def go(self) -> None:
        for child in self.children:
            self._go(child)
        log.info("serving on http://%s:%d with %d API processes (pids %s)", self.host, self.port, self.count,
                 ", ".join(str(c.pid) for c in self.children))

    @staticmethod
    def _go(child: subprocess.Popen) -> None:
        try:
            child.stdin.write(b"g")
            child.stdin.close()
        except OSError:  # it has died already: the watch restarts it
            pass

    def run(self) -> int:
        """Watch the processes until SIGTERM/SIGINT; returns the exit code."""
        previous = {sig: signal.signal(sig, lambda *_: self._stopping.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            if not self.children:
                self.start()
            self.go()
            failures = 0
            while not self._stopping.wait(0.2):
                for n, child in enumerate(self.children):
                    if child.poll() is None:
                        continue
                    if child.returncode == 3:  # the app could not start (uvicorn said why): restarting would not help
                        return 3
                    failures += 1
                    log.error("API process %d ended with %s; starting another", child.pid, child.returncode)
                    if failures > 10 * self.count:
                        return 1
                    self.children[n] = self._start_one()
                    self._go(self.children[n])
            return 0
        finally:
            self.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def stop(self) -> None:
        for child in self.children:
            if child.poll() is None:
                child.terminate()
        deadline = time.monotonic() + 30
        for child in self.children:
            try:
                child.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


def _die_with_parent(parent: int) -> None:
    try:  # Linux: the kernel sends SIGKILL when the supervisor dies
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass

    def watch() -> None:  # elsewhere, and for a supervisor that died before prctl took effect
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="stockhub-parent-watch", daemon=True).start()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="one API process of `stockhub serve` (started by it)")
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--wake-port", type=int, required=True)
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--parent", type=int, required=True)
    parser.add_argument("--allow-loopback", action="store_true")
    args = parser.parse_args(argv)
    _die_with_parent(args.parent)
    from stockhub.api.server import http_server
    from stockhub.db.engine import ring_on_new_work
    from stockhub.logs import bind, configure
    from stockhub.settings import Settings

    settings = Settings()
    configure(settings.log_format, settings.log_level)
    bind(api_process=os.getpid())
    hub = Hub.from_settings(settings)  # the supervisor has migrated the database and made the secret
    if args.allow_loopback:
        hub.settings.webhook_allow_loopback = True
    ring_on_new_work(hub.engine, wake_bell(args.wake_port))
    listening = socket.socket(fileno=args.fd)
    server = http_server(
        hub, args.host, args.port, log_level="info", log_config=None, proxy_headers=True,
        timeout_graceful_shutdown=settings.shutdown_grace_seconds,  # SIGTERM: requests in flight finish
    )
    if sys.stdin.buffer.read(1) != b"g":  # the supervisor is ready (or gone: then so are we)
        sys.exit(1)
    gc.freeze()  # what start-up made lives as long as the process: full collections need not walk it
    server.run(sockets=[listening])
    sys.exit(0 if server.started else 3)


if __name__ == "__main__":
    main()
