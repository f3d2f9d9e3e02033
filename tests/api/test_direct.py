"""The direct routes (api/direct.py) answer as FastAPI would: the same requests, good and bad,
sent to the app as it runs and to the same app with every route handled by FastAPI, get the same
status and body (request ids and the new order's own id and times aside)."""

from __future__ import annotations

import json

import fastapi.routing
import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from stockhub.api import direct
from stockhub.api.app import create_app, routes_app
from stockhub.api.deps import HubDep
from stockhub.services import uploads
from stockhub.jobs.worker import Worker
from support import make_tenant

BOOK = "9780141383743"
OWN = ("id", "external_id", "placed_at", "created_at", "updated_at")


def booking(store: str, external_id: str, **changes) -> dict:
    return {
        "external_id": external_id,
        "channel": {"type": "web", "name": "shop"},
        "currency": "GBP",
        "lines": [{"identifier": BOOK, "quantity": 1, "unit_price": "6.99"}],
        "fulfilment": {"type": "ship", "store_id": store},
    } | changes


def answer(response) -> tuple:
    try:
        body = response.json()
    except ValueError:
        body = response.text
    if isinstance(body, dict):
        body = {k: v for k, v in body.items() if k not in ("request_id", *OWN)}
    return response.status_code, response.headers.get("content-type"), body


@pytest.fixture
def apps(hub, tmp_path, monkeypatch):
    """(the app as it runs, the app with FastAPI's handling for every route), with a stocked store."""
    tenant = make_tenant(hub)
    csv = tmp_path / "stock.csv"
    csv.write_text(f"barcode,price,quantity\n{BOOK},6.99,5\n")
    uploads.import_file(hub, tenant.store, csv)
    Worker(hub, name="test").run_until_idle()

    with monkeypatch.context() as patch:  # FastAPI builds an included route's handler at its router's first request
        patch.setattr(direct.Route, "get_route_handler", APIRoute.get_route_handler)
        reference = TestClient(create_app(hub, routes_app()))  # its own routes, not the ones apps share
        reference.__enter__()
        reference.get("/v1/orders/none"), reference.get(f"/v1/stores/{tenant.store}/stock/{BOOK}")
    with TestClient(create_app(hub)) as ours:
        yield tenant, ours, reference
    reference.__exit__(None, None, None)


def test_bookings_and_lookups_are_answered_without_fastapis_dependency_solving(apps, monkeypatch):
    tenant, ours, reference = apps
    solved = []
    real = fastapi.routing.solve_dependencies

    async def counting(*args, **kwargs):
        solved.append(kwargs["dependant"].call.__name__)
        return await real(*args, **kwargs)

    monkeypatch.setattr(fastapi.routing, "solve_dependencies", counting)
    for client in (ours, reference):
        assert client.post("/v1/orders", json=booking(tenant.store, f"solving-{id(client)}"), headers=tenant.auth).status_code == 201
        assert client.get(f"/v1/stores/{tenant.store}/stock/{BOOK}", headers=tenant.auth).status_code == 200
        assert client.get("/v1/orders", headers=tenant.auth).status_code == 200  # not direct
    assert solved == ["list_orders", "book_order", "get_stock", "list_orders"]


def test_bookings_and_lookups_good_and_bad_are_answered_alike(apps):
    tenant, ours, reference = apps
    auth = tenant.auth
    as_json = {**auth, "Content-Type": "application/json"}
    store, lookup = tenant.store, f"/v1/stores/{tenant.store}/stock/{BOOK}"

    def same(method: str, path: str, **request) -> int:
        said = [answer(client.request(method, path, **request)) for client in (ours, reference)]
        assert said[0] == said[1], (method, path, request)
        return said[0][0]

    vendor_json = {**auth, "Content-Type": "application/vnd.shop+json"}
    for book in (lambda client, name: client.post("/v1/orders", json=booking(store, name), headers=auth),
                 lambda client, name: client.post("/v1/orders", content=json.dumps(booking(store, f"{name}-v")), headers=vendor_json)):
        made = [answer(book(client, name)) for client, name in ((ours, "o-1"), (reference, "r-1"))]  # each books its own
        assert made[0] == made[1] and made[0][0] == 201
    asks = [
        ({"json": booking(store, "o-1")}, 200),  # the same booking again: its order
        ({"json": booking(store, "o-1", currency="EUR")}, 409),  # the same external id, another body
        ({"json": booking(store, "short", lines=[{"identifier": BOOK, "quantity": 99, "unit_price": "1"}])}, 409),
        ({"json": booking(store, "nowhere", fulfilment={"type": "ship", "store_id": "sto_00000000000"})}, None),
        ({"json": booking(store, "no-lines", lines=[])}, 422),
        ({"json": {"external_id": "x"}}, 422),
        ({"json": []}, 422),
        ({"json": booking(store, "nul\u0000")}, 422),
        ({"content": b'{"external_id": "x", "lines": [\x00]', "headers": as_json}, 422),  # a raw NUL: not JSON
        ({"content": b'{"external_id": ', "headers": as_json}, 422),  # not JSON
        ({"content": b'{"external_id": NaN}', "headers": as_json}, 422),  # JSON to Python's json module only
        ({"content": json.dumps(booking(store, "huge", lines=[{"identifier": BOOK, "quantity": 10**30, "unit_price": "1"}])).encode(), "headers": as_json}, 422),
        ({"content": json.dumps(booking(store, "o-1")).encode(), "headers": {**auth, "Content-Type": "application/json; charset=utf-8"}}, 200),
        ({"content": b"\xff\xfe\xfa", "headers": as_json}, None),  # not text
        ({"content": json.dumps(booking(store, "plain")).encode(), "headers": {**auth, "Content-Type": "text/plain"}}, 422),
        ({"content": json.dumps(booking(store, "untyped")).encode(), "headers": auth}, 422),
        ({"content": b"", "headers": as_json}, 422),
        ({"json": booking(store, "anonymous"), "headers": {}}, 401),
        ({"json": {"external_id": "x"}, "headers": {"Authorization": "Bearer nope"}}, 401),  # who asks, before what is asked
        ({"content": b"{", "headers": {"Content-Type": "application/json"}}, 422),  # unreadable before anyone is asked
        ({"json": booking(store, "twice"), "params": {"a": ["1", "2"]}}, 422),
    ]
    for request, status in asks:
        request.setdefault("headers", auth)
        got = same("POST", "/v1/orders", **request)
        assert status is None or got == status, (request, got)
    for path, headers, status in (
        (lookup, auth, 200),
        (f"/v1/stores/{store}/stock/0000000000000", auth, 404),
        (f"/v1/stores/sto_00000000000/stock/{BOOK}", auth, 404),
        (f"/v1/stores/{store}/stock/{BOOK}%00", auth, 422),
        (lookup, {}, 401),
        (lookup, {**auth, "X-Store-Id": "shop-1"}, None),
    ):
        got = same("GET", path, headers=headers)
        assert status is None or got == status, (path, headers, got)


async def _with_a_query(hub: HubDep, limit: int = 10) -> dict:
    return {}


def _sync(hub: HubDep) -> dict:
    return {}


async def _with_a_number(hub: HubDep, store_id: int) -> dict:
    return {}


@pytest.mark.parametrize(
    ("path", "endpoint", "why"),
    [("/x", _with_a_query, "no query parameters"), ("/x", _sync, "an `async def`"), ("/x/{store_id}", _with_a_number, "are `str`")],
)
def test_a_direct_route_refuses_what_its_plan_would_skip(path, endpoint, why):
    with pytest.raises(TypeError, match=why):  # when the route is declared: at import
        direct.Route(path, direct.direct(endpoint), methods=["GET"])


def test_a_booking_whose_client_leaves_mid_body_is_answered_alike(apps):
    """The body never arrives whole (the client went away): FastAPI answers 400, not a crash."""
    tenant, ours, reference = apps

    async def gone_mid_body(app) -> list[int]:
        sent, calls = [], iter([{"type": "http.request", "body": b'{"external_id": "x", ', "more_body": True}, {"type": "http.disconnect"}])
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http", "path": "/v1/orders",
                 "raw_path": b"/v1/orders", "query_string": b"", "root_path": "", "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80),
                 "headers": [(b"host", b"test"), (b"content-type", b"application/json"), (b"authorization", tenant.auth["Authorization"].encode())]}  # fmt: skip

        async def receive() -> dict:
            return next(calls, {"type": "http.disconnect"})

        async def send(message: dict) -> None:
            if message["type"] == "http.response.start":
                sent.append(message["status"])

        await app(scope, receive, send)
        return sent

    answers = [ours.portal.call(gone_mid_body, client.app) for client in (ours, reference)]
    assert answers[0] == answers[1] == [400]
