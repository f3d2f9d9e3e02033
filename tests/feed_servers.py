"""A supplier's servers for pull-feed tests: HTTP(S) in a thread and pyftpdlib as FTP and FTPS.

    http = SupplierHttp()                      # http://127.0.0.1:<port>
    http.documents["/stock.csv"] = Document(b"...", etag='"v1"', last_modified="...", auth=("u", "p"))
    http.routes["/moved"] = lambda handler: handler.redirect("http://10.0.0.1/x")
    ftp = SupplierFtp(tmp_path, tls_files=None)  # files are those in `ftp.root`; user "supplier"

Both keep what they were asked (`http.requests`: (path, headers) pairs) and stop with `.stop()`.
"""

from __future__ import annotations

import base64
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler, ThrottledDTPHandler, TLS_FTPHandler
from pyftpdlib.servers import ThreadedFTPServer

from stockhub.gateways.ftp_tls import server_context

FTP_USER, FTP_PASSWORD = "supplier", "s3cret:p@ss"


@dataclass
class Document:
    body: bytes
    etag: str | None = None
    last_modified: str | None = None
    content_type: str = "text/csv"
    auth: tuple[str, str] | None = None  # basic auth required


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True


class SupplierHttp:
    def __init__(self, tls: ssl.SSLContext | None = None):
        self.documents: dict[str, Document] = {}
        self.routes: dict[str, Callable[[BaseHTTPRequestHandler], None]] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.stopping = threading.Event()  # handlers that hang or drip give up when it is set
        supplier = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                supplier.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
                route = supplier.routes.get(self.path)
                if route is not None:
                    return route(self)
                document = supplier.documents.get(self.path)
                if document is None:
                    return self.answer(404, b"not here")
                return supplier._serve(self, document)

            def answer(self, status: int, body: bytes = b"", headers: dict | None = None) -> None:
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def redirect(self, location: str, status: int = 302) -> None:
                self.answer(status, headers={"Location": location})

            def log_message(self, *args):
                pass

        self._server = _HttpServer(("127.0.0.1", 0), Handler)
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self.port = self._server.server_address[1]
        self.scheme = "https" if tls is not None else "http"
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def url(self, path: str, userinfo: str = "") -> str:
        return f"{self.scheme}://{userinfo + '@' if userinfo else ''}127.0.0.1:{self.port}{path}"

    def _serve(self, handler, document: Document) -> None:
        if document.auth is not None:
            expected = "Basic " + base64.b64encode(":".join(document.auth).encode()).decode()
            if handler.headers.get("Authorization") != expected:
                return handler.answer(401, b"who are you?", {"WWW-Authenticate": 'Basic realm="feeds"'})
        validators = {}
        if document.etag:
            validators["ETag"] = document.etag
        if document.last_modified:
            validators["Last-Modified"] = document.last_modified
        if document.etag and handler.headers.get("If-None-Match") == document.etag:
            return handler.answer(304, headers=validators)
        if not handler.headers.get("If-None-Match") and document.last_modified and handler.headers.get("If-Modified-Since") == document.last_modified:
            return handler.answer(304, headers=validators)
        handler.answer(200, document.body, validators | {"Content-Type": document.content_type})

    def hang(self, handler) -> None:
        """Accept the request and answer nothing until the server stops."""
        self.stopping.wait(30)

    def drip(self, handler) -> None:
        """Answer at once, then a byte every 50 ms for ever (until the client goes or the server stops)."""
        handler.send_response(200)
        handler.send_header("Content-Type", "text/csv")
        handler.end_headers()
        handler.wfile.write(b"barcode,price,quantity\n")
        while not self.stopping.wait(0.05):
            try:
                handler.wfile.write(b"1")
                handler.wfile.flush()
            except OSError:
                return

    def endless(self, handler) -> None:
        """A document without a length that never ends: chunks as fast as the client reads them."""
        handler.send_response(200)
        handler.send_header("Content-Type", "text/csv")
        handler.send_header("Connection", "close")
        handler.end_headers()
        chunk = b"4006381333931,1.00,1\n" * 3000
        try:
            while not self.stopping.is_set():
                handler.wfile.write(chunk)
        except OSError:
            return

    def stop(self) -> None:
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()


class _FtpServer(ThreadedFTPServer):
    """ThreadedFTPServer keeps its stop flag and lock on the class: each server gets its own."""

    def __init__(self, address, handler):
        self._exit = threading.Event()
        self._lock = threading.Lock()
        super().__init__(address, handler)


class SupplierFtp:
    """A supplier's FTP server on a loopback port serving the files in `root` to FTP_USER;
    FTPS (explicit TLS, required) when `tls_files` (cert, key) are given; sending at most
    `send_bytes_per_second` on a data connection when given."""

    def __init__(self, root: Path, tls_files: tuple[Path, Path] | None = None, send_bytes_per_second: int | None = None):
        self.root = root
        authorizer = DummyAuthorizer()
        authorizer.add_user(FTP_USER, FTP_PASSWORD, str(root), perm="elr")
        attributes = {"authorizer": authorizer, "banner": "supplier ftp", "use_sendfile": False, "timeout": 30, "auth_failed_timeout": 0.01}
        base: type = FTPHandler
        if tls_files is not None:
            base = TLS_FTPHandler
            attributes |= {"ssl_context": server_context(*tls_files), "tls_control_required": True, "tls_data_required": True}
        if send_bytes_per_second is not None:  # a server that drips its files
            attributes["dtp_handler"] = type("Dripping", (ThrottledDTPHandler,), {"write_limit": send_bytes_per_second})
        self._server = _FtpServer(("127.0.0.1", 0), type("SupplierHandler", (base,), attributes))
        self.port = self._server.socket.getsockname()[1]
        self.scheme = "ftps" if tls_files is not None else "ftp"
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def url(self, path: str, userinfo: str | None = None) -> str:
        return f"{self.scheme}://{userinfo + '@' if userinfo else ''}127.0.0.1:{self.port}/{path.lstrip('/')}"

    def put(self, name: str, body: bytes, mtime: float | None = None) -> Path:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
        if mtime is not None:
            os.utime(path, (mtime, mtime))
        return path

    def _serve(self) -> None:
        try:
            while not self._stopping.is_set():
                self._server.serve_forever(timeout=0.05, blocking=False, handle_exit=False)
        finally:
            self._server.close_all()
            self._stopped.set()

    def stop(self) -> None:
        self._stopping.set()
        self._stopped.wait(10)


class SilentServer:
    """A TCP port that accepts connections and never says anything (an FTP server that hangs)."""

    def __init__(self):
        self._socket = socket.create_server(("127.0.0.1", 0))
        self.port = self._socket.getsockname()[1]

    def stop(self) -> None:
        self._socket.close()


def wait_until(condition: Callable[[], bool], timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.01)
