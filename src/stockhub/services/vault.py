"""Upload keys sealed for connected partners.

Upload keys are looked up by their HMAC (security.key_hash) and were never stored readable. A
connected partner with `uploads.read` must be able to fetch the store's *current* key (seed
000: the POS learns the key of a retailer who signs up), so the key is also kept encrypted
(Fernet: AES-128-CBC + HMAC-SHA256) under a key derived from the server secret with HKDF.

Why this and not "hand the partner a freshly rotated key on connection": rotating would break
the retailer's own POS or FTP set-up the moment a second partner connects, and the partner
could not fetch the key again later. Sealing keeps the promise of design.md ("a leaked
database reveals no usable key"): without the server secret the column is ciphertext; and
rotating the key re-seals it, so the partner always reads the current one. Keys made before
this column existed have no sealed copy until they are next rotated.
"""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


UPLOAD_KEYS = b"stockhub upload-key vault v1"
FEED_CREDENTIALS = b"stockhub feed credentials v1"  # a pull feed's username and password (services/feeds.py)


def _fernet(secret: bytes, purpose: bytes = UPLOAD_KEYS) -> Fernet:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(secret)
    return Fernet(base64.urlsafe_b64encode(key))


def seal(secret: bytes, upload_key: str, purpose: bytes = UPLOAD_KEYS) -> str:
    return _fernet(secret, purpose).encrypt(upload_key.encode()).decode()


def unseal(secret: bytes, sealed: str, purpose: bytes = UPLOAD_KEYS) -> str | None:
    """The key, or None when it was sealed under another server secret."""
    try:
        return _fernet(secret, purpose).decrypt(sealed.encode()).decode()
    except InvalidToken:
        return None
