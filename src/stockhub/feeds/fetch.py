"""Fetching a pull feed's document from the supplier's server: http(s) with httpx2, ftp(s) with ftplib.

    fetch(Source(url, username, password), etag=..., last_modified=..., settings=hub.settings)
        → Fetched(body, etag, last_modified, content_type) | NOT_MODIFIED

- **Conditional.** HTTP sends `If-None-Match` / `If-Modified-Since` from the last fetch and
  answers `NOT_MODIFIED` on 304. FTP has no such request: the file's `MDTM` time is its
  `last_modified` and its `SIZE` its `etag` (`size:<bytes>`); when both match the last fetch,
  the file is not downloaded and the answer is `NOT_MODIFIED`.
- **Bounded.** `timeout` is the whole fetch's time (connect, TLS, login, every redirect and every
  byte), however slowly the server drips its answer; `max_bytes` caps the document, checked
  before the download where the server tells the size and while reading where it does not.
- **SSRF.** The addresses stockhub may fetch from are the webhooks' rules (`outbound.py`):
  no loopback, private or link-local address unless the settings `webhook_allow_loopback` /
  `webhook_allow_private` allow it (pass `settings`; without them everything but public
  addresses is refused; `allow_loopback` / `allow_private` override one rule each). The host is
  checked before connecting, the connection goes to the address that was checked (HTTP: the
  guarded network backend of `outbound.client`; FTP: the checked address, and passive data
  connections only to the server's own address), and so is every redirect (at most 5,
  followed here, credentials only re-sent to the same origin).
- **Credentials** come from `Source.username` / `Source.password`, else from the URL
  (RFC 1738 `scheme://user:pass@host/path`, percent-decoded). HTTP sends them as basic auth;
  FTP logs in with them (anonymous without). `Source.redacted()` is the URL to show.
- **Failures** raise `FetchFailed`: `.reason` is a sentence for the retailer (never the password),
  `.retryable` says whether trying again later may help (timeouts, connection errors, HTTP 5xx,
  408 and 429, FTP 4xx: yes; DNS: yes; 401, 404, TLS, refused addresses, too large: no).

FTPS is explicit TLS (`AUTH TLS`, then `PROT P` for the data connection, which resumes the
control connection's TLS session as servers requiring session reuse ask).
"""

from __future__ import annotations

import ftplib
import re
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from urllib.parse import quote, unquote, urljoin, urlsplit, urlunsplit

import httpcore2
import httpx2

from stockhub import outbound
from stockhub.domain.webhooks import AddressPolicy
from stockhub.errors import FieldError, Invalid
from stockhub.settings import Settings

DEFAULT_MAX_BYTES = 50 * 1024 * 1024
MAX_REDIRECTS = 5
SCHEMES = {"http": 80, "https": 443, "ftp": 21, "ftps": 21}
REDIRECTS = {301, 302, 303, 307, 308}
USER_AGENT = "stockhub-feed-pull/1"
_CHUNK = 64 * 1024
_SHOWN_REPLY_CHARS = 200
# Query parameters whose values are hidden in messages (a token in a feed URL is a password).
_SECRET_PARAMETER = re.compile(r"token|key|secret|pass|pwd|sig|auth|credential|session", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class Source:
    """Where a feed's document is: an http, https, ftp or ftps URL, with credentials in it or beside it."""

    url: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    def credentials(self) -> tuple[str | None, str | None]:
        """(user name, password): the fields where set, else the URL's, percent-decoded."""
        parts = urlsplit(self.url)
        username = self.username if self.username is not None else _decoded(parts.username)
        password = self.password if self.password is not None else _decoded(parts.password)
        return username, password

    def redacted(self) -> str:
        """The URL to show people: the user name kept, no password, secret-looking query values hidden."""
        parts = urlsplit(self.url)
        username, _ = self.credentials()
        return _shown(parts, username)

    def __repr__(self) -> str:
        return f"Source({self.redacted()!r})"


@dataclass(frozen=True)
class Fetched:
    body: bytes
    etag: str | None
    last_modified: str | None
    content_type: str | None


class NotModified:
    """The document has not changed since the fetch whose `etag` / `last_modified` were given."""

    _instance: NotModified | None = None

    def __new__(cls) -> NotModified:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "NOT_MODIFIED"


NOT_MODIFIED = NotModified()


class FetchFailed(Exception):
    """The document could not be fetched: `reason` says why, in words safe to show a retailer."""

    def __init__(self, reason: str, *, retryable: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable


def fetch(
    source: Source,
    *,
    etag: str | None = None,
    last_modified: str | None = None,
    timeout: float = 30,
    max_bytes: int = DEFAULT_MAX_BYTES,
    allow_private: bool | None = None,
    allow_loopback: bool | None = None,
    settings: Settings | None = None,
    tls_context: ssl.SSLContext | None = None,
) -> Fetched | NotModified:
    """The document at `source`, or NOT_MODIFIED when the validators of the last fetch still hold.

    `settings`: whose `webhook_allow_loopback` / `webhook_allow_private` say which addresses may
    be fetched from (none but public ones without settings); `allow_loopback` / `allow_private`
    override them. `tls_context`: the certificates https and ftps servers are checked with
    (default: the system's trusted authorities). Raises FetchFailed.
    """
    parts = _checked_url(source)
    rules = _rules(settings, allow_loopback, allow_private)
    username, password = source.credentials()
    if parts.scheme in ("http", "https"):
        return _Http(source, rules, timeout, max_bytes, tls_context).get(parts, username, password, etag, last_modified)
    return _Ftp(source, parts, rules, timeout, max_bytes, tls_context).get(username, password, etag, last_modified)


def check_source(source: Source, field: str = "source_url") -> None:
    """Invalid (naming `field`) unless the URL could be fetched at all (scheme, host, port, path); no network."""
    try:
        _checked_url(source)
    except FetchFailed as failed:
        raise Invalid(f"{field}: {failed.reason}", [FieldError(field, failed.reason)]) from None


# --- URLs ----------------------------------------------------------------------------------


def _decoded(value: str | None) -> str | None:
    return unquote(value) if value is not None else None


def _host_port(parts) -> str:
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{parts.port}" if parts.port else host


def _shown(parts, username: str | None = None) -> str:
    netloc = _host_port(parts)
    if username:
        netloc = f"{quote(username, safe='')}@{netloc}"
    query = "&".join(
        f"{pair.partition('=')[0]}=…" if _SECRET_PARAMETER.search(unquote(pair.partition("=")[0])) else pair
        for pair in parts.query.split("&")
    ) if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def _checked_url(source: Source):
    try:
        parts = urlsplit(source.url.strip())
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise FetchFailed("the source URL is not a valid URL (check the host and port)") from None
    if parts.scheme not in SCHEMES:
        raise FetchFailed("the source URL must start with http://, https://, ftp:// or ftps://")
    if not parts.hostname:
        raise FetchFailed("the source URL has no host")
    if _CONTROL.search(source.url.strip()) or _CONTROL.search(unquote(parts.path)):
        raise FetchFailed("the source URL holds control characters (a line break?)")
    if parts.scheme in ("ftp", "ftps") and (not parts.path.strip("/") or parts.path.endswith("/")):
        raise FetchFailed(f"the source URL names a folder, not a file: {_shown(parts)}")
    return parts


def _rules(settings: Settings | None, allow_loopback: bool | None, allow_private: bool | None) -> AddressPolicy:
    base = outbound.policy(settings) if settings is not None else AddressPolicy()
    return AddressPolicy(
        allow_loopback=base.allow_loopback if allow_loopback is None else allow_loopback,
        allow_private=base.allow_private if allow_private is None else allow_private,
    )


def _addresses(host: str, port: int, rules: AddressPolicy, shown: str, *, redirected: bool) -> list[str]:
    try:
        return outbound.resolve(host, port, rules)
    except outbound.Unresolvable:
        raise FetchFailed(f"DNS lookup failed for host {host}", retryable=True) from None
    except outbound.Refused as refused:
        what = "redirect to a private address refused" if redirected else "fetching from a private address refused"
        raise FetchFailed(f"{what}: {shown} ({refused})") from None


def _size(n: int) -> str:
    mb = 1024 * 1024
    if n >= mb and n % mb == 0:
        return f"{n // mb} MB"
    if n >= 1024 and n % 1024 == 0:
        return f"{n // 1024} KB"
    return f"{n} bytes"


def _too_large(max_bytes: int, shown: str) -> FetchFailed:
    return FetchFailed(f"document larger than {_size(max_bytes)}: {shown}")


def _timed_out(timeout: float, shown: str) -> FetchFailed:
    return FetchFailed(f"timed out after {timeout:g} s fetching {shown}", retryable=True)


def _tls_failure(error: BaseException | None, shown: str) -> FetchFailed | None:
    """The FetchFailed for a TLS error somewhere in `error`'s chain, or None."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, ssl.SSLCertVerificationError):
            detail = error.verify_message or "the certificate was not accepted"
            return FetchFailed(f"TLS certificate verify failed for {shown} ({detail})")
        if isinstance(error, ssl.SSLError):
            return FetchFailed(f"TLS handshake failed with {shown} ({error.reason or error})")
        error = error.__cause__ or error.__context__
    return None


def _printable(text: str) -> str:
    text = _CONTROL.sub(" ", text).strip()
    return text if len(text) <= _SHOWN_REPLY_CHARS else text[: _SHOWN_REPLY_CHARS - 1] + "…"


# --- HTTP ----------------------------------------------------------------------------------


class _Http:
    def __init__(self, source: Source, rules: AddressPolicy, timeout: float, max_bytes: int, tls_context):
        self.source, self.rules, self.timeout, self.max_bytes = source, rules, timeout, max_bytes
        self.tls_context = tls_context

    def get(self, parts, username, password, etag, last_modified) -> Fetched | NotModified:
        headers = {"User-Agent": USER_AGENT, "Accept": "*/*"}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        auth = httpx2.BasicAuth(username or "", password or "") if username is not None or password is not None else None
        settings = Settings.model_construct(
            webhook_allow_loopback=self.rules.allow_loopback, webhook_allow_private=self.rules.allow_private
        )
        origin = (parts.scheme, parts.hostname, parts.port or SCHEMES[parts.scheme])
        url = urlunsplit((parts.scheme, _host_port(parts), parts.path or "/", parts.query, ""))
        shown = self.source.redacted()
        try:
            with outbound.client(settings, max_connections=2, verify=self.tls_context or True) as client:
                with outbound.deadline(self.timeout):
                    for hop in range(MAX_REDIRECTS + 1):
                        current = urlsplit(url)
                        if hop:
                            shown = _shown(current)
                        _addresses(current.hostname, current.port or SCHEMES[current.scheme], self.rules, shown, redirected=hop > 0)
                        same_origin = (current.scheme, current.hostname, current.port or SCHEMES[current.scheme]) == origin
                        request = client.build_request("GET", url, headers=headers, timeout=self.timeout)
                        response = client.send(request, auth=auth if same_origin else None, stream=True)
                        try:
                            if response.status_code in REDIRECTS:
                                url = self._redirect(response, url, shown)
                                continue
                            return self._answer(response, shown)
                        finally:
                            response.close()
            raise FetchFailed(f"more than {MAX_REDIRECTS} redirects from {self.source.redacted()}")
        except FetchFailed:
            raise
        except httpx2.TimeoutException:
            raise _timed_out(self.timeout, shown) from None
        except httpx2.ConnectError as error:
            raise self._connect_failure(error, shown) from None
        except httpx2.DecodingError:
            raise FetchFailed(f"the document from {shown} could not be decoded (its Content-Encoding is broken)") from None
        except (httpx2.RemoteProtocolError, httpx2.ReadError, httpx2.WriteError) as error:
            tls = _tls_failure(error, shown)
            raise tls or FetchFailed(f"the connection to {shown} broke off ({_printable(str(error)) or type(error).__name__})", retryable=True) from None
        except httpx2.HTTPError as error:
            raise FetchFailed(f"fetching {shown} failed ({_printable(str(error)) or type(error).__name__})", retryable=True) from None

    def _redirect(self, response: httpx2.Response, url: str, shown: str) -> str:
        location = response.headers.get("location")
        if not location:
            raise FetchFailed(f"HTTP {response.status_code} redirect without a Location from {shown}")
        target = urljoin(url, location.strip())
        parts = urlsplit(target)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise FetchFailed(f"redirect from {shown} to a URL that is not http or https refused")
        try:
            parts.port  # noqa: B018 - raises on a bad port
        except ValueError:
            raise FetchFailed(f"redirect from {shown} to an invalid URL refused") from None
        if _CONTROL.search(target):
            raise FetchFailed(f"redirect from {shown} to an invalid URL refused")
        # Credentials are never carried in a redirect's URL; the fragment is not sent.
        return urlunsplit((parts.scheme, _host_port(parts), parts.path or "/", parts.query, ""))

    def _answer(self, response: httpx2.Response, shown: str) -> Fetched | NotModified:
        status = response.status_code
        if status == 304:
            return NOT_MODIFIED
        if not 200 <= status < 300:
            try:
                phrase = HTTPStatus(status).phrase
            except ValueError:
                phrase = ""
            retryable = status >= 500 or status in (408, 429)
            raise FetchFailed(f"HTTP {status} {phrase} from {shown}".replace("  ", " "), retryable=retryable)
        length = response.headers.get("content-length")
        if length and length.strip().isdigit() and int(length) > self.max_bytes and "content-encoding" not in response.headers:
            raise _too_large(self.max_bytes, shown)
        body = bytearray()
        for chunk in response.iter_bytes(_CHUNK):
            body += chunk
            if len(body) > self.max_bytes:
                raise _too_large(self.max_bytes, shown)
        return Fetched(
            bytes(body),
            etag=response.headers.get("etag"),
            last_modified=response.headers.get("last-modified"),
            content_type=response.headers.get("content-type"),
        )

    def _connect_failure(self, error: httpx2.ConnectError, shown: str) -> FetchFailed:
        message = str(error)
        if message.startswith("refused: "):  # the guarded backend: the host now resolves somewhere forbidden
            return FetchFailed(f"fetching from a private address refused: {shown} ({message.removeprefix('refused: ')})")
        if (tls := _tls_failure(error, shown)) is not None:
            return tls
        cause = error.__cause__ or error.__context__
        if isinstance(cause, httpcore2.ConnectError):
            cause = cause.__cause__ or cause.__context__ or cause
        why = "connection refused" if isinstance(cause, ConnectionRefusedError) or "refused" in message.lower() else _printable(message) or "connection failed"
        return FetchFailed(f"could not connect to {shown} ({why})", retryable=True)


# --- FTP -----------------------------------------------------------------------------------


class _Watchdog:
    """Ends an FTP session's sockets when the fetch's deadline passes, whatever call is waiting on them."""

    def __init__(self, seconds: float):
        self.fired = False
        self.ends_at = time.monotonic() + seconds
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True

    def __enter__(self) -> _Watchdog:
        self._timer.start()
        return self

    def __exit__(self, *exc) -> None:
        self._timer.cancel()

    def left(self) -> float:
        return max(self.ends_at - time.monotonic(), 0.001)

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)
            if self.fired:
                self._end(sock)

    def _fire(self) -> None:
        with self._lock:
            self.fired = True
            for sock in self._sockets:
                self._end(sock)

    @staticmethod
    def _end(sock: socket.socket) -> None:
        try:  # the plain socket's shutdown: an SSLSocket's own would change its state under a reader
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
        except OSError:
            pass


class _Guarded:
    """ftplib with every socket watched, passive data connections only to the server's own address."""

    watchdog: _Watchdog

    def makepasv(self):
        _, port = super().makepasv()
        return self.sock.getpeername()[0], port

    def ntransfercmd(self, cmd, rest=None):
        self.timeout = self.watchdog.left()  # the data connection's every wait ends by the deadline too
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        self.watchdog.watch(conn)
        if getattr(self, "_prot_p", False):
            # Resume the control connection's session: servers that require TLS session reuse accept it.
            conn = self.context.wrap_socket(conn, server_hostname=self.host, session=self.sock.session)
            self.watchdog.watch(conn)  # the wrapped socket took over the connection
        return conn, size


class _FTP(_Guarded, ftplib.FTP):
    pass


class _FTPS(_Guarded, ftplib.FTP_TLS):
    pass


class _Ftp:
    def __init__(self, source: Source, parts, rules: AddressPolicy, timeout: float, max_bytes: int, tls_context):
        self.source, self.parts, self.rules = source, parts, rules
        self.timeout, self.max_bytes, self.tls_context = timeout, max_bytes, tls_context
        self.shown = source.redacted()
        # RFC 1738: the path is relative to the login folder; %2F makes it absolute.
        self.path = unquote(parts.path[1:] if parts.path.startswith("/") else parts.path)

    def get(self, username, password, etag, last_modified) -> Fetched | NotModified:
        parts = self.parts
        port = parts.port or 21
        addresses = _addresses(parts.hostname, port, self.rules, self.shown, redirected=False)
        started = time.monotonic()
        with _Watchdog(self.timeout) as watchdog:
            ftp = self._client()
            ftp.watchdog = watchdog
            try:
                return self._session(ftp, addresses, port, username, password, etag, last_modified)
            except FetchFailed:
                raise
            except (ftplib.error_temp, ftplib.error_perm, ftplib.error_reply, ftplib.error_proto) as error:
                raise self._reply_failure(error, "") from None
            except (OSError, EOFError) as error:
                if watchdog.fired or isinstance(error, TimeoutError) or time.monotonic() - started >= self.timeout:
                    raise _timed_out(self.timeout, self.shown) from None
                if (tls := _tls_failure(error, self.shown)) is not None:
                    raise tls from None
                if isinstance(error, ConnectionRefusedError):
                    raise FetchFailed(f"could not connect to {self.shown} (connection refused)", retryable=True) from None
                detail = _printable(str(error)) or "the server closed the connection"
                raise FetchFailed(f"the connection to {self.shown} broke off ({detail})", retryable=True) from None
            finally:
                ftp.close()

    def _client(self) -> ftplib.FTP:
        if self.parts.scheme == "ftps":
            context = self.tls_context or outbound.default_tls()
            return _FTPS(context=context, timeout=self.timeout)
        return _FTP(timeout=self.timeout)

    def _session(self, ftp, addresses, port, username, password, etag, last_modified) -> Fetched | NotModified:
        for address in addresses:  # the addresses that were checked, not the name again
            try:
                ftp.connect(address, port, timeout=ftp.watchdog.left())
                break
            except OSError:
                if address == addresses[-1] or ftp.watchdog.fired:
                    raise
        ftp.watchdog.watch(ftp.sock)
        ftp.host = self.parts.hostname  # what the TLS certificate must name
        if isinstance(ftp, ftplib.FTP_TLS):
            try:
                ftp.auth()
            except ftplib.error_perm as error:
                raise FetchFailed(f"the FTP server at {self.shown} does not offer TLS (AUTH TLS answered {_printable(str(error))})") from None
            ftp.watchdog.watch(ftp.sock)
        user, secret = (username, password or "") if username is not None else ("anonymous", password or "anonymous@")
        try:
            ftp.login(user, secret)  # FTPS: the control connection is already under TLS
        except ftplib.error_perm as error:
            if str(error).startswith("530"):
                raise FetchFailed(f"FTP 530 login incorrect for {self.shown}") from None
            raise
        if isinstance(ftp, ftplib.FTP_TLS):
            ftp.prot_p()
        ftp.set_pasv(True)
        ftp.voidcmd("TYPE I")
        modified = self._mdtm(ftp)
        size = self._size(ftp)
        if size is not None and size > self.max_bytes:
            raise _too_large(self.max_bytes, self.shown)
        current_etag = f"size:{size}" if size is not None else None
        if modified is not None and last_modified == modified and (etag is None or current_etag is None or etag == current_etag):
            self._quit(ftp)
            return NOT_MODIFIED
        body = bytearray()

        def keep(chunk: bytes) -> None:
            body.extend(chunk)
            if len(body) > self.max_bytes:
                raise _too_large(self.max_bytes, self.shown)

        ftp.retrbinary(f"RETR {self.path}", keep, blocksize=_CHUNK)
        self._quit(ftp)
        return Fetched(bytes(body), etag=current_etag, last_modified=modified, content_type=None)

    def _mdtm(self, ftp) -> str | None:
        """The file's modification time as the server tells it (RFC 3659: YYYYMMDDHHMMSS[.sss]), or None."""
        try:
            reply = ftp.sendcmd(f"MDTM {self.path}")
        except ftplib.error_perm as error:
            if str(error).startswith("550"):
                raise self._reply_failure(error, "file not found or not readable: ") from None
            return None  # 500/502: the server does not know MDTM
        value = reply[4:].strip() if reply.startswith("213") else ""
        return value if re.fullmatch(r"\d{14}(\.\d+)?", value) else None

    def _size(self, ftp) -> int | None:
        try:
            reply = ftp.sendcmd(f"SIZE {self.path}")
        except ftplib.error_perm as error:
            if str(error).startswith("550"):
                raise self._reply_failure(error, "file not found or not readable: ") from None
            return None
        value = reply[4:].strip() if reply.startswith("213") else ""
        return int(value) if value.isdigit() else None

    @staticmethod
    def _quit(ftp) -> None:
        try:
            ftp.quit()
        except (ftplib.Error, OSError, EOFError):
            pass

    def _reply_failure(self, error: Exception, what: str) -> FetchFailed:
        reply = _printable(str(error))
        code = reply[:3]
        retryable = isinstance(error, ftplib.error_temp) or code.startswith("4")
        if code == "550" and not what:
            what = "file not found or not readable: "
        return FetchFailed(f"FTP {reply} ({what}{self.shown})", retryable=retryable)
