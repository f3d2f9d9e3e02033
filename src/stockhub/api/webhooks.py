from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from stockhub import representations as show
from stockhub.api.deps import CONFLICT, HubDep, Limit, Scoped, Token, page_body
from stockhub.domain.access import Scope
from stockhub.services import events, webhooks
from stockhub.services.fields import Int
from stockhub.services.scope import scope_of

router = APIRouter(prefix="/v1", tags=["webhooks"])
MAX_SEQUENCE = 2**63 - 1  # sequence numbers are 64-bit


def webhook_owner(principal: Scoped("webhooks.manage")) -> Scope:
    """An organization's token: its own subscriptions. A partner's (with `X-Store-Id`): its own,
    for that connected store only; without a connected store named, nothing here is found."""
    return scope_of(principal)


WebhookOwner = Annotated[Scope, Depends(webhook_owner)]


@router.post("/webhook-subscriptions", status_code=201)
def create_subscription(hub: HubDep, owner: WebhookOwner, body: webhooks.SubscriptionFields) -> dict:
    """Subscribe a URL to event types (optionally of some stores only). The answer's `secret`
    (`whsec_…`, for any Standard Webhooks library) is shown this once."""
    return show.subscription(*webhooks.create_subscription(hub, owner, body))


@router.get("/webhook-subscriptions")
def list_subscriptions(hub: HubDep, owner: WebhookOwner, limit: Limit = 100, token: Token = None) -> dict:
    return page_body(webhooks.list_subscriptions(hub, owner, limit, token), show.subscription)


@router.get("/webhook-subscriptions/{subscription_id}")
def get_subscription(hub: HubDep, owner: WebhookOwner, subscription_id: str) -> dict:
    return show.subscription(webhooks.get_subscription(hub, owner, subscription_id))


@router.patch("/webhook-subscriptions/{subscription_id}")
def update_subscription(hub: HubDep, owner: WebhookOwner, subscription_id: str, body: webhooks.SubscriptionChanges) -> dict:
    return show.subscription(webhooks.update_subscription(hub, owner, subscription_id, body))


@router.post("/webhook-subscriptions/{subscription_id}/pause")
def pause_subscription(hub: HubDep, owner: WebhookOwner, subscription_id: str) -> dict:
    """Stop sending; events meanwhile are kept and sent on resume."""
    return show.subscription(webhooks.pause_subscription(hub, owner, subscription_id))


@router.post("/webhook-subscriptions/{subscription_id}/resume")
def resume_subscription(hub: HubDep, owner: WebhookOwner, subscription_id: str) -> dict:
    """Send again (after a pause, or after it was disabled for failing); what was kept goes out now."""
    return show.subscription(webhooks.resume_subscription(hub, owner, subscription_id))


@router.delete("/webhook-subscriptions/{subscription_id}", status_code=204)
def delete_subscription(hub: HubDep, owner: WebhookOwner, subscription_id: str) -> Response:
    webhooks.delete_subscription(hub, owner, subscription_id)
    return Response(status_code=204)


class Rotation(BaseModel):
    model_config = ConfigDict(extra="forbid")
    grace_seconds: Int | None = Field(None, description="how long the old secret keeps signing too (default 24 h)")


@router.post("/webhook-subscriptions/{subscription_id}/secret")
def rotate_secret(hub: HubDep, owner: WebhookOwner, subscription_id: str, body: Rotation | None = None) -> dict:
    """A new signing secret, shown this once; both sign deliveries until the grace period ends."""
    return show.subscription(*webhooks.rotate_secret(hub, owner, subscription_id, body.grace_seconds if body else None))


@router.get("/webhook-subscriptions/{subscription_id}/deliveries")
def list_deliveries(hub: HubDep, owner: WebhookOwner, subscription_id: str, limit: Limit = 50, token: Token = None) -> dict:
    """Every delivery to the subscription, newest first, with its latest attempt."""
    return page_body(webhooks.list_deliveries(hub, owner, subscription_id, limit, token), lambda d: show.delivery(d, last_attempt_only=True))


@router.get("/webhook-deliveries/{delivery_id}")
def get_delivery(hub: HubDep, owner: WebhookOwner, delivery_id: str) -> dict:
    """A delivery with every attempt: time, status code, latency, response excerpt, error."""
    return show.delivery(webhooks.get_delivery(hub, owner, delivery_id))


@router.post("/webhook-deliveries/{delivery_id}/retry", status_code=202, responses=CONFLICT)
def retry_delivery(hub: HubDep, owner: WebhookOwner, delivery_id: str) -> dict:
    """Send the delivery's event again now (same event id), with a fresh retry schedule."""
    return show.delivery(webhooks.retry_delivery(hub, owner, delivery_id))


@router.get("/events", tags=["events"])
def list_events(
    hub: HubDep,
    owner: WebhookOwner,
    store_id: Annotated[str | None, Query(description="the store's events; omitted: every event of the organization (a partner: its connected store's)")] = None,
    after: Annotated[int, Query(ge=0, le=MAX_SEQUENCE, description="the last sequence number already seen (0: from the start)")] = 0,
    limit: Annotated[int, Query(ge=1, le=events.MAX_EVENTS_PAGE, description="events per page")] = 20,
) -> dict:
    """Catch up without webhooks: the events numbered after `after`, oldest first.
    Ask again with `after` = the answer's `next_after` until `items` is empty."""
    items = [show.event(*record) for record in events.list_events(hub, owner, store_id, after, limit)]
    return {"items": items, "next_after": items[-1]["sequence"] if items else after}
