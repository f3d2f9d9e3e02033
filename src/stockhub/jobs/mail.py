"""Sending the notification mail queued in `mail_outbox` (services/mail.py).

A worker claims a due mail with a lease (like a webhook delivery: `next_attempt_at` is when it
is due, or while `sending` when the lease lapses, so a killed worker's mail is sent by another),
renders it from the templates in `mail_templates/`, sends it over SMTP and marks it sent; a
failure is retried on `MAIL_RETRY_SECONDS`, then the mail is `failed`. Off while `SMTP_HOST` is
unset (the mail waits in the outbox).
"""

from __future__ import annotations

import json
import logging
import smtplib
import threading
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from types import SimpleNamespace

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from sqlalchemy import select

from stockhub import ids, logs, metrics
from stockhub.db.engine import is_postgres, reading, transaction
from stockhub.db.tables import mail_outbox, organizations, partners, store_connections, stores, users
from stockhub.errors import ServiceError
from stockhub.services import connections
from stockhub.services.context import Hub

log = logging.getLogger(__name__)
_templates = Environment(loader=FileSystemLoader(Path(__file__).parent / "mail_templates"), undefined=StrictUndefined, keep_trailing_newline=True)

SUBJECTS = {
    "store_created": "{store} is ready: its upload key and setup",
    "store_connected": "{store} is now connected to {partner}",
    "first_upload": "{store} sent its first stock file",
    "store_status": "{store} is {status}: stock is not being updated",
}


def send_due_mail(hub: Hub, worker_id: str, limit: int = 20, stopping: threading.Event | None = None) -> int:
    """Send up to `limit` due mails (none more once `stopping` is set); returns how many were attempted."""
    if not hub.settings.smtp_host or not _any_due(hub):  # a read first: no write lock taken on an idle loop
        return 0
    done = 0
    while done < limit and not (stopping and stopping.is_set()) and (claimed := _claim(hub, worker_id)) is not None:
        with logs.bound(mail_id=claimed.id, store_id=ids.encode("store", claimed.store_id)):
            _send(hub, claimed, worker_id)
        done += 1
    return done


def _any_due(hub: Hub) -> bool:
    m = mail_outbox.c
    with reading(hub.engine) as conn:
        return conn.execute(select(m.id).where(m.next_attempt_at <= datetime.now(UTC)).limit(1)).first() is not None


def sweep_mail(hub: Hub, now: datetime | None = None) -> None:
    """Mail is off while SMTP_HOST is unset: what waits is skipped, not sent days later when it is
    set. Finished mail is forgotten after the event retention period."""
    now = now or datetime.now(UTC)
    m = mail_outbox.c
    with transaction(hub.engine) as conn:
        if not hub.settings.smtp_host:
            conn.execute(
                mail_outbox.update()
                .where(m.status == "pending", m.next_attempt_at <= now)
                .values(status="skipped", next_attempt_at=None, last_error="mail is off (STOCKHUB_SMTP_HOST is unset)")
            )
        cutoff = now - timedelta(days=hub.settings.event_retention_days)
        conn.execute(mail_outbox.delete().where(m.status.in_(("sent", "skipped", "failed")), m.created_at < cutoff))


def _claim(hub: Hub, worker_id: str):
    now = datetime.now(UTC)
    m = mail_outbox.c
    with transaction(hub.engine) as conn:
        query = select(mail_outbox).where(m.next_attempt_at <= now, m.status.in_(("pending", "sending"))).order_by(m.next_attempt_at).limit(1)
        if is_postgres(conn):
            query = query.with_for_update(skip_locked=True)
        row = conn.execute(query).first()
        if row is None:
            return None
        lease = now + timedelta(seconds=hub.settings.mail_lease_seconds)
        conn.execute(
            mail_outbox.update()
            .where(m.id == row.id)
            .values(status="sending", worker_id=worker_id, lease_until=lease, next_attempt_at=lease, attempts=row.attempts + 1)
        )
        return SimpleNamespace(**(row._asdict() | {"attempts": row.attempts + 1}))


def _send(hub: Hub, row, worker_id: str) -> None:
    m = mail_outbox.c
    mine = (m.id == row.id, m.worker_id == worker_id, m.status == "sending")
    try:
        recipients, message = render(hub, row)
        if not recipients:
            with transaction(hub.engine) as conn:
                conn.execute(mail_outbox.update().where(*mine).values(status="skipped", next_attempt_at=None, last_error="no one to send it to"))
            metrics.MAIL_SENT.labels("skipped").inc()
            return
        _deliver(hub, message)
    except (OSError, smtplib.SMTPException, ServiceError) as error:
        now = datetime.now(UTC)
        schedule = hub.settings.mail_retry_seconds
        retry = row.attempts <= len(schedule)
        log.warning("mail %s failed (attempt %s): %s", row.id, row.attempts, error)
        metrics.MAIL_SENT.labels("retry" if retry else "failed").inc()
        with transaction(hub.engine) as conn:
            conn.execute(
                mail_outbox.update()
                .where(*mine)
                .values(
                    status="pending" if retry else "failed",
                    next_attempt_at=now + timedelta(seconds=schedule[row.attempts - 1]) if retry else None,
                    lease_until=None,
                    last_error=f"{type(error).__name__}: {error}"[:1000],
                )
            )
        return
    with transaction(hub.engine) as conn:
        conn.execute(
            mail_outbox.update()
            .where(*mine)
            .values(status="sent", sent_at=datetime.now(UTC), next_attempt_at=None, lease_until=None, recipients=", ".join(recipients))
        )
    metrics.MAIL_SENT.labels("sent").inc()


def _deliver(hub: Hub, message: EmailMessage) -> None:
    s = hub.settings
    with smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=30) as smtp:
        if s.smtp_starttls:
            smtp.starttls()
        if s.smtp_username:
            smtp.login(s.smtp_username, s.smtp_password or "")
        smtp.send_message(message)


def render(hub: Hub, row) -> tuple[list[str], EmailMessage]:
    """The recipients and the message of a queued mail, as it would be sent now."""
    with reading(hub.engine) as conn:
        store = conn.execute(select(stores).where(stores.c.id == row.store_id)).one()
        organization = conn.execute(select(organizations.c.name).where(organizations.c.id == row.organization_id)).scalar_one()
        partner = conn.execute(select(partners.c.name).where(partners.c.id == row.partner_id)).scalar() if row.partner_id else None
        audience = users.c.partner_id == row.partner_id if row.partner_id else users.c.organization_id == row.organization_id
        recipients = list(conn.execute(select(users.c.email).where(audience).order_by(users.c.id)).scalars())
        partner_store_id = (
            conn.execute(
                select(store_connections.c.partner_store_id).where(
                    store_connections.c.store_id == row.store_id, store_connections.c.partner_id == row.partner_id
                )
            ).scalar()
            if row.partner_id
            else None
        )
    store_id = ids.encode("store", store.id)
    needs_key = row.kind in ("store_created", "store_connected")
    context = {
        "store": store.name,
        "store_id": store_id,
        "organization": organization,
        "partner": partner,
        "partner_store_id": partner_store_id,
        "data": json.loads(row.data),
        "status": json.loads(row.data).get("status", store.status),
        "upload_key": connections.current_upload_key(hub, store.organization_id, store_id) if needs_key else None,
        "base_url": (hub.settings.public_url or f"http://{hub.settings.host}:{hub.settings.port}").rstrip("/"),
        "ftp_host": hub.settings.ftp_host or hub.settings.host,
        "ftp_port": hub.settings.ftp_port,
    }
    message = EmailMessage()
    message["From"] = hub.settings.mail_from
    message["To"] = ", ".join(recipients)
    message["Subject"] = SUBJECTS[row.kind].format(**context)
    message["Message-ID"] = f"<mail-{row.id}-{row.dedupe_key.replace(':', '-')}@stockhub>"
    message.set_content(_templates.get_template(f"{row.kind}.txt").render(**context))
    return recipients, message
