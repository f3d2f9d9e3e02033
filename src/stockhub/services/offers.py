"""Offer tokens: what pickup and delivery options promise, signed, to be booked with later.

A token binds the organization, the bag (canonical identifier → quantity) and the store that
fulfils each line, and expires (`offer_ttl_seconds`). It is `<payload>.<signature>`: the
payload is base64url JSON, the signature HMAC-SHA256 under the server secret. It reserves
nothing: booking with it checks the stock again (409 with the shortfall when it has gone).
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass

from stockhub import security
from stockhub.errors import FieldError, Invalid, Refused

_CONTEXT = "stockhub offer v1:"


@dataclass(frozen=True)
class Offer:
    organization: int
    kind: str  # pickup | ship
    lines: dict[str, tuple[int, int]]  # identifier → (quantity, store)
    expires_at: int  # epoch seconds


def issue(secret: bytes, ttl_seconds: int, organization: int, kind: str, lines: dict[str, tuple[int, int]]) -> str:
    payload = {"o": organization, "k": kind, "l": {i: list(v) for i, v in sorted(lines.items())}, "e": int(time.time()) + ttl_seconds}
    body = base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).rstrip(b"=").decode()
    return f"{body}.{security.sign(secret, _CONTEXT + body)}"


def _refusal(reason: str, message: str, kind: type = Invalid):
    return kind(f"the offer_token is {message}", [FieldError("offer_token", message)], {"reason": reason})


def check(secret: bytes, token: str, organization: int, bag: dict[str, int]) -> Offer:
    """The offer, if `token` is one we signed, unexpired, for this organization and this bag."""
    body, _, signature = token.partition(".")
    if not signature or not security.signature_valid(secret, _CONTEXT + body, signature):
        raise _refusal("tampered", "not one this server signed (tampered or malformed)")
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    offer = Offer(payload["o"], payload["k"], {i: (q, s) for i, (q, s) in payload["l"].items()}, payload["e"])
    if offer.organization != organization:
        raise _refusal("foreign", "another organization's", Refused)
    if offer.expires_at < time.time():
        raise _refusal("expired", "expired: ask for options again")
    offered = {identifier: quantity for identifier, (quantity, _) in offer.lines.items()}
    if offered != bag:
        raise _refusal("bag_mismatch", f"for another bag: it offers {offered}, the order asks for {bag}")
    return offer
