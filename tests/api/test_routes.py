"""Every API route is reachable: the first route matching a request for its own path and method
is that route (routes are tried in order, so the app may put the busiest first)."""

from __future__ import annotations

import re

from fastapi.routing import APIRoute
from starlette.routing import Match

from stockhub.api.app import create_app


def _flat_routes(router) -> list:
    """A router's routes in the order a request tries them (included routers expanded)."""
    found = []
    for route in router.routes:
        original = getattr(route, "original_router", None)
        found += _flat_routes(original) if original is not None else [route]
    return found


def test_no_route_is_shadowed_by_an_earlier_one(hub):
    routes = [r for r in _flat_routes(create_app(hub).router) if hasattr(r, "path_regex")]
    api_routes = [r for r in routes if isinstance(r, APIRoute)]
    assert len(api_routes) > 50  # the expansion found the API
    shadowed = []
    for route in api_routes:
        path = re.sub(r"\{[^}:]+(:path)?\}", "abc1", route.path)
        for method in route.methods:
            scope = {"type": "http", "path": path, "method": method, "root_path": ""}
            first = next(r for r in routes if r.matches(scope)[0] == Match.FULL)
            if first is not route:
                shadowed.append(f"{method} {route.path} is answered by {first.path}")
    assert shadowed == [], shadowed
