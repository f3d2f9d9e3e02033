"""Notification mail, queued in the transaction of the change it tells of (an outbox).

`queue(conn, ...)` writes one `mail_outbox` row; its `dedupe_key` makes the mail once only (a
second queue of the same key is a no-op), so a retried change never mails twice and a store's
status mail is sent at most once a day. The workers send it (jobs/mail.py); it is rendered
then, so no secret (an upload key) is kept in the outbox.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from sqlalchemy import Connection
from sqlalchemy.dialects import postgresql, sqlite

from stockhub.db.engine import new_work
from stockhub.db.tables import mail_outbox

KINDS = ("store_created", "store_connected", "first_upload", "store_status")


def queue(
    conn: Connection,
    kind: str,
    dedupe_key: str,
    organization: int,
    store: int,
    partner: int | None = None,
    data: dict | None = None,
) -> None:
    """Due at once; a second queue of the same `dedupe_key` does nothing."""
    if kind not in KINDS:
        raise ValueError(f"unknown mail kind {kind!r}")
    now = datetime.now(UTC)
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(mail_outbox).values(
        dedupe_key=dedupe_key,
        kind=kind,
        organization_id=organization,
        store_id=store,
        partner_id=partner,
        data=json.dumps(data or {}),
        status="pending",
        attempts=0,
        next_attempt_at=now,
        created_at=now,
    )
    if conn.execute(statement.on_conflict_do_nothing(index_elements=["dedupe_key"])).rowcount:
        new_work(conn)
