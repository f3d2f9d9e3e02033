from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from stockhub import representations as show
from stockhub.api import direct
from stockhub.api.deps import CONFLICT, HubDep, Limit, Organization, Scoped, Token, also, in_thread, page_body
from stockhub.domain.orders import Action, OrderStatus
from stockhub.services import customers, orders
from stockhub.services.fields import Bool
from stockhub.services.scope import scope_of

router = APIRouter(prefix="/v1", route_class=direct.Route, tags=["orders"])


@router.post("/orders", status_code=201, response_model=dict, responses=also(200, "the order booked before with this external_id and body") | CONFLICT)
@direct.direct
async def book_order(hub: HubDep, principal: Scoped("orders.write"), body: orders.Booking) -> JSONResponse:
    """Book an order against live availability: every line's stock is committed, or none (409
    with the short lines). The same `external_id` and body again returns the order (200)."""
    order, created = await in_thread(hub, orders.book, hub, scope_of(principal), body)
    return direct.Answer(show.order(order), 201 if created else 200)


@router.get("/orders")
def list_orders(
    hub: HubDep, principal: Scoped("orders.read"), limit: Limit = 50, token: Token = None, status: OrderStatus | None = None
) -> dict:
    return page_body(orders.list_orders(hub, scope_of(principal), limit, token, status), show.order)


@router.get("/orders/{order_id}")
def get_order(hub: HubDep, principal: Scoped("orders.read"), order_id: str) -> dict:
    return show.order(orders.get(hub, scope_of(principal, f"order {order_id}"), order_id))


@router.patch("/orders/{order_id}", responses=CONFLICT)
def update_order(hub: HubDep, principal: Scoped("orders.write"), order_id: str, body: orders.OrderChanges) -> dict:
    """Change the invoice number, planned dates, payment; everything else is read-only."""
    return show.order(orders.update(hub, scope_of(principal, f"order {order_id}"), order_id, body))


@router.post("/orders/{order_id}/confirm", responses=CONFLICT)
def confirm(hub: HubDep, principal: Scoped("orders.write"), order_id: str) -> dict:
    """The held units leave the store's count: on_hand and committed both drop."""
    return show.order(orders.step(hub, scope_of(principal, f"order {order_id}"), order_id, Action.CONFIRM))


@router.post("/orders/{order_id}/dispatch", responses=CONFLICT)
def dispatch(hub: HubDep, principal: Scoped("orders.write"), order_id: str) -> dict:
    return show.order(orders.step(hub, scope_of(principal, f"order {order_id}"), order_id, Action.DISPATCH))


@router.post("/orders/{order_id}/deliver", responses=CONFLICT)
def deliver(hub: HubDep, principal: Scoped("orders.write"), order_id: str) -> dict:
    return show.order(orders.step(hub, scope_of(principal, f"order {order_id}"), order_id, Action.DELIVER))


class Cancellation(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str | None = Field(None, max_length=500)
    restock: Bool = Field(False, description="after confirmation: put the units back on the shelf")


@router.post("/orders/{order_id}/cancel", responses=CONFLICT)
def cancel(hub: HubDep, principal: Scoped("orders.write"), order_id: str, body: Annotated[Cancellation | None, Body()] = None) -> dict:
    """Unconfirmed: the held units are released. Confirmed or dispatched: `restock` decides."""
    body = body or Cancellation()
    return show.order(orders.step(hub, scope_of(principal, f"order {order_id}"), order_id, Action.CANCEL, reason=body.reason, restock=body.restock))


@router.post("/customers", status_code=201, responses=also(200, "the customer found"))
def get_or_create_customer(hub: HubDep, organization: Organization, body: customers.CustomerRef, response: Response) -> dict:
    """Find a customer by external id or email, or make one (201)."""
    customer, made = customers.get_or_create(hub, organization, body)
    if not made:
        response.status_code = 200
    return show.customer(customer)


@router.get("/customers")
def search_customers(
    hub: HubDep, organization: Organization, q: Annotated[str | None, Query(min_length=1, max_length=200)] = None, limit: Limit = 50, token: Token = None
) -> dict:
    return page_body(customers.search(hub, organization, q, limit, token), show.customer)


@router.get("/customers/{customer_id}")
def get_customer(hub: HubDep, organization: Organization, customer_id: str) -> dict:
    return show.customer(customers.get(hub, organization, customer_id))


@router.get("/customers/{customer_id}/orders")
def customer_orders(hub: HubDep, organization: Organization, customer_id: str, limit: Limit = 50, token: Token = None) -> dict:
    """The customer's order history, newest first."""
    return page_body(orders.of_customer(hub, organization, customer_id, limit, token), show.order)
