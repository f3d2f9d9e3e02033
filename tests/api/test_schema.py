"""Prototype."""
from __future__ import annotations

import time

import httpx2 as httpx
import pytest
import schemathesis
from hypothesis import strategies as st

import conftest
from receiver import Receiver, webhook_settings
from stockhub.api.app import create_app
from stockhub.services.context import Hub
from support import make_tenant, upload_and_wait

STOCK = b"barcode,price,quantity\n9780141383743,6.99,3\n036000291452,2.50,0\n"
SEEDED: dict = {}

schema = schemathesis.openapi.from_dict(create_app(None).openapi(), config=schemathesis.Config.from_dict({
        "generation": {"max-examples": 5, "database": "none"},
    }))


@schema.hook
def flatmap_path_parameters(context, params):
    real = {k: SEEDED[k] for k in params if k in SEEDED}
    return st.sampled_from([params, params | real, params | real])


@pytest.fixture(scope="module", params=["sqlite"])
def live(request, tmp_path_factory):
    import shutil
    tmp = tmp_path_factory.mktemp("schema")
    path = tmp / "db.sqlite3"
    shutil.copy(request.getfixturevalue("sqlite_template"), path)
    hub = Hub.from_settings(webhook_settings(f"sqlite:///{path}", tmp))
    receiver = Receiver()
    gen = conftest.server.__wrapped__(hub)
    server = next(gen)
    tenant = make_tenant(hub)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        upload = upload_and_wait(client, tenant, STOCK)
        sub = client.post("/v1/webhook-subscriptions", json={"url": receiver.url, "event_types": ["order.created"]}, headers=tenant.auth).json()
        order = client.post("/v1/orders", headers=tenant.auth, json={
            "external_id": "seed-1", "channel": {"type": "web", "name": "shop"}, "currency": "GBP",
            "customer": {"email": "ada@example.com", "name": "Ada"},
            "lines": [{"identifier": "9780141383743", "quantity": 1, "unit_price": "6.99"}],
            "fulfilment": {"type": "pickup", "store_id": tenant.store}}).json()
        deadline = time.monotonic() + 20
        while not (d := client.get(f"/v1/webhook-subscriptions/{sub['id']}/deliveries", headers=tenant.auth).json()["items"]):
            assert time.monotonic() < deadline
            time.sleep(0.05)
    SEEDED.update({
        "store_id": tenant.store, "brand_id": tenant.brand, "upload_id": upload["id"], "order_id": order["id"],
        "customer_id": order["customer_id"], "subscription_id": sub["id"], "delivery_id": d[0]["id"],
        "identifier": "09780141383743", "upload_key": tenant.upload_key,
    })
    yield server, tenant
    try:
        next(gen)
    except StopIteration:
        pass
    receiver.stop()
    hub.engine.dispose()


@schema.parametrize()
def test_api(case, live):
    server, tenant = live
    case.call_and_validate(base_url=server.url, headers={"Authorization": f"Bearer {tenant.token}"})
