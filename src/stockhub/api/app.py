"""The FastAPI application."""

from __future__ import annotations

import functools
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import Depends, FastAPI

from stockhub import __version__
from stockhub import dashboard
from stockhub.api import admin, availability, deps, feeds, jetti, oauth, ops, orders, organization, problems, products, stock, tenancy, uploads, webhooks
from stockhub.services.context import Hub

# The organization API's error dialect ({message, details[]}, see api/organization.py).
MESSAGE_SCHEMA = {
    "type": "object",
    "required": ["message", "details"],
    "properties": {
        "message": {"type": "string"},
        "details": {
            "type": "array",
            "items": {"type": "object", "properties": {"attribute": {"type": "string"}, "message": {"type": "string"}}},
        },
    },
}


@asynccontextmanager
async def _lifespan(app: FastAPI):
    # Bookings measured at 50 connections on 2 cores: 8 threads answered ~25% more a second than
    # anyio's 40, with a shorter tail (bench/orders); threads beyond that only contend for the GIL.
    anyio.to_thread.current_default_thread_limiter().total_tokens = app.state.hub.settings.api_threads
    yield


def create_app(hub: Hub, routed: FastAPI | None = None) -> FastAPI:
    """The application for `hub`: its state, middleware and error handlers, over the routes that
    every application of the process shares (`routed`: others, made by `routes_app`)."""
    routed = routed or _shared_routes()
    app = FastAPI(title=routed.title, version=routed.version, description=routed.description, docs_url=None, redoc_url=None)
    app.router = routed.router
    app.openapi = routed.openapi
    app.state.hub = hub
    problems.install(app)
    ops.install(app, hub)  # request ids, access logs, rate limits
    return app


def routes_app() -> FastAPI:
    """An application holding every route, for `create_app` to route with (`_shared_routes`: once
    per process). FastAPI builds an included router's routes for each
    application, on its first requests (~0.3 s of CPU): an application per hub would pay that
    again (tests make one per test, each API process one), so they share these. Nothing in a
    route holds a hub: it is the request's application's (`request.app.state.hub`)."""
    app = FastAPI(
        lifespan=_lifespan,
        title="stockhub",
        version=__version__,
        description="Stock-and-order hub for physical retailers",
        dependencies=[Depends(deps.clean_input)],
        docs_url=None,  # /docs: served offline by the dashboard
        redoc_url=None,
    )
    problems.describe(app, {"Message": MESSAGE_SCHEMA})
    # Routes are matched in order, one regex each: the busiest (bookings, stock lookups) first.
    # No path of theirs matches another router's route (tests/api/test_routes.py).
    for router in (orders, stock, tenancy, uploads, availability, products, webhooks, feeds, jetti, admin):
        app.include_router(router.router, responses=problems.responses(*problems.COMMON))
    app.include_router(oauth.router, responses=oauth_responses())
    app.include_router(
        organization.router, responses=problems.responses(*problems.COMMON, 400, 409, schema="Message", media_type="application/json")
    )
    dashboard.install(app)  # the pages for people, and /docs
    app.include_router(ops.router)  # /healthz, /readyz, /metrics
    return app


_shared_routes = functools.cache(routes_app)


def oauth_responses() -> dict:
    """The OAuth and sign-in routes answer in their protocols' own ways: RFC 6749 errors as JSON
    (token, revoke), pages (authorize, sign-in) and redirects; a form failing its CSRF check, or
    text with a NUL, is a problem."""
    page = {"text/html": {"schema": {"type": "string"}}}
    oauth_error = {"application/json": {"schema": OAUTH_ERROR_SCHEMA}}
    redirect = {"headers": {"Location": {"schema": {"type": "string"}}}}
    return {
        302: {"description": "to the client's redirect URI, with a code or an error", **redirect},
        303: {"description": "to the sign-in page, or where it leads", **redirect},
        400: {"description": "a refused request: an RFC 6749 error, or a page saying why", "content": page | oauth_error},
        401: {"description": "a client that failed to authenticate, or a failed sign-in", "content": page | oauth_error},
    } | problems.responses(403, 422, 429, 503)


OAUTH_ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string"}, "error_description": {"type": "string"}, "error_uri": {"type": "string"}},
}
