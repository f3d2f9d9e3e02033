"""Secrets: making keys, hashing them for lookup, signing and checking upload URLs.

Keys and tokens are stored as HMAC-SHA256(server secret, key): one indexed lookup finds a
key by its hash, and a leaked database holds no usable key.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets


def new_key(prefix: str = "") -> str:
    """A random URL-safe secret of 43 characters (256 bits), with an optional readable prefix."""
    return prefix + secrets.token_urlsafe(32)


def key_hash(secret: bytes, key: str) -> str:
    return hmac.new(secret, key.encode(), hashlib.sha256).hexdigest()


def bearer_hash(secret: bytes, token: str) -> str:
    """`key_hash` of a bearer token, remembered for the tokens seen last: each request's token is
    hashed to be counted (rate limits) and to be found (authentication), twice a request else.
    Only a token of a plausible length is remembered: thousands of header-sized ones a client
    makes up would hold tens of megabytes."""
    return _remembered_hash(secret, token) if len(token) <= _REMEMBERED_LENGTH else key_hash(secret, token)


_REMEMBERED_LENGTH = 256  # ours are 47 characters


@functools.lru_cache(maxsize=4096)
def _remembered_hash(secret: bytes, token: str) -> str:
    return key_hash(secret, token)


def sign(secret: bytes, message: str) -> str:
    digest = hmac.new(secret, message.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def signature_valid(secret: bytes, message: str, signature: str) -> bool:
    # as bytes: comparing str refuses non-ASCII text (TypeError) instead of answering False
    return hmac.compare_digest(sign(secret, message).encode(), signature.encode(errors="replace"))
