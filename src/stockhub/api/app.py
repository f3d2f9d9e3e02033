"""The FastAPI application."""

from __future__ import annotations

from fastapi import FastAPI

from stockhub import __version__
from stockhub.api import admin, availability, oauth, orders, organization, problems, products, stock, tenancy, uploads, webhooks
from stockhub.services.context import Hub


def create_app(hub: Hub) -> FastAPI:
    app = FastAPI(title="stockhub", version=__version__, description="Stock-and-order hub for physical retailers")
    app.state.hub = hub
    problems.install(app)
    app.include_router(tenancy.router)
    app.include_router(uploads.router)
    app.include_router(stock.router)
    app.include_router(orders.router)
    app.include_router(availability.router)
    app.include_router(products.router)
    app.include_router(webhooks.router)
    app.include_router(oauth.router)
    app.include_router(organization.router)
    app.include_router(admin.router)

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict:
        return {"status": "ok"}

    return app
