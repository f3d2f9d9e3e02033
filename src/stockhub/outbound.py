"""Requests stockhub makes to other people's servers (webhook receivers), guarded against SSRF.

A receiver URL is checked when it is subscribed (`check_url`) and again on every connection:
the HTTP client's network backend resolves the host itself, refuses it if any address is
loopback, private or link-local (unless settings allow), and connects to the address it
checked, so a DNS answer that changes between the check and the connection cannot slip
through.

Every request made under `deadline(seconds)` must be over within that time, however the
receiver drips its answer: each network operation waits at most what is left of it (httpx's own
timeouts bound one operation each, not the whole request).
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

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


def client(settings: Settings, max_connections: int = 100, verify: ssl.SSLContext | bool = True) -> httpx2.Client:
    """An HTTP client for webhook receivers and pulled feeds: no proxies from the environment, no
    redirects, SSRF-guarded. `verify`: the TLS context servers' certificates are checked with."""
    transport = httpx2.HTTPTransport(verify=verify, trust_env=False, limits=httpx2.Limits(max_connections=max_connections))
    # httpx2 has no public hook for the network backend; its pool takes one, so set it there.
    transport._pool._network_backend = _GuardedBackend(settings)
    return httpx2.Client(
        transport=transport, timeout=settings.webhook_timeout_seconds, follow_redirects=False, trust_env=False
    )
