"""Safe retries: a request's fingerprint, and the answers kept for an `Idempotency-Key`.

The same key with the same request gets the same answer; with a different request, 409. An
order's `external_id` works the same way, with the fingerprint kept on the order itself.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable

from sqlalchemy import Connection, Engine, select
from sqlalchemy.exc import IntegrityError

from stockhub.db.engine import transaction
from stockhub.db.tables import idempotency_keys
from stockhub.errors import FieldError, Malformed, conflict

MAX_KEY_LENGTH = 255


def fingerprint(request: object) -> str:
    """A digest of a request's meaning (JSON-able; key order does not matter)."""
    return hashlib.sha256(json.dumps(request, sort_keys=True, default=str).encode()).hexdigest()


def once(engine: Engine, organization: int, scope: str, key: str | None, request: object, act: Callable[[Connection], dict]) -> dict:
    """Run `act` in one transaction and keep its answer under `key`; a retry gets that answer."""
    check_key(key)
    digest = fingerprint(request)
    try:
        with transaction(engine) as conn:
            answer = _answered(conn, organization, scope, key, digest)
            if answer is None:
                answer = act(conn)
                conn.execute(
                    idempotency_keys.insert().values(
                        organization_id=organization, scope=scope, key=key, request_hash=digest, response=json.dumps(answer)
                    )
                )
            return answer
    except IntegrityError:  # the same key concurrently: the other one's answer stands
        with transaction(engine) as conn:
            answer = _answered(conn, organization, scope, key, digest)
        if answer is None:
            raise
        return answer


def check_key(key: str | None) -> None:
    """A request that must be retried safely names its Idempotency-Key (before anything is taken in)."""
    if not key or len(key) > MAX_KEY_LENGTH:
        raise Malformed(f"send an Idempotency-Key header (up to {MAX_KEY_LENGTH} characters)", [FieldError("Idempotency-Key", "missing")])


def _answered(conn: Connection, organization: int, scope: str, key: str, digest: str) -> dict | None:
    k = idempotency_keys.c
    row = conn.execute(select(idempotency_keys).where(k.organization_id == organization, k.scope == scope, k.key == key)).first()
    if row is None:
        return None
    if row.request_hash != digest:
        raise conflict("this Idempotency-Key was used with a different request")
    return json.loads(row.response)
