"""The dashboard's pages. Thin: parse, authorize (the signed-in user's scope, from
services/scope), call one service function, render. A service's error is shown as a message
page with its status; a visitor not signed in is sent to /signin and back."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates

from stockhub.api import sessions
from stockhub.api.deps import get_hub
from stockhub.dashboard.charts import stability_svg, upload_history_svg
from stockhub.domain.access import Scope
from stockhub.domain.orders import Action
from stockhub.errors import Conflict, FieldError, Invalid, Malformed, NotFound, Problem, Refused, ServiceError, TooLarge
from stockhub import representations as show
from stockhub.services import accounts, connections, dashboard, orders, stock, tenancy, uploads, webhooks

templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
templates.env.globals.update(upload_history_svg=upload_history_svg, stability_svg=stability_svg)

_STATUS = {NotFound: 404, Malformed: 400, Invalid: 422, Conflict: 409, Refused: 403, TooLarge: 413}


class SignInFirst(Exception):
    def __init__(self, target: str):
        self.target = target


class PageRoute(APIRoute):
    """Errors become pages: a service's error with its status, no session → the sign-in page."""

    def get_route_handler(self):
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except SignInFirst as first:
                return RedirectResponse("/signin?" + urlencode({"next": first.target}), status_code=303)
            except ServiceError as error:
                status = next((code for kind, code in _STATUS.items() if isinstance(error, kind)), 400)
                return _message(request, status, error.title, error.detail, error.errors)
            except Problem as problem:
                return _message(request, problem.status, problem.title, problem.detail, problem.errors)

        return route


router = APIRouter(route_class=PageRoute, include_in_schema=False)


@dataclass(frozen=True)
class Viewer:
    user: accounts.User
    csrf: str

    @property
    def scope(self) -> Scope:
        if self.user.organization is None:
            raise NotFound("the retailer's pages are for a retailer's users: see /partner")
        return Scope(self.user.organization)

    @property
    def partner(self) -> int:
        if self.user.partner is None:
            raise NotFound("the partner pages are for a partner's users: see /dashboard")
        return self.user.partner


def viewer(request: Request) -> Viewer:
    hub = get_hub(request)
    session = sessions.read(hub, request)
    user = sessions.signed_in(hub, session)
    if user is None or not session.get("csrf"):
        raise SignInFirst(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
    return Viewer(user, session["csrf"])


def posted(request: Request, csrf_token: Annotated[str, Form()] = "") -> Viewer:
    """A form post: the signed-in user, and the form's CSRF token must match the session's."""
    seen = viewer(request)
    sessions.check_csrf({"csrf": seen.csrf}, csrf_token)
    return seen


Seen = Annotated[Viewer, Depends(viewer)]
Posted = Annotated[Viewer, Depends(posted)]


def _page(request: Request, name: str, viewer: Viewer | None, http_status: int = 200, **context) -> HTMLResponse:
    response = templates.TemplateResponse(request, name, {"viewer": viewer, **context}, status_code=http_status)
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    return response


def _message(request: Request, status: int, title: str, detail: str, errors: list[FieldError]) -> HTMLResponse:
    hub = get_hub(request)
    session = sessions.read(hub, request)
    user = sessions.signed_in(hub, session)
    seen = Viewer(user, session["csrf"]) if user and session.get("csrf") else None
    return _page(request, "message.html", seen, status, title=title, detail=detail, errors=errors)


def _back(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303)


# --- a retailer's pages ---------------------------------------------------------------------


@router.get("/dashboard", response_class=HTMLResponse)
def overview(request: Request, seen: Seen) -> Response:
    if seen.user.organization is None:
        return _back("/partner")
    return _page(request, "overview.html", seen, stores=dashboard.store_health(get_hub(request), seen.scope))


@router.get("/dashboard/stores/{store_id}", response_class=HTMLResponse)
def store_page(request: Request, seen: Seen, store_id: str) -> Response:
    hub = get_hub(request)
    store = show.store(tenancy.get_store(hub, seen.scope, store_id))
    return _page(
        request,
        "store.html",
        seen,
        store=store,
        history=dashboard.upload_history(hub, seen.scope, store_id),
        uploads=[show.upload(row) for row in uploads.list_uploads(hub, seen.scope, store_id, 50, None).items],
        key=None,
    )


@router.post("/dashboard/stores/{store_id}/upload-key", response_class=HTMLResponse)
def upload_key(
    request: Request, seen: Posted, store_id: str, action: Annotated[str, Form()], confirm: Annotated[str, Form()] = ""
) -> Response:
    """Reveal or rotate the store's upload key: only with the confirmation box ticked."""
    hub = get_hub(request)
    if action not in ("reveal", "rotate"):
        raise Malformed("action must be reveal or rotate", [FieldError("action", "unknown action")])
    if confirm != "yes":
        raise Invalid("tick the confirmation box first", [FieldError("confirm", "required")])
    if action == "rotate":
        key = tenancy.rotate_upload_key(hub, seen.scope.organization, store_id)
    else:
        key = connections.current_upload_key(hub, seen.scope, store_id)
    store = show.store(tenancy.get_store(hub, seen.scope, store_id))
    return _page(request, "upload_key.html", seen, store=store, key=key, rotated=action == "rotate")


@router.get("/dashboard/uploads/{upload_id}", response_class=HTMLResponse)
def upload_page(request: Request, seen: Seen, upload_id: str) -> Response:
    return _page(request, "upload.html", seen, upload=show.upload(*uploads.get_upload(get_hub(request), seen.scope, upload_id)), base="/dashboard")


@router.get("/dashboard/uploads/{upload_id}/rejections.csv")
def rejections(request: Request, seen: Seen, upload_id: str) -> Response:
    body = uploads.rejections_csv(get_hub(request), seen.scope, upload_id)
    disposition = f'attachment; filename="{upload_id}-rejections.csv"'
    return Response(body, media_type="text/csv; charset=utf-8", headers={"Content-Disposition": disposition})


@router.get("/dashboard/stores/{store_id}/stock", response_class=HTMLResponse)
def stock_page(
    request: Request,
    seen: Seen,
    store_id: str,
    q: Annotated[str, Query(max_length=40)] = "",
    status: str = "",
    token: str | None = None,
) -> Response:
    hub = get_hub(request)
    page = stock.list_stock(hub, seen.scope, store_id, 100, token or None, status or None, q or None)
    store = show.store(tenancy.get_store(hub, seen.scope, store_id))
    more = None if page.next_token is None else "?" + urlencode({"q": q, "status": status, "token": page.next_token})
    return _page(request, "stock.html", seen, store=store, levels=[show.stock(row) for row in page.items], q=q, status=status, more=more)


@router.get("/dashboard/orders", response_class=HTMLResponse)
def orders_page(request: Request, seen: Seen, status: str = "", token: str | None = None) -> Response:
    page = orders.list_orders(get_hub(request), seen.scope, 50, token or None, status or None)
    more = None if page.next_token is None else "?" + urlencode({"status": status, "token": page.next_token})
    names = {s["id"]: s["name"] for s in dashboard.store_health(get_hub(request), seen.scope)}
    return _page(request, "orders.html", seen, orders=[show.order(o) for o in page.items], status=status, more=more, store_names=names, actions=list(Action))


@router.post("/dashboard/orders/{order_id}/{action}")
def order_action(
    request: Request,
    seen: Posted,
    order_id: str,
    action: str,
    reason: Annotated[str, Form(max_length=500)] = "",
    restock: Annotated[str, Form()] = "",
) -> Response:
    try:
        step = Action(action)
    except ValueError:
        raise NotFound(f"an order action {action!r} was not found") from None
    orders.step(get_hub(request), seen.scope, order_id, step, reason=reason or None, restock=restock == "yes")
    return _back(f"/dashboard/orders#{order_id}")


@router.get("/dashboard/webhooks", response_class=HTMLResponse)
def webhooks_page(request: Request, seen: Seen, token: str | None = None) -> Response:
    page = webhooks.list_subscriptions(get_hub(request), seen.scope, 100, token or None)
    return _page(request, "webhooks.html", seen, subscriptions=[show.subscription(row) for row in page.items])


@router.get("/dashboard/webhooks/{subscription_id}", response_class=HTMLResponse)
def subscription_page(request: Request, seen: Seen, subscription_id: str, token: str | None = None) -> Response:
    hub = get_hub(request)
    subscription = show.subscription(webhooks.get_subscription(hub, seen.scope, subscription_id))
    page = webhooks.list_deliveries(hub, seen.scope, subscription_id, 50, token or None)
    more = None if page.next_token is None else "?" + urlencode({"token": page.next_token})
    return _page(request, "subscription.html", seen, subscription=subscription, deliveries=[show.delivery(d, last_attempt_only=True) for d in page.items], more=more)


@router.post("/dashboard/deliveries/{delivery_id}/retry")
def retry(request: Request, seen: Posted, delivery_id: str) -> Response:
    delivery = show.delivery(webhooks.retry_delivery(get_hub(request), seen.scope, delivery_id))
    return _back(f"/dashboard/webhooks/{delivery['subscription_id']}#{delivery_id}")


# --- a partner's pages ----------------------------------------------------------------------


@router.get("/partner", response_class=HTMLResponse)
def partner_overview(request: Request, seen: Seen) -> Response:
    if seen.user.partner is None:
        return _back("/dashboard")
    return _page(request, "partner.html", seen, stores=dashboard.partner_stores(get_hub(request), seen.partner))


@router.get("/partner/stores/{store_id}", response_class=HTMLResponse)
def partner_store(request: Request, seen: Seen, store_id: str) -> Response:
    hub = get_hub(request)
    scope = dashboard.partner_store(hub, seen.partner, store_id)
    return _page(
        request,
        "partner_store.html",
        seen,
        store=show.store(tenancy.get_store(hub, scope, store_id)),
        history=dashboard.upload_history(hub, scope, store_id),
        uploads=[show.upload(row) for row in uploads.list_uploads(hub, scope, store_id, 50, None).items],
    )


@router.get("/partner/stores/{store_id}/uploads/{upload_id}", response_class=HTMLResponse)
def partner_upload(request: Request, seen: Seen, store_id: str, upload_id: str) -> Response:
    hub = get_hub(request)
    record = show.upload(*uploads.get_upload(hub, dashboard.partner_store(hub, seen.partner, store_id), upload_id))
    return _page(request, "upload.html", seen, upload=record, base=f"/partner/stores/{store_id}")


@router.get("/partner/stores/{store_id}/uploads/{upload_id}/rejections.csv")
def partner_rejections(request: Request, seen: Seen, store_id: str, upload_id: str) -> Response:
    hub = get_hub(request)
    body = uploads.rejections_csv(hub, dashboard.partner_store(hub, seen.partner, store_id), upload_id)
    disposition = f'attachment; filename="{upload_id}-rejections.csv"'
    return Response(body, media_type="text/csv; charset=utf-8", headers={"Content-Disposition": disposition})
