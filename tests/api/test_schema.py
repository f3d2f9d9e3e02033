"""The OpenAPI description is the truth: schemathesis sends every operation generated requests,
valid and invalid, against a live server with a seeded tenant, and runs all its checks (no server
error, only documented status codes, content types, response bodies and headers, invalid data
refused, valid data accepted, methods and `Allow`...). Both databases.

Path parameters are the seeded tenant's real ids two times in three (the rest as generated), so
requests reach the stores, uploads, orders, customers, subscriptions and deliveries themselves.
"""

from __future__ import annotations

import os
import time

import httpx2 as httpx
import pytest
import schemathesis
from hypothesis import strategies as st

from conftest import fresh_database, serving
from receiver import Receiver, webhook_settings
from stockhub.api.app import create_app
from stockhub.services import accounts
from stockhub.services.context import Hub
from support import make_tenant, upload_and_wait

# generated requests per operation (fuzzing phase; the examples and coverage phases add theirs):
# bounded for CI, raise it for a deeper run, e.g. STOCKHUB_SCHEMA_EXAMPLES=200
EXAMPLES_PER_OPERATION = int(os.environ.get("STOCKHUB_SCHEMA_EXAMPLES", "12"))
CONFIG = {
    "seed": 16,
    "suppress-health-check": ["too_slow"],  # a real server on a busy CI machine is slow; nothing is wrong
    # Unknown query parameters are ignored, as by most HTTP APIs (POS clients add their own), so
    # sending one is no invalid request.
    "generation": {"max-examples": EXAMPLES_PER_OPERATION, "database": "none", "allow-extra-parameters": False},
    "checks": {
        # JSON Schema cannot say everything a valid request needs: GTIN check digits, ISO code
        # lists, an https URL, a page token this API gave out, ids the caller owns. A request the
        # schema allows may therefore be refused with a problem naming the field, never a 5xx.
        "positive_data_acceptance": {"expected-statuses": ["2xx", "3xx", "400", "401", "403", "404", "409", "422"]},
    },
}
# The description as the app serves it (building it needs no database); one test per operation.
# (schemathesis.pytest.from_fixture, the lazy loader, breaks on pytest 9.2: it sets Node._nodeid.)
schema = schemathesis.openapi.from_dict(create_app(None).openapi(), config=schemathesis.Config.from_dict(CONFIG))
REAL: dict[str, str] = {}  # path parameter → a seeded id (filled by the `live` fixture)
STOCK = b"barcode,price,quantity\n9780141383743,6.99,3\n036000291452,2.50,0\n9780141383744,5.00,1\n"


@schema.hook
def flatmap_path_parameters(context, parameters):
    if not parameters:
        return st.just(parameters)
    real = parameters | {name: REAL[name] for name in parameters if name in REAL}
    return st.sampled_from([parameters, real, real])


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def live(request, tmp_path_factory):
    """A server on one database, with an organization that has a processed upload, an order of a
    customer, a webhook subscription with a delivery, a catalog import with a rejected item, and a
    push feed with an item and a batch."""
    tmp = tmp_path_factory.mktemp(request.param)
    hub = Hub.from_settings(webhook_settings(fresh_database(request, request.param, tmp), tmp))
    receiver = Receiver()
    with serving(hub) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        tenant = make_tenant(hub)
        admin = accounts.create_admin_token(hub).secret
        upload = upload_and_wait(client, tenant, STOCK)
        subscription = client.post(
            "/v1/webhook-subscriptions", json={"url": receiver.url, "event_types": ["order.created"]}, headers=tenant.auth
        ).json()
        order = client.post("/v1/orders", headers=tenant.auth, json={
            "external_id": "web-1", "channel": {"type": "web", "name": "shop"}, "currency": "GBP",
            "customer": {"email": "ada@example.com", "name": "Ada"},
            "lines": [{"identifier": "9780141383743", "quantity": 1, "unit_price": "6.99"}],
            "fulfilment": {"type": "pickup", "store_id": tenant.store},
        }).json()
        deliveries = []
        deadline = time.monotonic() + 30
        while not deliveries:
            assert time.monotonic() < deadline, "the order's webhook delivery was not made"
            time.sleep(0.05)
            deliveries = client.get(f"/v1/webhook-subscriptions/{subscription['id']}/deliveries", headers=tenant.auth).json()["items"]
        imported = client.post("/v1/catalog/imports", headers=tenant.auth | {"Idempotency-Key": "seed"}, json={"products": [
            {"barcode": "9780141383743", "title": "Matilda", "brand": "Puffin", "categories": ["Books > Children"],
             "prices": [{"catalog": "en-GB/GBP", "price": "6.99"}]},
            {"barcode": "9780141383744", "title": "A wrong check digit"},
        ]}).json()  # fmt: skip
        deadline = time.monotonic() + 30
        while client.get(f"/v1/catalog/imports/{imported['id']}", headers=tenant.auth).json()["status"] != "succeeded":
            assert time.monotonic() < deadline, "the catalog import was not processed"
            time.sleep(0.05)
        feed = client.post(f"/v1/stores/{tenant.store}/feeds", json={"name": "Supplier", "kind": "push"}, headers=tenant.auth).json()
        item = client.put(f"/v1/feeds/{feed['id']}/items/sup-1", json={"vendor_sku": "NEWSKU01", "quantity": 4}, headers=tenant.auth).json()
        batch = client.post(f"/v1/feeds/{feed['id']}/batches", json={"items": [{"external_id": "sup-2", "quantity": 1}]}, headers=tenant.auth).json()
        signed = httpx.URL(client.get(f"/upload/{tenant.upload_key}").text)
        REAL.clear()
        REAL.update(
            store_id=tenant.store,
            brand_id=tenant.brand,
            upload_id=upload["id"],
            order_id=order["id"],
            customer_id=order["customer_id"],
            subscription_id=subscription["id"],
            delivery_id=deliveries[0]["id"],
            identifier="9780141383743",
            import_id=imported["id"],
            upload_key=tenant.upload_key,
            kind=signed.path.rsplit("/", 1)[1],
            feed_id=feed["id"],
            external_id="sup-1",
            batch_id=batch["id"],
            variant_id=item["id"],
        )
        yield server.url, {"Authorization": f"Bearer {tenant.token}"}, {"Authorization": f"Bearer {admin}"}
    receiver.stop()
    hub.engine.dispose()


@schema.parametrize()
def test_the_api_answers_as_its_openapi_description_says(case, live):
    url, organization, admin = live
    case.call_and_validate(base_url=url, headers=admin if case.path.startswith("/admin/") else organization, timeout=30)
