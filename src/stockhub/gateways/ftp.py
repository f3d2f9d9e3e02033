"""The FTP/FTPS gateway (NearSt-compatible): a POS logs in as `apikey` with the store's upload key
and puts its stock file; the file becomes an upload exactly as over HTTP.

Built on pyftpdlib. `ThreadedFTPServer` serves each connection in its own thread, so the key
lookup and the hand-over of a finished file (copy, fsync, upload record) never hold up other
stores; parsing happens later, in the workers, like every other upload.

- A login sees only its store's folder (`services.upload_log.store_folder`), served from the
  file storage by `ftp_fs.StorageFS`, which maps every path, `..` and absolute ones included,
  inside it. A received file becomes an upload through `uploads.receive_file`, like an HTTP
  upload, and is kept in the folder; stockhub puts `upload_log.txt` there.
- Allowed: list, change folder, make folders, upload, download. Refused (550): delete,
  rename, append, chmod, and writing `upload_log.txt`, which stockhub writes.
- A file is taken in when its transfer completes and before the 226 reply, so a 226 means
  the upload is durable (design invariant 4); `products.csv` is custom product data, any
  other name a stock file.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from pyftpdlib.authorizers import AuthenticationFailed
from pyftpdlib.handlers import DTPHandler, FTPHandler, TLS_DTPHandler, TLS_FTPHandler
from pyftpdlib.servers import ThreadedFTPServer

from stockhub import ids, logs
from stockhub.errors import ServiceError
from stockhub.gateways.ftp_fs import Incoming, StorageFS
from stockhub.gateways.ftp_tls import server_context
from stockhub.gateways.login_throttle import LoginThrottle
from stockhub.services import uploads
from stockhub.services.context import Hub
from stockhub.services.tenancy import store_for_upload_key
from stockhub.services.upload_log import FILENAME as UPLOAD_LOG
from stockhub.services.upload_log import store_folder

log = logging.getLogger(__name__)

USER = "apikey"
# pyftpdlib permission letters: e change folder, l list, r download, m make folder, w upload.
PERMISSIONS = "elrmw"
BANNER = "stockhub FTP gateway: log in as apikey with your store's upload key"


class UploadKeyAuthorizer:
    """User `apikey` (any case), password the store's upload key: the key alone names the store."""

    def __init__(self, hub: Hub, throttle: LoginThrottle):
        self.hub = hub
        self.throttle = throttle

    def validate_authentication(self, username: str, password: str, handler: StoreHandler) -> None:
        address = handler.remote_ip
        if self.throttle.refused_for(address):
            handler.auth_failed_timeout = 0
            raise AuthenticationFailed("too many failed logins from your address: try again later")
        store = store_for_upload_key(self.hub, password) if username.lower() == USER and password else None
        if store is None:
            handler.auth_failed_timeout = self.throttle.failed(address)
            raise AuthenticationFailed(f"unknown upload key: log in as {USER} with the store's upload key as the password")
        self.throttle.succeeded(address)
        handler.store = store
        logs.bind(store_id=ids.encode("store", store.id), client=address)  # this connection's thread: every later line of it

    def get_home_dir(self, username: str) -> str:
        return ""  # per store, not per user name: StoreHandler.handle_auth_success sets it

    def has_user(self, username: str) -> bool:
        return username.lower() == USER

    def has_perm(self, username: str, perm: str, path: str | None = None) -> bool:
        if perm == "w" and path is not None and os.path.basename(path) == UPLOAD_LOG:
            return False
        return perm in PERMISSIONS

    def get_perms(self, username: str) -> str:
        return PERMISSIONS

    def get_msg_login(self, username: str) -> str:
        return "Logged in: upload stock.csv (or .xlsx), or products.csv; upload_log.txt describes the latest upload."

    def get_msg_quit(self, username: str) -> str:
        return "Goodbye."

    def impersonate_user(self, username: str, password: str) -> None:
        pass  # one system user serves every store: the folder confines each

    def terminate_impersonation(self, username: str) -> None:
        pass


class StoreHandler(FTPHandler):
    """A control connection; `store` is the stores row once logged in."""

    hub: Hub
    throttle: LoginThrottle
    store = None

    login_timeout: float

    def on_connect(self) -> None:
        if self.throttle.refused_for(self.remote_ip):
            self.respond("421 Too many failed logins from your address: try again later.")
            self.close_when_done()
            return
        # an absolute deadline: commands (NOOP, wrong logins) do not extend it, unlike the idle timeout
        self.ioloop.call_later(self.login_timeout, self._login_deadline, _errback=self.handle_error)

    def _login_deadline(self) -> None:
        if not self.authenticated and not self._closed and not self._closing:
            self.respond("421 Not logged in in time: closing the connection.", logfun=log.info)
            self.close_when_done()

    def handle_auth_success(self, home: str, password: str, msg_login: str) -> None:
        super().handle_auth_success("/" + store_folder(self.store.id), password, msg_login)

    def take_in(self, incoming: Incoming) -> tuple[str, object] | None:
        """Hand a completely received file to ingestion and keep it in the store's folder; a
        reply replacing the 226 if that fails. The local spool goes either way."""
        name = os.path.basename(incoming.key)
        grant = uploads.UploadGrant(self.store.id, self.store.organization_id, uploads.kind_for_filename(name), nonce=None)
        try:
            received = uploads.receive_file(self.hub, grant, Path(incoming.name))
            recorded = uploads.record_upload(self.hub, grant, received, source="ftp", filename=name)
            with open(incoming.name, "rb") as spool:
                self.hub.storage.put(incoming.key, spool)  # listed and downloadable like before
        except ServiceError as problem:
            return (f"552 {problem.detail or problem.title}.", log.info)
        except Exception:
            log.exception("could not take in %s", incoming.key)
            return ("451 The file could not be stored: please send it again.", log.error)
        finally:
            Path(incoming.name).unlink(missing_ok=True)
        with logs.bound(upload_id=recorded["upload_id"]):
            log.info("received %s over FTP", name)
        return None

    def on_incomplete_file_received(self, file: str) -> None:
        Path(file).unlink(missing_ok=True)  # an aborted or oversize transfer is no upload


class TakeInOnClose:
    """Data-channel behaviour: the size cap, and the hand-over before the 226 reply.

    `handle_read_event` is wrapped, not `handle_read`: pyftpdlib's DTPHandler aliases the
    former to the latter at class level, and the TLS mixin calls it after decrypting.
    """

    max_bytes: int
    _taken_in = False
    _over_cap = False

    def handle_read_event(self) -> None:
        super().handle_read_event()
        if self.receive and not self._over_cap and self.tot_bytes_received > self.max_bytes:
            self._over_cap = True
            self._resp = (f"552 The file is larger than the limit of {self.max_bytes} bytes: not taken.", log.info)
            self.transfer_finished = False
            self.close()

    def close(self) -> None:
        if not self._closed and not self._taken_in and self.receive and self.transfer_finished and self.file_obj is not None:
            self._taken_in = True
            self.file_obj.close()
            failure = self.cmd_channel.take_in(self.file_obj)
            if failure is not None:
                self._resp = failure
                self.transfer_finished = False  # so the file is removed, not reported as received
        super().close()


def _passive_ports(text: str | None) -> list[int] | None:
    if not text:
        return None
    first, _, last = text.partition("-")
    try:
        ports = list(range(int(first), int(last or first) + 1))
    except ValueError:
        raise ValueError(f"ftp_passive_ports must look like 60000-60099, not {text!r}") from None
    if not ports:
        raise ValueError(f"ftp_passive_ports {text!r} is an empty range")
    return ports


def handler_class(hub: Hub, throttle: LoginThrottle) -> type[StoreHandler]:
    """A handler class configured from the settings (a fresh class per gateway: pyftpdlib
    configures handlers through class attributes)."""
    settings = hub.settings
    tls = settings.ftp_tls_cert is not None
    if settings.ftp_tls_required and not tls:
        raise ValueError("ftp_tls_required is set but there is no ftp_tls_cert")
    data_base = TLS_DTPHandler if tls else DTPHandler
    data_handler = type("StoreDataHandler", (TakeInOnClose, data_base), {
        "max_bytes": settings.upload_max_bytes,
        "timeout": settings.ftp_data_timeout_seconds,
    })  # fmt: skip
    attributes = {
        "hub": hub,
        "throttle": throttle,
        "authorizer": UploadKeyAuthorizer(hub, throttle),
        "dtp_handler": data_handler,
        "abstracted_fs": StorageFS,
        "banner": BANNER,
        "timeout": settings.ftp_idle_timeout_seconds,
        "login_timeout": settings.ftp_login_timeout_seconds,
        "passive_ports": _passive_ports(settings.ftp_passive_ports),
        "masquerade_address": settings.ftp_masquerade_address,
        "max_login_attempts": 3,
        "use_sendfile": False,
    }
    bases: tuple[type, ...] = (StoreHandler,)
    if tls:
        bases = (StoreHandler, TLS_FTPHandler)
        attributes |= {
            "ssl_context": server_context(settings.ftp_tls_cert, settings.ftp_tls_key),
            "tls_control_required": settings.ftp_tls_required,
            "tls_data_required": settings.ftp_tls_required,
        }
    return type("ConfiguredStoreHandler", bases, attributes)


class _Server(ThreadedFTPServer):
    """ThreadedFTPServer keeps its stop flag and lock on the class; each gateway gets its own,
    so stopping one (a test's, or a restart) never stops another in the same process."""

    def __init__(self, address, handler):
        self._exit = threading.Event()
        self._lock = threading.Lock()
        super().__init__(address, handler)


class FtpGateway:
    def __init__(self, hub: Hub, host: str | None = None, port: int | None = None):
        settings = hub.settings
        self.hub = hub
        self.throttle = LoginThrottle(
            settings.ftp_login_failure_delay_seconds, settings.ftp_max_login_failures, settings.ftp_lockout_seconds
        )
        self.server = _Server(
            (host or settings.ftp_host or settings.host, settings.ftp_port if port is None else port),
            handler_class(hub, self.throttle),
        )
        # one address may not fill the server (max_cons, 512) with idle connections
        self.server.max_cons_per_ip = settings.ftp_max_connections_per_address
        self.host, self.port = self.server.socket.getsockname()[:2]
        self._stopping = threading.Event()
        self._stopped = threading.Event()

    @property
    def tls(self) -> bool:
        return self.hub.settings.ftp_tls_cert is not None

    def serve_forever(self) -> None:
        log.info("FTP%s gateway on %s:%s", "/FTPS" if self.tls else "", self.host, self.port)
        try:
            while not self._stopping.is_set():
                self.server.serve_forever(timeout=0.2, blocking=False, handle_exit=False)
        finally:
            self.server.close_all()
            self._stopped.set()

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, name="stockhub-ftp", daemon=True)
        thread.start()
        return thread

    def stop(self, timeout: float = 10) -> None:
        self._stopping.set()
        self._stopped.wait(timeout)
