"""The HTTP server: uvicorn serving the API, with the time limits uvicorn lacks.

`stockhub serve` and the tests both build their server here, so the tests exercise what users run.

uvicorn (h11) closes idle keep-alive connections (`timeout_keep_alive`) and bounds a request
head's size (`h11_max_incomplete_event_size`), but waits for ever for a request head that never
completes or a body that trickles in. `GuardedH11Protocol` adds the limits to each connection:

- the request head must be complete within `http_header_timeout_seconds` of its first byte (of the
  connection, for the first request), however slowly it drips;
- while a body comes, each chunk must follow the last within `http_body_idle_timeout_seconds`, and
  the whole body must be in within `http_body_timeout_seconds` of the head — except a file PUT to
  an upload URL, which its URL's expiry bounds instead (api/uploads.py);
- a body still coming after the answer was sent (the app refused it early) is drained for at most
  `http_header_timeout_seconds`.

Past a limit the client gets 408 (when no answer was started) and the connection closes; an app
still reading the body sees the client gone, so nothing is applied.
"""

from __future__ import annotations

import asyncio

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from stockhub.api.app import create_app
from stockhub.api.uploads import UPLOAD_PATH
from stockhub.services.context import Hub
from stockhub.settings import Settings

REQUEST_TIMEOUT = b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain\r\ncontent-length: 36\r\nconnection: close\r\n\r\nthe request did not arrive in time\r\n"


class GuardedH11Protocol(H11Protocol):
    header_timeout: float
    body_idle_timeout: float
    body_timeout: float
    self_bounded_paths: tuple[str, ...] = ()  # paths whose bodies the app bounds in time itself

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._timer: asyncio.TimerHandle | None = None
        self._watching: str | None = None  # "head", "body" or "drain": what the timer limits
        self._body_deadline: float | None = None
        self._watch("head")

    def connection_lost(self, exc: Exception | None) -> None:
        self._watch(None)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._reassess(arrived=True)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._reassess(arrived=False)

    def _reassess(self, arrived: bool) -> None:
        """Which limit applies now: the head's (absolute), the body's, the drain's (absolute), or none."""
        if self.transport.is_closing():
            return self._watch(None)
        their = self.conn.their_state
        answered = self.conn.our_state in (h11.DONE, h11.MUST_CLOSE)
        if their is h11.IDLE and self.conn.trailing_data[0]:
            if self._watching != "head":
                self._watch("head")  # a new request has begun: its head's clock starts now
        elif their is h11.SEND_BODY and answered:
            if self._watching != "drain":
                self._watch("drain")
        elif their is h11.SEND_BODY:
            if self._watching != "body":
                bounded_by_app = self.scope["path"].startswith(self.self_bounded_paths)
                self._body_deadline = None if bounded_by_app else self.loop.time() + self.body_timeout
                self._watch("body")
            elif arrived:
                self._watch("body")  # the idle clock starts again with each chunk
        else:
            self._watch(None)  # nothing expected from the client, or idle: uvicorn's keep-alive timeout applies

    def _watch(self, what: str | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._watching = what
        if what is None:
            return
        delay = self.header_timeout
        if what == "body":
            delay = self.body_idle_timeout
            if self._body_deadline is not None:
                delay = max(0.0, min(delay, self._body_deadline - self.loop.time()))
        self._timer = self.loop.call_later(delay, self._expired)

    def _expired(self) -> None:
        self._timer = None
        if self.transport.is_closing():
            return
        if self._watching == "body" and self.flow.read_paused:
            self._watch("body")  # the app is behind, not the client: wait again
            return
        started = self._watching == "head" and self.conn.trailing_data[0]
        if started or (self._watching == "body" and self.cycle is not None and not self.cycle.response_started):
            self.transport.write(REQUEST_TIMEOUT)
        self.logger.info("closing %s:%s: request %s too slow", *(self.client or ("?", "?")), self._watching)
        self._watching = None
        self.transport.close()


def protocol_for(settings: Settings) -> type[GuardedH11Protocol]:
    return type(
        "StockhubH11Protocol",
        (GuardedH11Protocol,),
        {
            "header_timeout": settings.http_header_timeout_seconds,
            "body_idle_timeout": settings.http_body_idle_timeout_seconds,
            "body_timeout": settings.http_body_timeout_seconds,
            "self_bounded_paths": (UPLOAD_PATH,),
        },
    )


def http_server(hub: Hub, host: str, port: int, **config) -> uvicorn.Server:
    """The API on host:port; `config` passes other uvicorn options (log_level, lifespan, ...)."""
    return uvicorn.Server(uvicorn.Config(create_app(hub), host=host, port=port, http=protocol_for(hub.settings), **config))
