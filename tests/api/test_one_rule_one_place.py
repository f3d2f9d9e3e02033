"""Rules that lived in several places and disagreed, now each in one: the store's identifier rule
everywhere, every stock change and product change told to subscribers, every event on the
catch-up reads, and every unit of work waking the workers. Both databases, over HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from receiver import webhook_settings
from stockhub.jobs.sweeps import expire_stale_stock
from support import make_tenant, upload, upload_and_wait, wait_for_upload

WRONG_DIGIT = "9780141383744"  # 9780141383743 with another last digit
BOOK = "9780141383743"


@pytest.fixture
def settings(database_url, tmp_path):
    return webhook_settings(database_url, tmp_path)


def _book(client, tenant, identifier: str, quantity: int = 1):
    return client.post(
        "/v1/orders",
        json={
            "external_id": f"web-{identifier}-{quantity}",
            "channel": {"type": "web", "name": "shop"},
            "currency": "GBP",
            "lines": [{"identifier": identifier, "quantity": quantity, "unit_price": "2.00"}],
            "fulfilment": {"type": "pickup", "store_id": tenant.store},
        },
        headers=tenant.auth,
    )


def _events(client, tenant, after: int = 0, **scope) -> list[dict]:
    answer = client.get("/v1/events", params={"after": after, **scope}, headers=tenant.auth)
    assert answer.status_code == 200, answer.text
    return answer.json()["items"]


def test_a_store_with_custom_products_books_counts_and_adjusts_what_its_files_stock(client, tenant):
    patched = client.patch(f"/v1/stores/{tenant.store}", json={"custom_products": True}, headers=tenant.auth)
    assert patched.status_code == 200
    # digits failing the GTIN check digit: a standard store refuses them, a custom one keeps them as a SKU
    applied = upload_and_wait(client, tenant, f"barcode,price,quantity\n{WRONG_DIGIT},2.00,5\n".encode())
    assert applied["status"] == "applied" and applied["counts"]["valid"] == 1

    booked = _book(client, tenant, WRONG_DIGIT, 2)
    assert booked.status_code == 201, booked.text
    counted = client.put(f"/v1/stores/{tenant.store}/stock/{WRONG_DIGIT}", json={"on_hand": 7}, headers=tenant.auth)
    assert counted.status_code == 200, counted.text
    assert (counted.json()["on_hand"], counted.json()["committed"], counted.json()["available"]) == (7, 2, 5)
    adjusted = client.post(
        f"/v1/stores/{tenant.store}/stock/adjustments",
        json={"adjustments": [{"identifier": f" {WRONG_DIGIT} ", "delta": -1}]},
        headers=tenant.auth | {"Idempotency-Key": "k1"},
    )
    assert adjusted.status_code == 200, adjusted.text
    assert client.get(f"/v1/stores/{tenant.store}/stock/{WRONG_DIGIT}", headers=tenant.auth).json()["on_hand"] == 6


def test_a_standard_store_refuses_what_its_files_refuse(client, tenant):
    refused_file = upload_and_wait(client, tenant, f"barcode,price,quantity\n{WRONG_DIGIT},2.00,5\n".encode())
    assert refused_file["counts"]["valid"] == 0 and refused_file["rejections"][0]["reason"].startswith("invalid GTIN check digit")
    refused = _book(client, tenant, WRONG_DIGIT)
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["field"] == "lines.0.identifier" and "check digit" in refused.json()["errors"][0]["message"]
    counted = client.put(f"/v1/stores/{tenant.store}/stock/{WRONG_DIGIT}", json={"on_hand": 7, "price": "1.00"}, headers=tenant.auth)
    assert counted.status_code == 422 and counted.json()["errors"][0]["field"] == "identifier"


def test_stock_that_expires_is_told_to_subscribers(client, tenant, server):
    upload_and_wait(client, tenant, f"barcode,price,quantity\n{BOOK},6.99,3\n036000291452,2.50,4\n".encode())
    last = _events(client, tenant)[-1]["sequence"]
    later = datetime.now(UTC) + timedelta(days=server.hub.settings.expiry_days + 1)
    assert expire_stale_stock(server.hub, now=later) == 2

    [expired] = _events(client, tenant, after=last, store_id=tenant.store)
    assert expired["type"] == "inventory.updated"
    changes = {c["identifier"]: c for c in expired["data"]["changes"]}
    assert set(changes) == {"0" + BOOK, "00036000291452"}
    assert all(c["status"] == "expired" and c["available"] == 0 for c in changes.values())
    assert changes["0" + BOOK]["on_hand_before"] == changes["0" + BOOK]["on_hand"] == 3
    assert expire_stale_stock(server.hub, now=later) == 0  # nothing twice
    assert _events(client, tenant, after=expired["sequence"]) == []


def test_products_files_tell_subscribers_what_changed(client, tenant):
    client.patch(f"/v1/stores/{tenant.store}", json={"custom_products": True}, headers=tenant.auth)
    products = "barcode,brand,title,image_url,description\nMUG01,Acme,Mug,https://img.example/m.jpg,A mug\nTEE01,Acme,Tee,https://img.example/t.jpg,A tee\n"

    def send(text: str) -> None:
        done = wait_for_upload(client, tenant, upload(client, tenant.upload_key, text.encode(), kind="products")["upload_id"])
        assert done["status"] == "applied", done

    send(products)
    [first] = [e for e in _events(client, tenant) if e["type"] == "product.updated"]
    assert first["store_id"] == tenant.store
    assert sorted(p["identifier"] for p in first["data"]["products"]) == ["MUG01", "TEE01"]

    send(products)  # the same file again: nothing changed, nothing told
    send(products.replace("A tee", "A cotton tee"))
    updates = [e for e in _events(client, tenant, after=first["sequence"]) if e["type"] == "product.updated"]
    assert [[(p["identifier"], p["description"]) for p in e["data"]["products"]] for e in updates] == [[("TEE01", "A cotton tee")]]


@pytest.mark.parametrize("write", ["count", "adjustment"])
def test_direct_stock_writes_are_delivered_without_waiting_for_a_poll(client, tenant, server, receiver, write):
    upload_and_wait(client, tenant, f"barcode,price,quantity\n{BOOK},6.99,3\n".encode())
    subscription = client.post(
        "/v1/webhook-subscriptions", json={"url": receiver.url, "event_types": ["inventory.updated"]}, headers=tenant.auth
    ).json()
    receiver.secrets.append(subscription["secret"])
    server.hub.settings.worker_poll_seconds = 600  # from now on, only a wake-up gets the worker going
    server.hub.ring()  # let it start its long sleep now
    if write == "count":
        answer = client.put(f"/v1/stores/{tenant.store}/stock/{BOOK}", json={"on_hand": 9}, headers=tenant.auth)
    else:
        answer = client.post(
            f"/v1/stores/{tenant.store}/stock/adjustments",
            json={"adjustments": [{"identifier": BOOK, "delta": 2}]},
            headers=tenant.auth | {"Idempotency-Key": "wake"},
        )
    assert answer.status_code == 200, answer.text
    [got] = receiver.wait_for(lambda r: len(r) == 1, timeout=15)
    assert got.payload["data"]["changes"][0]["on_hand"] in (9, 5)


def test_every_event_is_on_the_organization_catch_up_read_in_order(client, hub, tenant):
    other = make_tenant(hub, "Other Books")  # another organization's events are never listed
    upload_and_wait(client, tenant, f"barcode,price,quantity\n{BOOK},6.99,3\n".encode())
    upload_and_wait(client, other, f"barcode,price,quantity\n{BOOK},6.99,3\n".encode())
    assert _book(client, tenant, BOOK).status_code == 201
    listed = _events(client, tenant)
    assert [e["type"] for e in listed] == [
        "inventory.updated", "upload.processed", "store.status_changed", "order.created", "inventory.updated"
    ]
    assert {e["organization_id"] for e in listed} == {tenant.organization}
    sequences = [e["sequence"] for e in listed]
    assert sequences == sorted(sequences) and len(set(sequences)) == 5
    paged = _events(client, tenant, after=sequences[1])
    assert [e["id"] for e in paged] == [e["id"] for e in listed[2:]]
