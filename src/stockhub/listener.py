"""`stockhub listen`: a webhook receiver on this machine for trying stockhub out, in the spirit of
`stripe listen`. It verifies each delivery's Standard Webhooks signature (the `standardwebhooks`
package, as any receiver would) and prints it.

It knows the secrets to verify with because it runs beside the server, on the same database and
server secret: every live subscription whose URL points at it signs with a secret derived from
the server secret (services/webhooks.py), so a subscription made by hand over the API verifies
too. `--secret` adds one more (a receiver on another install)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks import Webhook

PATH = "/hooks"
MAX_BODY = 10 * 1024 * 1024


@dataclass
class Delivery:
    webhook_id: str
    timestamp: str
    subscription: str | None  # the subscription whose secret verified it; None: not verified
    payload: dict | None
    body: bytes
    why: str | None = None  # why it was refused

    @property
    def verified(self) -> bool:
        return self.payload is not None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class Listener:
    """An HTTP server on `host:port` taking POSTs at /hooks. `secrets()` gives (subscription id,
    secret) pairs to verify with, asked afresh for each delivery; `on_delivery` is told of each.
    A verified delivery is answered 204, anything else 400 or 401 (the server records why)."""

    def __init__(self, host: str, port: int, secrets: Callable[[], list[tuple[str | None, str]]], on_delivery: Callable[[Delivery], None]):
        listener = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                listener._handle(self)

            def do_GET(self):
                self._answer(200, b"stockhub listen: POST signed webhook deliveries to " + PATH.encode() + b"\n")

            def _answer(self, status: int, body: bytes = b"") -> None:
                self.send_response(status)
                self.send_header("content-type", "text/plain; charset=utf-8")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.secrets = secrets
        self.on_delivery = on_delivery
        self._server = _Server((host, port), Handler)
        self.host, self.port = self._server.server_address[:2]
        self._lock = threading.Lock()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}{PATH}"

    def serve_forever(self) -> None:
        self._server.serve_forever(poll_interval=0.2)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handle(self, handler) -> None:
        length = int(handler.headers.get("content-length") or 0)
        if handler.path.split("?", 1)[0] != PATH or length > MAX_BODY:
            handler._answer(404 if length <= MAX_BODY else 413)
            return
        body = handler.rfile.read(length)
        headers = {k.lower(): v for k, v in handler.headers.items()}
        delivery = self.verify(body, headers)
        with self._lock:  # one delivery printed at a time
            self.on_delivery(delivery)
        if delivery.verified:
            handler._answer(204)
        else:
            handler._answer(400 if (delivery.why or "").startswith("not a Standard Webhooks") else 401, (delivery.why or "").encode())

    def verify(self, body: bytes, headers: dict) -> Delivery:
        webhook_id, timestamp = headers.get("webhook-id", ""), headers.get("webhook-timestamp", "")
        missing = [h for h in ("webhook-id", "webhook-timestamp", "webhook-signature") if not headers.get(h)]
        if missing:
            return Delivery(webhook_id, timestamp, None, None, body, f"not a Standard Webhooks message: no {', '.join(missing)} header")
        pairs = self.secrets()
        for subscription, secret in pairs:
            try:
                payload = Webhook(secret).verify(body, headers)
            except Exception:  # noqa: BLE001 - standardwebhooks raises its own and base64 errors
                continue
            return Delivery(webhook_id, timestamp, subscription, payload, body)
        why = (
            "the signature does not verify with the secret of any subscription to this receiver"
            if pairs
            else "no subscription points at this receiver, so there is no secret to verify with"
        )
        return Delivery(webhook_id, timestamp, None, None, body, why)


def describe(delivery: Delivery, as_json: bool) -> str:
    """How `stockhub listen` prints a delivery: a line and the payload, or one JSON line."""
    if as_json:
        return json.dumps(
            {
                "verified": delivery.verified,
                "webhook_id": delivery.webhook_id,
                "subscription": delivery.subscription,
                "payload": delivery.payload,
                "error": delivery.why,
            }
        )
    at = datetime.now(UTC).strftime("%H:%M:%S")
    if not delivery.verified:
        return f"{at}  refused {delivery.webhook_id or '(no webhook-id)'}: {delivery.why}"
    payload = delivery.payload or {}
    head = f"{at}  verified  {payload.get('type', '?')}  {delivery.webhook_id}  (subscription {delivery.subscription})"
    return head + "\n" + json.dumps(payload, indent=2)
