"""Direct stock writes by an inventory master, and what a feed's count means next to orders."""

from __future__ import annotations

from stockhub.services.ledger import reconcile
from support import upload_and_wait

BOOK = "9780141383743"
GTIN14 = "0" + BOOK


def level(client, tenant, identifier=BOOK) -> dict:
    return client.get(f"/v1/stores/{tenant.store}/stock/{identifier}", headers=tenant.auth).json()


def book(client, tenant, quantity: int, external_id: str = "o-1") -> dict:
    body = {
        "external_id": external_id,
        "channel": {"type": "store", "name": "till"},
        "currency": "GBP",
        "lines": [{"identifier": BOOK, "quantity": quantity, "unit_price": "6.99"}],
        "fulfilment": {"type": "pickup", "store_id": tenant.store},
    }
    response = client.post("/v1/orders", json=body, headers=tenant.auth)
    assert response.status_code == 201, response.text
    return response.json()


def test_a_count_sets_on_hand_and_compare_and_set_refuses_a_stale_one(client, tenant, server):
    path = f"/v1/stores/{tenant.store}/stock/{BOOK}"
    needs_price = client.put(path, json={"on_hand": 5}, headers=tenant.auth)
    assert needs_price.status_code == 422 and needs_price.json()["errors"][0]["field"] == "price"
    made = client.put(path, json={"on_hand": 5, "price": "6.99"}, headers=tenant.auth)
    assert made.status_code == 200 and made.json()["on_hand"] == 5 and made.json()["price"] == "6.99"

    assert client.put(path, json={"on_hand": 7, "change_from": 5}, headers=tenant.auth).json()["on_hand"] == 7
    stale = client.put(path, json={"on_hand": 9, "change_from": 5}, headers=tenant.auth)
    assert stale.status_code == 409 and stale.json()["on_hand"] == 7
    assert level(client, tenant)["on_hand"] == 7
    assert reconcile(server.hub).is_empty()


def test_a_count_below_what_orders_hold_is_refused(client, tenant):
    client.put(f"/v1/stores/{tenant.store}/stock/{BOOK}", json={"on_hand": 5, "price": "6.99"}, headers=tenant.auth)
    book(client, tenant, 4)
    refused = client.put(f"/v1/stores/{tenant.store}/stock/{BOOK}", json={"on_hand": 3}, headers=tenant.auth)
    assert refused.status_code == 409 and refused.json()["committed"] == 4
    assert level(client, tenant)["on_hand"] == 5


def test_adjustments_apply_all_or_none_and_a_retry_is_answered_the_same(client, tenant, server):
    upload_and_wait(client, tenant, f"barcode,price,quantity\n{BOOK},6.99,10\n4006381333931,20,2\n".encode())
    path = f"/v1/stores/{tenant.store}/stock/adjustments"
    body = {"adjustments": [{"identifier": BOOK, "delta": -3}, {"identifier": "4006381333931", "delta": 5}]}
    missing_key = client.post(path, json=body, headers=tenant.auth)
    assert missing_key.status_code == 400
    key = tenant.auth | {"Idempotency-Key": "count-2026-11-23"}
    first = client.post(path, json=body, headers=key)
    again = client.post(path, json=body, headers=key)
    assert first.status_code == again.status_code == 200 and first.json() == again.json()
    assert level(client, tenant)["on_hand"] == 7 and level(client, tenant, "4006381333931")["on_hand"] == 7
    reused = client.post(path, json={"adjustments": [{"identifier": BOOK, "delta": -1}]}, headers=key)
    assert reused.status_code == 409

    too_far = {"adjustments": [{"identifier": BOOK, "delta": 1}, {"identifier": "4006381333931", "delta": -8}]}
    refused = client.post(path, json=too_far, headers=tenant.auth | {"Idempotency-Key": "k2"})
    assert refused.status_code == 409
    assert level(client, tenant)["on_hand"] == 7  # the first delta was not applied either
    unknown = client.post(path, json={"adjustments": [{"identifier": "9781409162988", "delta": 1}]}, headers=tenant.auth | {"Idempotency-Key": "k3"})
    assert unknown.status_code == 422
    assert reconcile(server.hub).is_empty()


def test_a_feed_count_below_what_orders_hold_sells_nothing_more_and_says_so(client, tenant, server):
    upload_and_wait(client, tenant, f"barcode,price,quantity\n{BOOK},6.99,10\n".encode())
    book(client, tenant, 4)
    record = upload_and_wait(client, tenant, f"barcode,price,quantity\n{BOOK},6.99,3\n".encode())
    assert record["status"] == "applied"
    assert any("committed to open orders" in w for w in record["warnings"])
    now = level(client, tenant)
    assert (now["on_hand"], now["committed"], now["available"]) == (4, 4, 0)
    assert reconcile(server.hub).is_empty()


def test_a_store_whose_feed_counts_units_available_to_sell(client, tenant):
    patched = client.patch(f"/v1/stores/{tenant.store}", json={"feed_quantity_means": "available"}, headers=tenant.auth)
    assert patched.json()["feed_quantity_means"] == "available"
    upload_and_wait(client, tenant, f"barcode,price,quantity\n{BOOK},6.99,10\n".encode())
    book(client, tenant, 2)
    upload_and_wait(client, tenant, f"barcode,price,quantity\n{BOOK},6.99,8\n".encode())  # the POS already deducted them
    now = level(client, tenant)
    assert (now["on_hand"], now["committed"], now["available"]) == (10, 2, 8)
