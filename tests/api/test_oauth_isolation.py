"""Isolation: every /v1 and /organization/v1 route, walked with another organization's ids and
with a partner that is not connected to the store, answers 404 and never data."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from oauth_support import bearer, make_partner, make_user, partner_tokens
from stockhub.api.app import create_app
from stockhub import ids
from stockhub import representations as show
from stockhub.jobs.worker import Worker
from stockhub.services import events, location_groups, orders, shipping, tenancy, uploads, webhooks
from support import make_tenant

ALL = (
    "organization.read organization.service_integration stock.read stock.write orders.read orders.write "
    "webhooks.manage uploads.read"
)
BODIES = {
    ("POST", "/v1/brands/{brand_id}/stores"): {"name": "Sneaky", "country": "GB"},
    ("PATCH", "/v1/stores/{store_id}"): {"city": "Sneaky"},
    ("POST", "/organization/v1/organization/brands/{brand_id}/stores/{store_id}/connection"): {"storeId": "sneaky"},
    ("PATCH", "/v1/orders/{order_id}"): {"custom_invoice_number": "SNEAKY"},
    ("PUT", "/v1/stores/{store_id}/stock/{identifier}"): {"on_hand": 99, "price": "1.00"},
    ("POST", "/v1/stores/{store_id}/stock/adjustments"): {"adjustments": [{"identifier": "9780141383743", "delta": 5}]},
    ("PATCH", "/v1/webhook-subscriptions/{subscription_id}"): {"url": "https://sneaky.example/hooks"},
    ("PUT", "/v1/stores/{store_id}/safety-stock"): {"safety_stock": 1},
    ("PUT", "/v1/stores/{store_id}/stock/{identifier}/safety-stock"): {"safety_stock": 1},
    ("PATCH", "/v1/location-groups/{group_id}"): {"name": "Sneaky"},
    ("POST", "/v1/stores/{store_id}/feeds"): {"name": "Sneaky", "kind": "push"},
    ("PATCH", "/v1/feeds/{feed_id}"): {"name": "Sneaky"},
    ("PUT", "/v1/feeds/{feed_id}/items/{external_id}"): {"vendor_sku": "SNEAKY", "quantity": 99},
    ("PUT", "/v1/feeds/{feed_id}/items/{external_id}/product"): {"identifier": "9780141383743"},
    ("POST", "/v1/feeds/{feed_id}/batches"): {"items": [{"external_id": "sneaky", "vendor_sku": "SNEAKY", "quantity": 99}]},
}


def routes_naming_things(hub) -> list[tuple[str, str]]:
    """Every (method, path) under /v1 and /organization/v1 that names a brand, store, upload or product."""
    paths = create_app(hub).openapi()["paths"]
    found = [
        (method.upper(), path)
        for path, operations in paths.items()
        if path.startswith(("/v1/", "/organization/v1/")) and "{" in path
        for method in operations
    ]
    assert len(found) >= 15, found  # the walk must not silently shrink
    return sorted(found)


def fill(path: str, ids: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: ids[m.group(1)], path)


def walk(client, hub, headers: dict, ids: dict[str, str], secrets: list[str]) -> None:
    for method, path in routes_naming_things(hub):
        response = client.request(method, fill(path, ids), headers=headers, json=BODIES.get((method, path)))
        assert response.status_code == 404, f"{method} {path}: {response.status_code} {response.text}"
        for secret in secrets:
            assert secret not in response.text, f"{method} {path} leaked data"


@pytest.fixture
def foreign(hub, tmp_path, client):
    """Another organization with a store that has stock, an order, a customer, a webhook delivery,
    a push feed with an item and a batch, and a catalog import."""
    other = make_tenant(hub, "Rival Records")
    number = ids.decode("organization", other.organization)
    hub.settings.webhook_allow_loopback = True
    subscription = show.subscription(*webhooks.create_subscription(
        hub, number, webhooks.SubscriptionFields(url="http://127.0.0.1:9/hooks", event_types=["upload.processed"])
    ))
    csv = Path(tmp_path / "stock.csv")
    csv.write_bytes(b"barcode,price,quantity\n9780141383743,6.99,3\n")
    upload_id = uploads.import_file(hub, other.store, csv)["upload_id"]
    while uploads.get_upload(hub, None, upload_id).row.status in ("received", "processing"):
        if not Worker(hub, deliver_webhooks=False).run_once():
            time.sleep(0.05)  # the live server's worker has it
    booking = orders.Booking(
        external_id="rival-1",
        channel={"type": "web", "name": "rival"},
        currency="GBP",
        customer={"email": "fan@rival.example.com"},
        lines=[{"identifier": "9780141383743", "quantity": 1, "unit_price": "6.99"}],
        fulfilment={"type": "pickup", "store_id": other.store},
    )
    order = show.order(orders.book(hub, number, booking)[0])
    events.sequence_events(hub.engine)  # numbered events get their deliveries
    deliveries = [show.delivery(d) for d in webhooks.list_deliveries(hub, number, subscription["id"], 10, None).items]
    assert deliveries, "the foreign subscription has a delivery to walk with"
    group = show.location_group(location_groups.create(hub, number, location_groups.GroupFields(name="Rival region", store_ids=[other.store])))
    method = show.shipping_method(shipping.create(
        hub, number, shipping.ShippingMethod(name="Rival post", price="1.00", currency="GBP", min_days=1, max_days=2, countries=["GB"])
    ))
    foreign_ids = {
        "group_id": group["id"],
        "method_id": method["id"],
        "order_id": order["id"],
        "customer_id": order["customer_id"],
        "subscription_id": subscription["id"],
        "delivery_id": deliveries[0]["id"],
    } | _feed_and_import(client, other)
    return other, upload_id, foreign_ids


def _feed_and_import(client, other) -> dict[str, str]:
    feed = client.post(f"/v1/stores/{other.store}/feeds", json={"name": "Rival supplier", "kind": "push"}, headers=other.auth)
    assert feed.status_code == 201, feed.text
    feed_id = feed.json()["id"]
    item = client.put(f"/v1/feeds/{feed_id}/items/rival-1", json={"vendor_sku": "RIVAL01", "quantity": 1}, headers=other.auth)
    assert item.status_code == 200, item.text
    batch = client.post(f"/v1/feeds/{feed_id}/batches", json={"items": [{"external_id": "rival-2", "vendor_sku": "RIVAL02", "quantity": 1}]}, headers=other.auth)
    assert batch.status_code == 202, batch.text
    made = client.post("/v1/catalog/imports", json={"products": [{"barcode": "9780141383743", "title": "Rival"}]}, headers=other.auth | {"Idempotency-Key": "rival"})
    assert made.status_code == 202, made.text
    return {"feed_id": feed_id, "external_id": "rival-1", "batch_id": batch.json()["id"], "import_id": made.json()["id"]}


def test_another_organizations_ids_are_404_on_every_route(server, client, hub, tenant, foreign):
    other, upload_id, more = foreign
    ids = {"brand_id": other.brand, "store_id": other.store, "upload_id": upload_id, "identifier": "9780141383743"} | more
    walk(client, hub, tenant.auth, ids, [other.upload_key, "Rival Records"])

    partner = make_partner(hub)
    tokens = partner_tokens(client, partner, make_user(hub, tenant), ALL)
    walk(client, hub, bearer(tokens["access_token"]), ids, [other.upload_key, "Rival Records"])


def test_a_partner_reaches_only_the_store_it_is_connected_to(server, client, hub, tenant, foreign):
    other, foreign_upload, more = foreign
    second = tenancy.create_store_for(hub, tenant.brand, {"name": "Second shop", "country": "GB"})
    partner = make_partner(hub)
    access = partner_tokens(client, partner, make_user(hub, tenant), ALL)["access_token"]
    connection = f"/organization/v1/organization/brands/{tenant.brand}/stores/{tenant.store}/connection"
    assert client.post(connection, json={"storeId": "pos-1"}, headers=bearer(access)).status_code == 204

    # the other partner (the foreign retailer's, connected to the foreign store) sees nothing of ours
    rival_partner = make_partner(hub, name="Rival POS")
    rival_access = partner_tokens(client, rival_partner, make_user(hub, other, "boss@rival.test"), ALL)["access_token"]
    rival_connection = f"/organization/v1/organization/brands/{other.brand}/stores/{other.store}/connection"
    assert client.post(rival_connection, json={"storeId": "pos-1"}, headers=bearer(rival_access)).status_code == 204

    csv_ours = client.get(f"/v1/stores/{tenant.store}/uploads", headers=bearer(access, "pos-1"))
    assert csv_ours.status_code == 200  # the connected store is reachable...
    keys = [{"identifier": "9780141383743", "store_id": s} for s in (tenant.store, second.id, other.store)]
    looked_up = client.post("/v1/availability", json={"keys": keys}, headers=bearer(access, "pos-1")).json()["items"]
    assert [item.get("reason") for item in looked_up] == ["not stocked at this store", "unknown store", "unknown store"]
    assert client.post("/v1/availability", json={"keys": keys}, headers=bearer(access)).status_code == 404  # no store named
    for store_header in ("pos-1", None, "pos-unknown"):
        headers = bearer(access, store_header)
        for ids in (
            {"brand_id": tenant.brand, "store_id": second.id, "upload_id": foreign_upload, "identifier": "9780141383743"} | more,
            {"brand_id": other.brand, "store_id": other.store, "upload_id": foreign_upload, "identifier": "9780141383743"} | more,
        ):
            secrets = [other.upload_key, second.secret]
            for method, path in routes_naming_things(hub):
                if path.startswith("/organization/v1/") and ids["brand_id"] == tenant.brand and store_header != "pos-unknown":
                    continue  # the organization tree of the partner's own grantor is its to read
                response = client.request(method, fill(path, ids), headers=headers, json=BODIES.get((method, path)))
                assert response.status_code == 404, f"{store_header} {method} {path}: {response.status_code} {response.text}"
                assert not any(s in response.text for s in secrets)

    # ...but not without naming it, nor with the rival's token naming the same partner store id
    assert client.get(f"/v1/stores/{tenant.store}/stock", headers=bearer(access)).status_code == 404
    assert client.get(f"/v1/stores/{tenant.store}/stock", headers=bearer(rival_access, "pos-1")).status_code == 404
    assert client.get(f"/v1/stores/{other.store}/stock", headers=bearer(rival_access, "pos-1")).status_code == 200


def test_lists_without_ids_show_only_your_own(server, client, hub, tenant, foreign):
    other, _, _ = foreign
    partner = make_partner(hub)
    access = partner_tokens(client, partner, make_user(hub, tenant), ALL)["access_token"]
    for path, headers in (("/v1/brands", tenant.auth), ("/organization/v1/organization/brands", bearer(access))):
        body = client.get(path, headers=headers).json()
        assert [b["id"] for b in body["items"]] == [tenant.brand], path
    assert client.get("/v1/brands", headers=bearer(access)).status_code == 403  # partners read /organization/v1
