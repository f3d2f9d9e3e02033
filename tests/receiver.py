"""A real webhook receiver for the tests: an HTTP server on a loopback port, in a thread, that
verifies every message with the `standardwebhooks` package and keeps what it got."""

from __future__ import annotations

import bisect
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks import Webhook


@dataclass
class Received:
    message_id: str
    timestamp: str
    signature: str
    body: bytes
    payload: dict | None  # None: the signature did not verify
    answered: int
    arrival: int = 0  # the order requests arrived in (a reply may be written after a later one's)
    at: float = field(default_factory=time.monotonic)


@dataclass
class Reply:
    status: int = 204
    headers: dict = field(default_factory=dict)
    body: bytes = b""
    hold: threading.Event | None = None  # wait for this before answering


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the workers open many connections at once


class Receiver:
    """Answers with `reply(message_id, payload)` (default 204). `secret` must be set to verify."""

    def __init__(self, port: int = 0):
        self.secrets: list[str] = []
        self.reply: Callable[[str, dict | None], Reply] = lambda _id, _payload: Reply()
        self.received: list[Received] = []
        self.in_flight: Counter = Counter()
        self.most_at_once = 0  # the most requests for one message id in flight together
        self._arrivals = 0
        self._changed = threading.Condition()
        self._port = port
        self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                receiver._handle(self)

            def log_message(self, *args):
                pass

        self._server = _Server(("127.0.0.1", self._port), Handler)
        self.port = self._port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def stop(self) -> None:
        """Go down: the port refuses connections until `start()`."""
        self._server.shutdown()
        self._server.server_close()

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        body = handler.rfile.read(int(handler.headers.get("content-length", 0)))
        headers = {k.lower(): v for k, v in handler.headers.items()}
        message_id = headers.get("webhook-id", "")
        payload = self._verify(body, headers)
        with self._changed:
            self._arrivals += 1
            arrival = self._arrivals
            self.in_flight[message_id] += 1
            self.most_at_once = max(self.most_at_once, self.in_flight[message_id])
        try:
            reply = self.reply(message_id, payload)
            if reply.hold is not None:
                reply.hold.wait(30)
            try:
                handler.send_response(reply.status)
                for name, value in reply.headers.items():
                    handler.send_header(name, value)
                handler.send_header("content-length", str(len(reply.body)))
                handler.end_headers()
                handler.wfile.write(reply.body)
            except OSError:
                return  # the sender went away
            with self._changed:  # kept in arrival order: this thread may be scheduled after a later request's
                got = Received(message_id, headers.get("webhook-timestamp", ""), headers.get("webhook-signature", ""), body, payload, reply.status, arrival)
                bisect.insort(self.received, got, key=lambda r: r.arrival)
        finally:
            with self._changed:
                self.in_flight[message_id] -= 1
                self._changed.notify_all()

    def _verify(self, body: bytes, headers: dict) -> dict | None:
        for secret in self.secrets:
            try:
                return Webhook(secret).verify(body, headers)
            except Exception:
                continue
        return None

    def wait_for(self, condition: Callable[[list[Received]], bool], timeout: float = 30) -> list[Received]:
        deadline = time.monotonic() + timeout
        with self._changed:
            while not condition(self.received):
                left = deadline - time.monotonic()
                assert left > 0, f"the receiver did not get what was expected; it got {[(r.message_id, r.answered) for r in self.received]}"
                self._changed.wait(left)
            return list(self.received)

    def accepted(self) -> list[dict]:
        """The verified payloads it answered 2xx, in arrival order."""
        with self._changed:
            return [r.payload for r in self.received if r.payload is not None and 200 <= r.answered < 300]

    def accepted_of(self, type: str) -> list[dict]:
        return [p for p in self.accepted() if p["type"] == type]


def webhook_settings(database_url: str, tmp_path, **overrides):
    """Test settings for webhook delivery: loopback receivers, quick retries, short timeouts."""
    from stockhub.settings import Settings

    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        secret_key="test-secret",
        worker_poll_seconds=0.1,
        webhook_allow_loopback=True,
        webhook_retry_schedule=[0] + [0.3] * 40,
        webhook_timeout_seconds=1.0,
        **overrides,
    )
