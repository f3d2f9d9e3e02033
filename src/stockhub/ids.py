"""Opaque prefixed ids for the API (`str_…`, `upl_…`); integers inside.

A public id is the row number run through a keyed 64-bit permutation and written in base62
(11 characters): a 6-round Feistel network whose round function is HMAC-SHA256 under a key
derived (HKDF) from the server secret. Without the secret the ids of two installs differ and
neighbouring rows do not have neighbouring ids, so ids cannot be guessed or enumerated; with it
they are stable across restarts. The 64-bit block is the number (below 2**40) and a 24-bit tag
of the kind, so an id of one kind is never a valid id of another, and a made-up id is valid
only by a 1 in 16 million chance (and then names a row that almost surely does not exist).

`configure(secret)` is called once when a Hub is made (services/context.py); `Codec` is the
pure form for tests and tools.
"""

from __future__ import annotations

import hmac
import string
from functools import lru_cache

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

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
    "location_group": "grp",
    "shipping_method": "shp",
    "catalog_import": "imp",  # new kinds go last: a kind's tag follows its place here
    "feed": "fed",
    "feed_item": "fdi",
    "feed_batch": "fdb",
    "dropship_provider": "dsp",
}

_ALPHABET = string.digits + string.ascii_letters
_INDEX = {char: value for value, char in enumerate(_ALPHABET)}
_WIDTH = 11  # 62**11 > 2**64
_NUMBER_BITS, _TAG_BITS = 40, 24
_ROUNDS = 6
_MASK32 = 0xFFFFFFFF


class Codec:
    """Public ids under one server secret."""

    def __init__(self, secret: bytes):
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"stockhub public ids v1").derive(secret)
        self._keyed = hmac.new(key, digestmod="sha256")  # copied per use: the key is set up once
        self._tags = {kind: self._round(255, i) & ((1 << _TAG_BITS) - 1) for i, kind in enumerate(PREFIXES)}
        assert len(set(self._tags.values())) == len(self._tags)
        self.encode = lru_cache(maxsize=1 << 16)(self.encode)
        self._number = lru_cache(maxsize=1 << 16)(self._number)

    def _round(self, index: int, half: int) -> int:
        mac = self._keyed.copy()
        mac.update(bytes((index,)) + half.to_bytes(4, "big"))
        return int.from_bytes(mac.digest()[:4], "big")

    def encode(self, kind: str, number: int) -> str:
        if not 0 <= number < 1 << _NUMBER_BITS:
            raise ValueError(f"{number} is out of the range of public ids")
        block = number << _TAG_BITS | self._tags[kind]
        left, right = block >> 32, block & _MASK32
        for index in range(_ROUNDS):
            left, right = right, left ^ self._round(index, right)
        value, chars = left << 32 | right, []
        for _ in range(_WIDTH):
            value, digit = divmod(value, 62)
            chars.append(_ALPHABET[digit])
        return f"{PREFIXES[kind]}_{''.join(reversed(chars))}"

    def decode(self, kind: str, public_id: str) -> int | None:
        """The integer behind a public id, or None when it is not a well-formed id of this kind."""
        prefix, _, body = public_id.partition("_")
        if prefix != PREFIXES[kind] or len(body) != _WIDTH or not all(char in _INDEX for char in body):
            return None
        return self._number(kind, body)

    def _number(self, kind: str, body: str) -> int | None:
        value = 0
        for char in body:
            value = value * 62 + _INDEX[char]
        if value >> 64:
            return None
        left, right = value >> 32, value & _MASK32
        for index in reversed(range(_ROUNDS)):
            left, right = right ^ self._round(index, left), left
        block = left << 32 | right
        if block & ((1 << _TAG_BITS) - 1) != self._tags[kind]:
            return None
        return block >> _TAG_BITS


_active: tuple[bytes, Codec] | None = None  # the server secret and its codec


def configure(secret: bytes) -> None:
    """Key the public ids with the server secret (when a Hub is made; again only if it differs)."""
    global _active
    if _active is None or _active[0] != secret:
        _active = (secret, Codec(secret))


def _codec() -> Codec:
    if _active is None:
        raise RuntimeError("public ids are keyed by the server secret: make a Hub first")
    return _active[1]


def encode(kind: str, number: int) -> str:
    return _codec().encode(kind, number)


def decode(kind: str, public_id: str) -> int | None:
    """The integer behind a public id, or None when it is not a well-formed id of this kind."""
    return _codec().decode(kind, public_id)
