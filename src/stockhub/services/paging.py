"""Keyset pagination: `limit` plus an opaque `token`; the page carries the next token, or none at the end."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, Connection, Select

from stockhub.errors import FieldError, Malformed

MAX_LIMIT = 500  # items per page, everywhere (the API's `limit` parameters say so too)


def check_limit(limit: int, most: int = MAX_LIMIT) -> None:
    if not 1 <= limit <= most:
        raise Malformed(f"limit must be between 1 and {most}", [FieldError("limit", "out of range")])


@dataclass(frozen=True)
class Page:
    """A page of rows (or records); the faces render them (stockhub.representations)."""

    items: list
    next_token: str | None


def page_of(
    conn: Connection,
    query: Select,
    key: Column,
    limit: int,
    token: str | None,
    descending: bool = False,
) -> Page:
    check_limit(limit)
    if token is not None:
        after = decode_token(token, key.type.python_type)
        query = query.where(key < after if descending else key > after)
    rows = conn.execute(query.order_by(key.desc() if descending else key).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    next_token = encode_token(getattr(rows[-1], key.name)) if more else None
    return Page(rows, next_token)


def encode_token(after: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps({"after": after}).encode()).rstrip(b"=").decode()


def decode_token(token: str, kind: type) -> Any:
    try:
        padded = token + "=" * (-len(token) % 4)
        after = json.loads(base64.urlsafe_b64decode(padded.encode()))["after"]
        if type(after) is not kind or (kind is int and not -(2**63) <= after < 2**63):  # ids are 64-bit
            raise TypeError(after)
        return after
    except (ValueError, KeyError, TypeError):
        raise Malformed("the page token is not one this API gave out", [FieldError("token", "malformed")]) from None
