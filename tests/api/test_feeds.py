"""Inventory feeds end to end over real HTTP, on both databases: a client written for Jetti's API
(only the host and token changed), stockhub's own /v1/feeds, mapping unmapped items, orders
naming unmapped items, and the daily item limit."""

from __future__ import annotations

import time

import httpx2 as httpx
import pytest

from receiver import webhook_settings
from stockhub.settings import Settings
from support import make_tenant, upload_and_wait

SKU_STOCK = b"sku,price,quantity\nABC12345,6.99,1\nXYZ98765,3.00,2\n"


@pytest.fixture
def settings(database_url, tmp_path) -> Settings:
    return webhook_settings(database_url, tmp_path)


class JettiClient:
    """What a supplier's integration written against Jetti's API does, given a host and a token."""

    def __init__(self, host: str, token: str):
        self.http = httpx.Client(base_url=host, headers={"Authorization": f"Bearer {token}"}, timeout=30)

    def create_provider(self, name: str) -> dict:
        return self._ok(self.http.post("/api/dropship-providers.json", json={"name": name}))

    def create_feed(self, provider_id, name: str) -> dict:
        body = {"name": name, "dropshipProviderId": provider_id, "type": "webhook", "automaticallyConnect": True}
        return self._ok(self.http.post("/api/inventory-feeds.json", json=body))

    def upsert(self, feed_id, item: dict) -> dict:
        return self._ok(self.http.put(f"/api/inventory-feeds/{feed_id}/parse-webhook.json", json=item))

    def upsert_batch(self, feed_id, items: list[dict]) -> httpx.Response:
        return self.http.put(f"/api/inventory-feeds/{feed_id}/parse-webhook.json", json=items)

    def variants(self, feed_id, **params) -> httpx.Response:
        return self.http.get("/api/inventory-feed-variants.json", params={"inventoryFeedId": feed_id, **params})

    def update_variant(self, variant_id, changes: dict) -> dict:
        return self._ok(self.http.put(f"/api/inventory-feed-variants/{variant_id}.json", json=changes))

    @staticmethod
    def _ok(answer: httpx.Response) -> dict:
        assert answer.status_code in (200, 201), answer.text
        return answer.json()


def stock_of(client, tenant, identifier: str) -> dict:
    answer = client.get(f"/v1/stores/{tenant.store}/stock/{identifier}", headers=tenant.auth)
    assert answer.status_code == 200, answer.text
    return answer.json()


def wait_batch(get, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while (batch := get())["status"] in ("received", "processing"):
        assert time.monotonic() < deadline, batch
        time.sleep(0.05)
    return batch


def test_a_jetti_client_changes_only_host_and_token(server, client, tenant):
    upload_and_wait(client, tenant, SKU_STOCK)  # the retailer's products, known by SKU
    jetti = JettiClient(server.url, tenant.token)

    provider = jetti.create_provider("Acme Supplies")
    feed = jetti.create_feed(provider["id"], "Acme stock")
    assert feed["type"] == "webhook" and feed["automaticallyConnect"] is True and feed["storeId"] == tenant.store

    item = jetti.upsert(feed["id"], {"externalId": "1234", "vendorSku": "ABC12345", "inventoryQuantity": 10})
    assert item["externalId"] == "1234" and item["inventoryQuantity"] == 10 and item["connected"] is True
    assert stock_of(client, tenant, "ABC12345")["on_hand"] == 10
    again = jetti.upsert(feed["id"], {"externalId": "1234", "vendorSku": "ABC12345", "inventoryQuantity": 7, "price": 8.5})
    assert again["id"] == item["id"]  # an upsert by externalId
    level = stock_of(client, tenant, "ABC12345")
    assert (level["on_hand"], level["price"]) == (7, "8.50")

    accepted = jetti.upsert_batch(feed["id"], [
        {"externalId": "2000", "vendorSku": "xyz98765", "inventoryQuantity": 5},  # case differs: exact matching leaves it unmapped
        {"externalId": "2001", "vendorSku": "XYZ98765", "inventoryQuantity": 4, "barcode": "9780141383743"},
        {"externalId": 2002, "vendorSku": "UNKNOWN1", "inventoryQuantity": 1, "title": "ignored"},
    ])
    assert accepted.status_code == 202, accepted.text
    batch = wait_batch(lambda: jetti.http.get(accepted.headers["Location"]).json())
    assert batch["status"] == "done" and batch["counts"] == {"items": 3, "applied": 1, "unmapped": 2, "held": 0, "refused": 0}
    assert stock_of(client, tenant, "XYZ98765")["on_hand"] == 4

    too_many = jetti.upsert_batch(feed["id"], [{"externalId": str(n), "inventoryQuantity": 1} for n in range(51)])
    assert too_many.status_code == 422 and "at most 50" in too_many.json()["detail"]

    first = jetti.variants(feed["id"], limit=3)
    assert first.status_code == 200 and len(first.json()) == 3 and 'rel="next"' in first.headers["Link"]
    rest = jetti.http.get(first.headers["Link"].split(">")[0].lstrip("<"))
    assert {v["externalId"] for v in first.json() + rest.json()} == {"1234", "2000", "2001", "2002"}
    assert "Link" not in rest.headers

    updated = jetti.update_variant(item["id"], {"inventoryQuantity": 3})
    assert updated["inventoryQuantity"] == 3 and updated["vendorSku"] == "ABC12345"
    assert stock_of(client, tenant, "ABC12345")["on_hand"] == 3


def test_unmapped_items_wait_until_mapped_and_orders_say_so(server, client, tenant, receiver):
    answer = client.post("/v1/webhook-subscriptions", json={"url": receiver.url, "event_types": ["inventory.updated"]}, headers=tenant.auth)
    receiver.secrets.append(answer.json()["secret"])
    feed = client.post(f"/v1/stores/{tenant.store}/feeds", json={"name": "Supplier", "kind": "push"}, headers=tenant.auth).json()
    put = client.put(f"/v1/feeds/{feed['id']}/items/sup-1", json={"vendor_sku": "NEWSKU01", "quantity": 4, "price": "5.00"}, headers=tenant.auth)
    assert put.status_code == 200, put.text
    assert put.json()["status"] == "unmapped" and "NEWSKU01" in put.json()["reason"]

    [waiting] = client.get(f"/v1/feeds/{feed['id']}/unmapped", headers=tenant.auth).json()["items"]
    assert waiting["external_id"] == "sup-1" and waiting["quantity"] == 4

    order = {
        "external_id": "web-1", "channel": {"type": "web", "name": "shop"}, "currency": "GBP", "payment_type": "checkout",
        "lines": [{"identifier": "newsku01", "quantity": 1, "unit_price": "5.00"}],
        "fulfilment": {"type": "pickup", "store_id": tenant.store},
    }
    refused = client.post("/v1/orders", json=order, headers=tenant.auth)
    assert refused.status_code == 409 and "unmapped" in refused.json()["detail"], refused.text
    assert refused.json()["unmapped"][0]["external_id"] == "sup-1"

    bad = client.put(f"/v1/feeds/{feed['id']}/items/sup-1/product", json={"identifier": "9780141383744"}, headers=tenant.auth)
    assert bad.status_code == 422 and "check digit" in bad.text
    mapped = client.put(f"/v1/feeds/{feed['id']}/items/sup-1/product", json={"identifier": "0141383747"}, headers=tenant.auth)
    assert mapped.status_code == 200, mapped.text
    assert mapped.json()["status"] == "applied" and mapped.json()["product"] == "09780141383743"
    assert stock_of(client, tenant, "9780141383743")["on_hand"] == 4  # the held quantity, at once
    assert client.get(f"/v1/feeds/{feed['id']}/unmapped", headers=tenant.auth).json()["items"] == []

    receiver.wait_for(lambda got: any(r.payload and r.payload["type"] == "inventory.updated" for r in got))
    [event] = receiver.accepted_of("inventory.updated")
    assert event["data"]["changes"][0]["identifier"] == "09780141383743" and event["data"]["changes"][0]["on_hand"] == 4

    # a later push of the mapped item applies to its product
    client.put(f"/v1/feeds/{feed['id']}/items/sup-1", json={"vendor_sku": "NEWSKU01", "quantity": 9}, headers=tenant.auth)
    assert stock_of(client, tenant, "9780141383743")["on_hand"] == 9


def test_by_barcode_any_spelling_case_insensitive_skus_and_held_items(server, client, tenant):
    upload_and_wait(client, tenant, SKU_STOCK)
    barcode = client.post(f"/v1/stores/{tenant.store}/feeds", json={"name": "B", "kind": "push", "auto_connect": "by_barcode"}, headers=tenant.auth).json()
    held = client.put(f"/v1/feeds/{barcode['id']}/items/b-1", json={"barcode": "0141383747", "quantity": 2}, headers=tenant.auth).json()
    assert held["status"] == "held" and "price" in held["reason"]  # a product new to the store needs a price
    applied = client.put(f"/v1/feeds/{barcode['id']}/items/b-1", json={"barcode": "0141383747", "quantity": 2, "price": "6.99"}, headers=tenant.auth).json()
    assert applied["status"] == "applied" and applied["product"] == "09780141383743"
    assert stock_of(client, tenant, "978-0-14-138374-3")["on_hand"] == 2

    folded = client.post(f"/v1/stores/{tenant.store}/feeds", json={"name": "S", "kind": "push", "sku_match": "case_insensitive"}, headers=tenant.auth).json()
    item = client.put(f"/v1/feeds/{folded['id']}/items/s-1", json={"vendor_sku": "abc12345", "quantity": 6}, headers=tenant.auth).json()
    assert item["status"] == "applied" and item["product"] == "ABC12345"

    off = client.post(f"/v1/stores/{tenant.store}/feeds", json={"name": "O", "kind": "push", "auto_connect": "off"}, headers=tenant.auth).json()
    assert client.put(f"/v1/feeds/{off['id']}/items/o-1", json={"vendor_sku": "ABC12345", "quantity": 1}, headers=tenant.auth).json()["status"] == "unmapped"

    v1_batch = client.post(f"/v1/feeds/{folded['id']}/batches", json={"items": [{"external_id": "s-2", "vendor_sku": "XYZ98765", "quantity": 8}]}, headers=tenant.auth)
    assert v1_batch.status_code == 202, v1_batch.text
    done = wait_batch(lambda: client.get(v1_batch.headers["Location"], headers=tenant.auth).json())
    assert done["items"][0]["status"] == "applied" and stock_of(client, tenant, "XYZ98765")["on_hand"] == 8


def test_feed_resource_keeps_credentials_sealed_and_refuses_bad_settings(server, client, tenant):
    auth = tenant.auth
    made = client.post(f"/v1/stores/{tenant.store}/feeds", headers=auth, json={
        "name": "POS", "kind": "pull", "source_url": "https://shop:s%40cret@pos.example/stock.xml", "format": "xml",
        "mapping": {"items": "//s:item", "fields": {"barcode": "s:ean", "quantity": "s:qty", "price": "s:price"}, "namespaces": {"s": "urn:stock"}},
        "enabled": False,
    })
    assert made.status_code == 201, made.text
    feed = made.json()
    assert feed["source_url"] == "https://pos.example/stock.xml" and feed["has_credentials"] is True
    assert "cret" not in made.text and feed["fetch_frequency"] == 15 and feed["delta"] is False
    patched = client.patch(f"/v1/feeds/{feed['id']}", json={"fetch_frequency": 60, "delta": True}, headers=auth).json()
    assert patched["fetch_frequency"] == 60 and patched["has_credentials"] is True and "cret" not in str(patched)
    listed = client.get(f"/v1/stores/{tenant.store}/feeds", headers=auth).json()["items"]
    assert [f["id"] for f in listed] == [feed["id"]]

    refused = client.post(f"/v1/stores/{tenant.store}/feeds", headers=auth, json={
        "name": "bad", "kind": "pull", "source_url": "gopher://x/y", "format": "json", "mapping": {"items": "items[", "fields": {"quantity": "q"}},
    })
    assert refused.status_code == 422
    fields = {e["field"] for e in refused.json()["errors"]}
    assert {"source_url", "mapping.items"} <= fields
    push_with_url = client.post(f"/v1/stores/{tenant.store}/feeds", headers=auth, json={"name": "p", "kind": "push", "source_url": "https://x/y"})
    assert push_with_url.status_code == 422
    pushed_to_pull = client.put(f"/v1/feeds/{feed['id']}/items/x", json={"quantity": 1}, headers=auth)
    assert pushed_to_pull.status_code == 409

    other = make_tenant(server.hub, "Other Books")  # another organization reaches none of it
    assert client.get(f"/v1/feeds/{feed['id']}", headers=other.auth).status_code == 404
    assert client.patch(f"/v1/feeds/{feed['id']}", json={"delta": False}, headers=other.auth).status_code == 404
    assert client.post(f"/v1/stores/{tenant.store}/feeds", json={"name": "x", "kind": "push"}, headers=other.auth).status_code == 404
    assert client.get("/api/inventory-feed-variants.json", params={"inventoryFeedId": feed["id"]}, headers=other.auth).status_code == 404

    assert client.delete(f"/v1/feeds/{feed['id']}", headers=auth).status_code == 204
    assert client.get(f"/v1/feeds/{feed['id']}", headers=auth).status_code == 404


def test_the_daily_limit_refuses_pushes_and_warns_on_files(server, client, tenant, run):
    run("org", "set-limit", tenant.organization, "--daily-items", "2")
    feed = client.post(f"/v1/stores/{tenant.store}/feeds", json={"name": "Supplier", "kind": "push"}, headers=tenant.auth).json()
    for n in range(2):
        assert client.put(f"/v1/feeds/{feed['id']}/items/i{n}", json={"quantity": 1}, headers=tenant.auth).status_code == 200
    over = client.put(f"/v1/feeds/{feed['id']}/items/i9", json={"quantity": 1}, headers=tenant.auth)
    assert over.status_code == 429, over.text
    assert 0 < int(over.headers["Retry-After"]) <= 86401 and over.json()["resets_at"].endswith("T00:00:00Z")
    batch = client.post(f"/v1/feeds/{feed['id']}/batches", json={"items": [{"external_id": "b", "quantity": 1}]}, headers=tenant.auth)
    assert batch.status_code == 429
    assert client.get(f"/v1/feeds/{feed['id']}/items/i9", headers=tenant.auth).status_code == 404  # nothing of it was kept

    record = upload_and_wait(client, tenant, SKU_STOCK)
    assert record["status"] == "applied" and record["counts"]["changed"] == 2  # applied in full
    assert any("daily limit" in w for w in record["warnings"])
