"""Notification mail (issue 12) against a real SMTP server (aiosmtpd), on SQLite and PostgreSQL:
store created → the retailer gets its upload key and setup instructions; store connected and
first upload → the partner; a store turning invalid or disconnected → the retailer, at most once
per store per day. Sent by the workers from the outbox: never lost, never twice."""

from __future__ import annotations

import socket
import time
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from stockhub import ids
from stockhub.db.engine import reading
from stockhub.db.tables import mail_outbox
from stockhub.services import accounts, connections
from stockhub.services import store_status as statuses
from stockhub.services import tenancy
from support import Tenant, upload_and_wait

BOOK = "9780141383743"
GOOD = f"barcode,price,quantity\n{BOOK},6.99,3\n".encode()
WRONG = "Qty Count,Description,Code\n3,A book,9780141383743\n5,Cereal,036000291452\n1,Lamp,4006381333931\n".encode()
ALL_OUT = f"barcode,price,quantity\n{BOOK},6.99,0\n".encode()


class Inbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        self.messages.append((envelope.rcpt_tos, message_from_bytes(envelope.content, policy=policy.default)))
        return "250 OK"

    def wait_for(self, count: int, timeout: float = 20) -> list:
        deadline = time.monotonic() + timeout
        while len(self.messages) < count:
            assert time.monotonic() < deadline, f"{len(self.messages)} mails, expected {count}: {[m['Subject'] for _, m in self.messages]}"
            time.sleep(0.05)
        return self.messages


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def retailer(hub) -> Tenant:
    """An organization with its owner, then a store (whose mail goes to the owner)."""
    org = tenancy.create_organization(hub, "Acme Books").id
    accounts.create_user(hub, org, "owner@acme.test", "a long password", "owner")
    brand = tenancy.create_brand_for(hub, org, "Acme").id
    store = tenancy.create_store_for(hub, brand, {"name": "Acme York", "country": "GB"})
    return Tenant(org, brand, store.id, store.secret, tenancy.create_api_token(hub, org).secret)


@pytest.fixture
def smtp():
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=_free_port())
    controller.start()
    yield controller, inbox
    controller.stop()


def test_each_notification_is_mailed_once_to_the_right_people(server, client, hub, smtp):
    controller, inbox = smtp
    hub.settings.smtp_host, hub.settings.smtp_port = "127.0.0.1", controller.port
    tenant = retailer(hub)  # store created: queued for the retailer's users
    partner = accounts.create_partner(hub, "Till Co", ["https://till.example/cb"], None, False)
    accounts.create_partner_user(hub, partner.id, "ops@till.test", "a long password")
    (to, created), = inbox.wait_for(1)
    assert to == ["owner@acme.test"]
    body = created.get_content()
    assert tenant.upload_key in body and "ftp://apikey:" in body and f"/upload/{tenant.upload_key}?type=stock" in body

    organization = ids.decode("organization", tenant.organization)
    connections.connect(hub, organization, ids.decode("partner", partner.id), tenant.brand, tenant.store, "till-42")
    to, connected = inbox.wait_for(2)[1]
    assert to == ["ops@till.test"] and "till-42" in connected.get_content() and tenant.upload_key in connected.get_content()

    upload_and_wait(client, tenant, GOOD)
    to, first = inbox.wait_for(3)[2]
    assert to == ["ops@till.test"] and "first stock file" in first["Subject"]

    upload_and_wait(client, tenant, WRONG)  # invalid: the retailer hears of it
    upload_and_wait(client, tenant, ALL_OUT)  # still invalid, other warning: no second mail today
    to, invalid = inbox.wait_for(4)[3]
    assert to == ["owner@acme.test"] and invalid["Subject"].endswith("is invalid: stock is not being updated")
    assert "invalid_inventory_format" in invalid.get_content()

    statuses.refresh_all(hub, datetime.now(UTC) + timedelta(days=4))  # another day: disconnected
    hub.ring()
    to, gone = inbox.wait_for(5)[4]
    assert to == ["owner@acme.test"] and "disconnected" in gone["Subject"]

    time.sleep(1)  # the worker keeps running: nothing is sent twice
    assert len(inbox.messages) == 5
    with reading(hub.engine) as conn:
        assert conn.execute(select(mail_outbox.c.status)).scalars().all() == ["sent"] * 5


def test_a_mail_waits_while_smtp_is_down_and_is_sent_once_it_is_back(server, hub, smtp):
    controller, inbox = smtp
    hub.settings.smtp_host, hub.settings.smtp_port = "127.0.0.1", _free_port()  # nothing listens there
    hub.settings.mail_retry_seconds = [0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]
    tenant = retailer(hub)
    hub.ring()
    deadline = time.monotonic() + 20
    while True:
        with reading(hub.engine) as conn:
            row = conn.execute(select(mail_outbox)).one()
        if row.last_error:
            break
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert row.status in ("pending", "sending") and "Connection" in row.last_error and inbox.messages == []

    hub.settings.smtp_port = controller.port
    (to, message), = inbox.wait_for(1)
    assert to == ["owner@acme.test"] and tenant.upload_key in message.get_content()
    time.sleep(1)
    assert len(inbox.messages) == 1


def test_mail_is_off_without_smtp_and_what_waited_is_not_sent_later(hub, smtp):
    controller, inbox = smtp
    from stockhub.jobs.mail import send_due_mail, sweep_mail

    retailer(hub)  # SMTP_HOST unset: the mail is queued, not sent
    assert send_due_mail(hub, "w") == 0
    sweep_mail(hub)
    hub.settings.smtp_host, hub.settings.smtp_port = "127.0.0.1", controller.port
    assert send_due_mail(hub, "w") == 0 and inbox.messages == []
    with reading(hub.engine) as conn:
        assert conn.execute(select(mail_outbox.c.status, mail_outbox.c.last_error)).one() == (
            "skipped", "mail is off (STOCKHUB_SMTP_HOST is unset)"
        )
    sweep_mail(hub, datetime.now(UTC) + timedelta(days=31))  # past the retention period: forgotten
    with reading(hub.engine) as conn:
        assert conn.execute(select(mail_outbox.c.id)).all() == []
