"""Opaque prefixed ids for the API (`str_…`, `upl_…`); integers inside.

Sqids makes short reversible ids; each kind gets its own alphabet so an id of one kind is not
a valid id of another.
"""

from __future__ import annotations

import random
import string

from sqids import Sqids

_ALPHABET = string.ascii_letters + string.digits
PREFIXES = {
    "organization": "org",
    "brand": "brd",
    "store": "str",
    "upload": "upl",
    "token": "tok",
    "customer": "cus",
    "order": "ord",
    "event": "evt",
    "webhook_subscription": "whk",
    "webhook_delivery": "dlv",
    "user": "usr",
    "partner": "app",
}


def _codec(kind: str) -> Sqids:
    letters = list(_ALPHABET)
    random.Random(kind).shuffle(letters)  # deterministic per kind: ids must be stable across restarts
    return Sqids(alphabet="".join(letters), min_length=8)


_CODECS = {kind: _codec(kind) for kind in PREFIXES}


def encode(kind: str, number: int) -> str:
    return f"{PREFIXES[kind]}_{_CODECS[kind].encode([number])}"


def decode(kind: str, public_id: str) -> int | None:
    """The integer behind a public id, or None when it is not a well-formed id of this kind."""
    prefix, _, body = public_id.partition("_")
    if prefix != PREFIXES[kind] or not body:
        return None
    numbers = _CODECS[kind].decode(body)
    if len(numbers) != 1 or _CODECS[kind].encode(numbers) != body:
        return None
    return numbers[0]
