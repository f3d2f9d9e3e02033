"""Requests stockhub makes to other people's servers (webhook receivers), guarded against SSRF.

A receiver URL is checked when it is subscribed (`check_url`) and again on every connection:
the HTTP client's network backend resolves the host itself, refuses it if any address is
loopback, private or link-local (unless settings allow), and connects to the address it
checked, so a DNS answer that changes between the check and the connection cannot slip
through.

Every request made under `deadline(seconds)` must be over within that time, however the
receiver drips its answer: each network operation waits at most what is left of it (httpx's own
timeouts bound one operation each, not the whole request).

Webhook deliveries go out through `Sender` instead (below): many requests at once from one
asyncio loop, with the same address rules on every connection and one deadline per request.
"""

from __future__ import annotations

import asyncio
import functools
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

import httpcore2
import httpx2
from httpcore2._backends.base import NetworkStream
from httpcore2._backends.sync import SyncBackend

from stockhub.domain.webhooks import AddressPolicy
from stockhub.settings import Settings


class Refused(Exception):
    """The receiver's URL or address is not one stockhub sends to."""


class Unresolvable(Refused):
    """The host name does not resolve (DNS): perhaps only for now, unlike an address refused by the rules."""


def policy(settings: Settings) -> AddressPolicy:
    return AddressPolicy(allow_loopback=settings.webhook_allow_loopback, allow_private=settings.webhook_allow_private)


def check_url(url: str, settings: Settings) -> None:
    """Raise Refused (with the reason) unless stockhub may deliver to `url`."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise Refused("must be an absolute https:// URL")
    if parts.username or parts.password:
        raise Refused("must not carry a user name or password")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise Refused("has an invalid port") from None
    plain_http = f"must use https (plain http only to a loopback receiver, allowed with {LOOPBACK_SETTING}=true)"
    if parts.scheme == "http" and not settings.webhook_allow_loopback:
        raise Refused(plain_http)
    addresses = resolve(parts.hostname, port, policy(settings))
    if parts.scheme == "http" and not all(_is_loopback(a) for a in addresses):
        raise Refused(plain_http)


def resolve(host: str, port: int, rules: AddressPolicy) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise Unresolvable(f"host {host!r} does not resolve") from None
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    for address in addresses:
        if (why := rules.refusal(address)) is not None:
            raise Refused(f"host {host!r} resolves to {why}{_allowed_by(address, rules)}")
    return addresses


LOOPBACK_SETTING = "STOCKHUB_WEBHOOK_ALLOW_LOOPBACK"
PRIVATE_SETTING = "STOCKHUB_WEBHOOK_ALLOW_PRIVATE"


def _allowed_by(address: str, rules: AddressPolicy) -> str:
    """The setting that would allow a refused address, named in the refusal (none for multicast and the like)."""
    if AddressPolicy(allow_loopback=True, allow_private=rules.allow_private).refusal(address) is None:
        return f" (receivers on this machine are allowed with {LOOPBACK_SETTING}=true; `stockhub serve --demo` sets it)"
    if AddressPolicy(allow_loopback=rules.allow_loopback, allow_private=True).refusal(address) is None:
        return f" (private and link-local receivers are allowed with {PRIVATE_SETTING}=true)"
    return ""


def _is_loopback(address: str) -> bool:
    return AddressPolicy(allow_loopback=False, allow_private=True).refusal(address) is not None


_deadline = threading.local()  # requests are sent synchronously: the deadline is the sending thread's


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Requests made by this thread inside the block end by `seconds` from now (httpx2.TimeoutException)."""
    _deadline.at = time.monotonic() + seconds
    try:
        yield
    finally:
        _deadline.at = None


def _left(timeout: float | None, error: type[Exception]) -> float | None:
    at = getattr(_deadline, "at", None)
    if at is None:
        return timeout
    left = at - time.monotonic()
    if left <= 0:
        raise error("the request's total deadline passed")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(NetworkStream):
    """A connection whose every read and write waits no longer than the current request's deadline."""

    CHUNK = 64 * 1024

    def __init__(self, stream: NetworkStream):
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _left(timeout, httpcore2.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        for start in range(0, len(buffer), self.CHUNK):
            self._stream.write(buffer[start : start + self.CHUNK], _left(timeout, httpcore2.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(self, ssl_context, server_hostname=None, timeout=None) -> NetworkStream:
        return _DeadlineStream(self._stream.start_tls(ssl_context, server_hostname, _left(timeout, httpcore2.ConnectTimeout)))

    def get_extra_info(self, info: str):
        return self._stream.get_extra_info(info)


class _GuardedBackend(SyncBackend):
    def __init__(self, settings: Settings):
        self.settings = settings

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        try:
            addresses = resolve(host, port, policy(self.settings))
        except Refused as refused:
            raise httpcore2.ConnectError(f"refused: {refused}") from None
        last: Exception | None = None
        for address in addresses:
            try:
                stream = super().connect_tcp(address, port, _left(timeout, httpcore2.ConnectTimeout), local_address, socket_options)
                return _DeadlineStream(stream)
            except httpcore2.ConnectError as error:
                last = error
        raise last or httpcore2.ConnectError(f"no address for {host}")


@functools.cache
def default_tls() -> ssl.SSLContext:
    """The system's trusted certificates, checked against the host name. Made once and shared (a
    context is safe to share between connections and threads): making one reads the system's
    certificate store, ~25 ms of CPU."""
    return ssl.create_default_context()


def client(settings: Settings, max_connections: int = 100, verify: ssl.SSLContext | bool = True) -> httpx2.Client:
    """An HTTP client for webhook receivers and pulled feeds: no proxies from the environment, no
    redirects, SSRF-guarded. `verify`: the TLS context servers' certificates are checked with."""
    transport = httpx2.HTTPTransport(verify=verify, trust_env=False, limits=httpx2.Limits(max_connections=max_connections))
    # httpx2 has no public hook for the network backend; its pool takes one, so set it there.
    transport._pool._network_backend = _GuardedBackend(settings)
    return httpx2.Client(
        transport=transport, timeout=settings.webhook_timeout_seconds, follow_redirects=False, trust_env=False
    )


# --- webhook deliveries: many requests at once from one asyncio loop ---------------------------
#
# Our own small HTTP/1.1 client, for this one hot path only (pulled feeds keep `client` above).
# Why not a library: httpx2/httpcore2 spend ~1.7 ms of CPU per request here (h11's parsing, the
# pool's locks, a thread per request in flight), most of a delivery's cost; aiohttp bypasses its
# resolver for IP-literal hosts (so the address rules would need its private connector API) and
# still parses far more than a webhook answer needs. A webhook request is one POST with a known
# body, and of the answer only the status, Retry-After and the first EXCERPT_BYTES are kept, so
# the client is short: keep-alive per receiver, the address rules on every new connection (resolve,
# refuse, connect to the checked address), TLS with certificate verification against the host
# name, and one total deadline per request (asyncio.timeout) however the receiver drips.

EXCERPT_BYTES = 1000
_HEAD_LIMIT = 64 * 1024  # the answer's status line and headers, at most
_REUSE_BODY = 64 * 1024  # an answer body up to this is read whole, so the connection is kept


class RequestFailed(Exception):
    """No answer: str() says why, for the attempt's record."""


class RequestTimedOut(RequestFailed):
    pass


@dataclass(frozen=True)
class Reply:
    status_code: int
    retry_after: str | None
    excerpt: bytes


@dataclass(frozen=True)
class _Target:
    origin: tuple[str, str, int]  # scheme, host, port: connections are kept per origin
    request_line: bytes  # b"POST /path HTTP/1.1\r\nhost: ...\r\n"


_URL_SAFE = "!#$%&'()*+,/:;=?@[]~-._"  # what stays as it is in a request target (RFC 3986's reserved and unreserved)


class Sender:
    """POSTs to webhook receivers from one asyncio loop (all the calls are made in that loop)."""

    def __init__(self, settings: Settings, verify: ssl.SSLContext | None = None, idle_per_origin: int = 32):
        self.settings = settings
        self._tls = verify or default_tls()
        self._idle: dict[tuple[str, str, int], list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]] = {}
        self._targets: dict[str, _Target] = {}
        self._idle_per_origin = idle_per_origin

    async def post(self, url: str, headers: bytes, body: bytes, total_seconds: float) -> Reply:
        """POST `body` with `headers` (b"name: value\\r\\n" lines) to `url`, over within `total_seconds`."""
        target = self._targets.get(url) or self._target(url)
        try:
            async with asyncio.timeout(total_seconds):
                return await self._exchange(target, headers, body)
        except TimeoutError:
            raise RequestTimedOut(f"no complete answer within {total_seconds:g} s") from None

    def _target(self, url: str) -> _Target:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise RequestFailed(f"UnsupportedURL: {url!r}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        default = port == (443 if parts.scheme == "https" else 80)
        host = parts.hostname
        shown = f"[{host}]" if ":" in host else host
        # percent-encoded as an HTTP client would: a space, a line break or a non-ASCII letter in the
        # stored URL never reaches the request line as itself
        path = quote((parts.path or "/") + (f"?{parts.query}" if parts.query else ""), safe=_URL_SAFE)
        line = f"POST {path} HTTP/1.1\r\nhost: {shown if default else f'{shown}:{port}'}\r\n".encode("ascii")
        if len(self._targets) > 10_000:
            self._targets.clear()
        target = self._targets[url] = _Target((parts.scheme, host, port), line)
        return target

    async def _exchange(self, target: _Target, headers: bytes, body: bytes) -> Reply:
        message = b"%s%scontent-length: %d\r\n\r\n%s" % (target.request_line, headers, len(body), body)
        while True:
            connection = self._checkout(target.origin)
            reused = connection is not None
            if connection is None:
                connection = await self._connect(target.origin)
            reader, writer = connection
            try:
                writer.write(message)
                await writer.drain()
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError as short:
                    if reused and not short.partial:
                        writer.close()  # the receiver closed the kept connection before this request: once more on a new one
                        continue
                    raise RequestFailed("RemoteProtocolError: the receiver closed the connection without an answer") from None
                reply, keep = await self._answer(reader, head)
            except BaseException as error:
                writer.close()
                if reused and isinstance(error, ConnectionError):
                    continue  # a kept connection reset before this request was read: once more on a new one
                if isinstance(error, asyncio.LimitOverrunError):
                    raise RequestFailed(f"RemoteProtocolError: the answer's head is longer than {_HEAD_LIMIT} bytes") from None
                if isinstance(error, (ConnectionError, OSError, asyncio.IncompleteReadError)):
                    raise RequestFailed(f"ReadError: {error}"[:500]) from None
                raise
            if keep:
                self._checkin(target.origin, connection)
            else:
                writer.close()
            return reply

    async def _answer(self, reader: asyncio.StreamReader, head: bytes) -> tuple[Reply, bool]:
        while True:
            lines = head.split(b"\r\n")
            version, _, rest = lines[0].partition(b" ")
            code = rest[:3]
            if not version.startswith(b"HTTP/1.") or not code.isdigit() or not 100 <= int(code) <= 599:
                raise RequestFailed(f"RemoteProtocolError: not an HTTP/1.1 answer: {lines[0][:80]!r}")
            status = int(code)
            if status >= 200 or status == 101:
                break
            head = await reader.readuntil(b"\r\n\r\n")  # 1xx: the real answer follows
        length = retry_after = None
        close = version != b"HTTP/1.1"  # an HTTP/1.0 answer: the connection is not kept
        chunked = False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                if not value.strip().isdigit():
                    raise RequestFailed("RemoteProtocolError: a bad Content-Length")
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif name == b"connection":
                close = close or b"close" in value.lower()
            elif name == b"retry-after":
                retry_after = value.strip().decode("latin-1")
        if status in (204, 304) or status == 101:
            return Reply(status, retry_after, b""), not close and status != 101
        if chunked:
            excerpt, whole = await _chunked(reader)
            return Reply(status, retry_after, excerpt), whole and not close
        if length is not None:
            if length <= _REUSE_BODY:
                taken = await reader.readexactly(length)
                return Reply(status, retry_after, taken[:EXCERPT_BYTES]), not close
            return Reply(status, retry_after, await reader.readexactly(EXCERPT_BYTES)), False
        # no length: the body ends when the connection does
        taken = bytearray()
        while len(taken) < EXCERPT_BYTES and (chunk := await reader.read(EXCERPT_BYTES - len(taken))):
            taken += chunk
        return Reply(status, retry_after, bytes(taken)), False

    def _checkout(self, origin):
        idle = self._idle.get(origin)
        while idle:
            reader, writer = idle.pop()
            if not writer.is_closing() and not reader.at_eof():
                return reader, writer
            writer.close()
        return None

    def _checkin(self, origin, connection) -> None:
        idle = self._idle.setdefault(origin, [])
        if len(idle) < self._idle_per_origin:
            idle.append(connection)
        else:
            connection[1].close()

    async def _connect(self, origin: tuple[str, str, int]):
        scheme, host, port = origin
        try:
            addresses = await asyncio.get_running_loop().run_in_executor(None, resolve, host, port, policy(self.settings))
        except Refused as refused:
            raise RequestFailed(f"ConnectError: refused: {refused}") from None
        tls = self._tls if scheme == "https" else None
        last: Exception | None = None
        for address in addresses:  # the addresses checked, never the name again
            try:
                return await asyncio.open_connection(address, port, ssl=tls, server_hostname=host if tls else None, limit=_HEAD_LIMIT)
            except ssl.SSLError as error:
                raise RequestFailed(f"ConnectError: {error}"[:500]) from None
            except OSError as error:
                last = error
        raise RequestFailed(f"ConnectError: {last or f'no address for {host}'}"[:500])

    def close(self) -> None:
        for idle in self._idle.values():
            for _, writer in idle:
                writer.close()
        self._idle.clear()


async def _chunked(reader: asyncio.StreamReader) -> tuple[bytes, bool]:
    """The first EXCERPT_BYTES of a chunked body, and whether the whole body was read (so the connection can be kept)."""
    taken = bytearray()
    read = 0
    while True:
        size_line = await reader.readuntil(b"\r\n")
        try:
            size = int(size_line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise RequestFailed("RemoteProtocolError: a bad chunk size") from None
        if size < 0:
            raise RequestFailed("RemoteProtocolError: a bad chunk size")
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers
                pass
            return bytes(taken), True
        read += size
        if read > _REUSE_BODY:
            need = max(0, EXCERPT_BYTES - len(taken))
            taken += await reader.readexactly(min(size, need))
            return bytes(taken[:EXCERPT_BYTES]), False
        chunk = await reader.readexactly(size + 2)
        if len(taken) < EXCERPT_BYTES:
            taken += chunk[: min(size, EXCERPT_BYTES - len(taken))]
