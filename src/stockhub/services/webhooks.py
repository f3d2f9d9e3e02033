"""Webhook subscriptions (subscribe, change, pause, resume, delete, rotate the secret) and their
delivery history, including retrying a delivery by hand.

A subscription's signing secret is never stored: it is derived from a random salt and the
server secret (HMAC-SHA256), so it can be shown once, used to sign, and a leaked database
reveals no usable secret.

Every call is on behalf of an `Scope`: an organization's own subscriptions (partner_id null),
or a partner's for one connected store (partner_id set, `store_ids` exactly that store). Each
sees only its own; a plain organization number stands for the organization's own.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, StrictBool
from sqlalchemy import Connection, select

from stockhub import ids, outbound
from stockhub.db.engine import new_work, reading, transaction
from stockhub.db.tables import events, webhook_attempts, webhook_deliveries, webhook_subscriptions
from stockhub.domain.access import Scope
from stockhub.domain.webhooks import EVENT_TYPES
from stockhub.errors import FieldError, conflict, invalid, not_found
from stockhub.services.context import Hub
from stockhub.services.scope import as_scope, store_numbers
from stockhub.services.paging import Page, page_of

SECRET_PREFIX = "whsec_"
LIVE = ("active", "paused", "disabled")  # not deleted
EXCERPT_CHARS = 1000

Url = Annotated[str, Field(min_length=1, max_length=2000)]
ORDERED = (
    "true: each store's events arrive one at a time in sequence order, a failing one holding back that store's later "
    "ones (for this subscription only); false (default): at least once, possibly out of order"
)


class SubscriptionFields(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    url: Url
    event_types: list[str] = Field(min_length=1, description=f"any of {', '.join(EVENT_TYPES)}")
    store_ids: list[str] | None = Field(None, description="only events of these stores; default every store")
    description: str | None = Field(None, max_length=500)
    ordered: StrictBool = Field(False, description=ORDERED)


class SubscriptionChanges(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    url: Url | None = None
    event_types: list[str] | None = Field(None, min_length=1)
    store_ids: list[str] | None = None
    description: str | None = Field(None, max_length=500)
    ordered: StrictBool | None = Field(None, description=ORDERED)


# --- secrets -------------------------------------------------------------------------------


def secret_for(server_secret: bytes, salt: str) -> bytes:
    return hmac.new(server_secret, f"webhook-secret|{salt}".encode(), hashlib.sha256).digest()


def shown_secret(key: bytes) -> str:
    return SECRET_PREFIX + base64.b64encode(key).decode()


def signing_keys(hub: Hub, row, now: datetime) -> list[bytes]:
    """The keys that sign a delivery: the current one, and the previous one during its grace period."""
    keys = [secret_for(hub.secret, row.secret_salt)]
    if row.previous_secret_salt and row.previous_secret_expires_at and row.previous_secret_expires_at > now:
        keys.append(secret_for(hub.secret, row.previous_secret_salt))
    return keys


# --- subscriptions -------------------------------------------------------------------------


def create_subscription(hub: Hub, owner: Scope | int, fields: SubscriptionFields) -> tuple[Any, str]:
    """The new subscription and its signing secret (shown this once)."""
    """Subscribe a URL; the answer holds the signing `secret`, shown this once."""
    owner = as_scope(owner)
    _check_url(hub, fields.url)
    types = _event_types(fields.event_types)
    salt = secrets.token_urlsafe(24)
    now = datetime.now(UTC)
    with transaction(hub.engine) as conn:
        store_filter = _store_filter(conn, owner, fields.store_ids)
        number = conn.execute(
            webhook_subscriptions.insert().values(
                organization_id=owner.organization,
                partner_id=owner.partner,
                url=fields.url,
                event_types=json.dumps(types),
                store_ids=None if store_filter is None else json.dumps(store_filter),
                description=fields.description,
                ordered=fields.ordered,
                status="active",
                secret_salt=salt,
                created_at=now,
                updated_at=now,
            )
        ).inserted_primary_key[0]
        row = _subscription(conn, owner, number)
    return row, shown_secret(secret_for(hub.secret, salt))


def list_subscriptions(hub: Hub, owner: Scope | int, limit: int, token: str | None) -> Page:
    owner = as_scope(owner)
    with reading(hub.engine) as conn:
        query = select(webhook_subscriptions).where(*_owned_by(owner), webhook_subscriptions.c.status.in_(LIVE))
        return page_of(conn, query, webhook_subscriptions.c.id, limit, token)


def get_subscription(hub: Hub, owner: Scope | int, subscription_id: str):
    owner = as_scope(owner)
    with reading(hub.engine) as conn:
        return (_subscription(conn, owner, _number(subscription_id)))


def update_subscription(hub: Hub, owner: Scope | int, subscription_id: str, changes: SubscriptionChanges):
    owner = as_scope(owner)
    given = changes.model_dump(exclude_unset=True)
    values: dict = {}
    with reading(hub.engine) as conn:  # someone else's subscription is not found, whatever the body says
        _subscription(conn, owner, _number(subscription_id))
    if given.get("url") is not None:
        _check_url(hub, given["url"])  # resolves the host: outside any transaction
        values["url"] = given["url"]
    if given.get("event_types") is not None:
        values["event_types"] = json.dumps(_event_types(given["event_types"]))
    if "description" in given:
        values["description"] = given["description"]
    if given.get("ordered") is not None:
        values["ordered"] = given["ordered"]
    with transaction(hub.engine) as conn:
        number = _subscription(conn, owner, _number(subscription_id)).id
        if "store_ids" in given:
            store_filter = _store_filter(conn, owner, given["store_ids"])
            values["store_ids"] = None if store_filter is None else json.dumps(store_filter)
        if values:
            conn.execute(_where(number).values(**values, updated_at=datetime.now(UTC)))
        return (_subscription(conn, owner, number))


def pause_subscription(hub: Hub, owner: Scope | int, subscription_id: str):
    """Stop sending; new events keep being kept for the subscription and go out on resume."""
    owner = as_scope(owner)
    with transaction(hub.engine) as conn:
        row = _subscription(conn, owner, _number(subscription_id))
        if row.status == "active":
            conn.execute(_where(row.id).values(status="paused", updated_at=datetime.now(UTC)))
            _hold_pending(conn, row.id)
        return (_subscription(conn, owner, row.id))


def resume_subscription(hub: Hub, owner: Scope | int, subscription_id: str):
    """Send again, a paused or a disabled subscription; what was kept meanwhile goes out now."""
    owner = as_scope(owner)
    now = datetime.now(UTC)
    with transaction(hub.engine) as conn:
        row = _subscription(conn, owner, _number(subscription_id))
        if row.status != "active":
            conn.execute(_where(row.id).values(status="active", disabled_reason=None, failing_since=None, updated_at=now))
            conn.execute(
                webhook_deliveries.update()
                .where(webhook_deliveries.c.subscription_id == row.id, webhook_deliveries.c.status == "held")
                .values(status="pending", next_attempt_at=now)
            )
            new_work(conn)
        result = (_subscription(conn, owner, row.id))
    return result


def delete_subscription(hub: Hub, owner: Scope | int, subscription_id: str) -> None:
    """Stop and forget the subscription; its delivery history is kept for the retention period."""
    owner = as_scope(owner)
    now = datetime.now(UTC)
    with transaction(hub.engine) as conn:
        row = _subscription(conn, owner, _number(subscription_id))
        conn.execute(_where(row.id).values(status="deleted", updated_at=now))
        conn.execute(
            webhook_deliveries.update()
            .where(webhook_deliveries.c.subscription_id == row.id, webhook_deliveries.c.status.in_(("pending", "held")))
            .values(status="cancelled", next_attempt_at=None, finished_at=now)
        )


def rotate_secret(hub: Hub, owner: Scope | int, subscription_id: str, grace_seconds: int | None) -> tuple[Any, str]:
    """A new signing secret (shown this once); the old one keeps signing too for the grace period."""
    owner = as_scope(owner)
    grace = hub.settings.webhook_secret_grace_seconds if grace_seconds is None else grace_seconds
    if not 0 <= grace <= 7 * 24 * 3600:
        raise invalid("grace_seconds must be between 0 and 604800 (7 days)", [FieldError("grace_seconds", "out of range")])
    now = datetime.now(UTC)
    salt = secrets.token_urlsafe(24)
    with transaction(hub.engine) as conn:
        row = _subscription(conn, owner, _number(subscription_id))
        conn.execute(
            _where(row.id).values(
                secret_salt=salt,
                previous_secret_salt=row.secret_salt if grace else None,
                previous_secret_expires_at=now + timedelta(seconds=grace) if grace else None,
                updated_at=now,
            )
        )
        result = (_subscription(conn, owner, row.id))
    return result, shown_secret(secret_for(hub.secret, salt))


def _hold_pending(conn: Connection, subscription: int) -> None:
    conn.execute(
        webhook_deliveries.update()
        .where(webhook_deliveries.c.subscription_id == subscription, webhook_deliveries.c.status == "pending")
        .values(status="held", next_attempt_at=None)
    )


def disable(conn: Connection, subscription: int, reason: str, now: datetime) -> None:
    """Disable a failing subscription and say why; its deliveries are held until it is resumed."""
    conn.execute(_where(subscription).where(webhook_subscriptions.c.status == "active").values(status="disabled", disabled_reason=reason, updated_at=now))
    _hold_pending(conn, subscription)


# --- delivery history ----------------------------------------------------------------------


def list_deliveries(hub: Hub, owner: Scope | int, subscription_id: str, limit: int, token: str | None) -> Page:
    """The subscription's deliveries, newest first, each with its latest attempt."""
    owner = as_scope(owner)
    with reading(hub.engine) as conn:
        number = _subscription(conn, owner, _number(subscription_id)).id
        query = _deliveries_query().where(webhook_deliveries.c.subscription_id == number)
        page = page_of(conn, query, webhook_deliveries.c.id, limit, token, descending=True)
        attempts = _attempts(conn, [row.id for row in page.items])
    return Page([DeliveryRecord(row, attempts.get(row.id, [])) for row in page.items], page.next_token)


class DeliveryRecord(NamedTuple):
    row: Any
    attempts: list  # oldest first


def get_delivery(hub: Hub, owner: Scope | int, delivery_id: str) -> DeliveryRecord:
    owner = as_scope(owner)
    with reading(hub.engine) as conn:
        row = _delivery(conn, owner, delivery_id)
        return DeliveryRecord(row, _attempts(conn, [row.id]).get(row.id, []))


def retry_delivery(hub: Hub, owner: Scope | int, delivery_id: str) -> DeliveryRecord:
    """Send a delivery again now, whatever became of it (a replay: same event id, a new attempt)."""
    owner = as_scope(owner)
    now = datetime.now(UTC)
    with transaction(hub.engine) as conn:
        row = _delivery(conn, owner, delivery_id)
        if row.status == "delivering":
            raise conflict("this delivery is being attempted right now")
        subscription = conn.execute(select(webhook_subscriptions.c.status).where(webhook_subscriptions.c.id == row.subscription_id)).scalar_one()
        if subscription == "deleted":
            raise conflict("the subscription of this delivery was deleted")
        active = subscription == "active"
        conn.execute(
            webhook_deliveries.update()
            .where(webhook_deliveries.c.id == row.id)
            .values(
                status="pending" if active else "held",
                attempts=0,  # a replay gets the whole retry schedule again
                next_attempt_at=now if active else None,
                finished_at=None,
            )
        )
        new_work(conn)
        result = DeliveryRecord(_delivery(conn, owner, delivery_id), [])
    return result


def _deliveries_query():
    d = webhook_deliveries.c
    return select(webhook_deliveries, events.c.type.label("event_type")).join(events, events.c.id == d.event_id)


def _delivery(conn: Connection, owner: Scope, delivery_id: str):
    number = ids.decode("webhook_delivery", delivery_id)
    row = conn.execute(
        _deliveries_query()
        .join(webhook_subscriptions, webhook_subscriptions.c.id == webhook_deliveries.c.subscription_id)
        .where(webhook_deliveries.c.id == number, webhook_deliveries.c.organization_id == owner.organization, *_owned_by(owner))
    ).first()
    if number is None or row is None:
        raise not_found(f"webhook delivery {delivery_id}")
    return row


def _attempts(conn: Connection, delivery_ids: list[int]) -> dict[int, list]:
    found: dict[int, list] = {}
    if not delivery_ids:
        return found
    rows = conn.execute(
        select(webhook_attempts).where(webhook_attempts.c.delivery_id.in_(delivery_ids)).order_by(webhook_attempts.c.id)
    )
    for row in rows:
        found.setdefault(row.delivery_id, []).append(row)
    return found



# --- helpers -------------------------------------------------------------------------------


def _check_url(hub: Hub, url: str) -> None:
    try:
        outbound.check_url(url, hub.settings)
    except outbound.Refused as refused:
        raise invalid(f"the URL {refused}", [FieldError("url", str(refused))]) from None


def _event_types(types: list[str]) -> list[str]:
    unknown = [t for t in types if t not in EVENT_TYPES]
    if unknown:
        raise invalid(
            f"unknown event types: {', '.join(unknown)}",
            [FieldError("event_types", f"{t!r} is not one of {', '.join(EVENT_TYPES)}") for t in unknown],
        )
    return sorted(set(types))


def _store_filter(conn: Connection, owner: Scope, store_ids: list[str] | None) -> list[int] | None:
    if owner.is_partner:
        return _partner_store_filter(owner, store_ids)
    if store_ids is None:
        return None
    owned = store_numbers(conn, owner, store_ids)
    missing = [(i, store_id) for i, store_id in enumerate(store_ids) if store_id not in owned]
    if missing:
        raise invalid(f"store {missing[0][1]} was not found", [FieldError(f"store_ids.{i}", "no such store") for i, _ in missing])
    return sorted(set(owned.values()))


def _number(subscription_id: str) -> int:
    number = ids.decode("webhook_subscription", subscription_id)
    if number is None:
        raise not_found(f"webhook subscription {subscription_id}")
    return number


def _partner_store_filter(owner: Scope, store_ids: list[str] | None) -> list[int]:
    """A partner's subscription is always for exactly its connected store; naming another is refused."""
    connected = ids.encode("store", owner.store)
    for i, store_id in enumerate(store_ids or []):
        if store_id != connected:
            raise invalid(
                f"store {store_id} is not the connected store this call names with X-Store-Id",
                [FieldError(f"store_ids.{i}", f"a partner subscribes for its connected store {connected} only")],
            )
    return [owner.store]


def _owned_by(owner: Scope) -> tuple:
    """The conditions selecting the owner's subscriptions, and no one else's."""
    s = webhook_subscriptions.c
    if not owner.is_partner:
        return (s.organization_id == owner.organization, s.partner_id.is_(None))
    # a partner's store_ids is always written as json.dumps([store]) (see _partner_store_filter)
    return (s.organization_id == owner.organization, s.partner_id == owner.partner, s.store_ids == json.dumps([owner.store]))


def _subscription(conn: Connection, owner: Scope, number: int):
    row = conn.execute(
        select(webhook_subscriptions).where(webhook_subscriptions.c.id == number, *_owned_by(owner), webhook_subscriptions.c.status.in_(LIVE))
    ).first()
    if row is None:
        raise not_found(f"webhook subscription {ids.encode('webhook_subscription', number)}")
    return row


def _where(number: int):
    return webhook_subscriptions.update().where(webhook_subscriptions.c.id == number)

