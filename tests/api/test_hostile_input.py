"""Hostile or careless input gets a 4xx problem naming the field, changes nothing, and never
freezes or crashes the server (issue 16: findings 3 and 7). Both databases unless said."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest
from sqlalchemy import event

from stockhub.services.ledger import reconcile
from support import upload_and_wait

BOOK = "9780141383743"
LAMP = "4006381333931"


@pytest.fixture
def stocked(client, tenant):
    upload_and_wait(client, tenant, f"barcode,price,quantity\n{BOOK},6.99,10\n{LAMP},20.00,3\n".encode())
    return tenant


def booking(tenant, external_id="web-1", unit_price="6.99", **extra) -> dict:
    return {
        "external_id": external_id,
        "channel": {"type": "web", "name": "shop.example"},
        "currency": "GBP",
        "lines": [{"identifier": BOOK, "quantity": 1, "unit_price": unit_price}],
        "fulfilment": {"type": "pickup", "store_id": tenant.store},
        **extra,
    }


def refused(response, field: str, status: int = 422) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert field in [e["field"] for e in body["errors"]], body
    return body


def orders_of(client, tenant) -> list:
    return client.get("/v1/orders", headers=tenant.auth).json()["items"]


@pytest.mark.parametrize("price", ["1e999990", "1e999999", "1E5", "NaN", "Infinity", "6,99", "0x10", "1" * 5000])
def test_an_amount_that_is_not_plain_digits_is_refused_at_once(client, stocked, price):
    started = time.monotonic()
    answer = client.post("/v1/orders", json=booking(stocked, unit_price=price), headers=stocked.auth)
    assert time.monotonic() - started < 2, "the server must not spend seconds converting a number"
    assert "no exponent" in refused(answer, "lines.0.unit_price")["errors"][0]["message"] or "too large" in answer.text
    count = client.put(f"/v1/stores/{stocked.store}/stock/{LAMP}", json={"on_hand": 1, "price": price}, headers=stocked.auth)
    refused(count, "price")
    assert orders_of(client, stocked) == []
    assert client.get("/healthz").status_code == 200


@pytest.mark.parametrize("price", ["92233720368547758.08", "100000000000000000", "1000000000000", 1e17, 10**19])
def test_an_amount_past_what_money_is_stored_in_is_refused(client, stocked, price):
    answer = client.post("/v1/orders", json=booking(stocked, unit_price=price), headers=stocked.auth)
    assert "too large" in refused(answer, "lines.0.unit_price")["errors"][0]["message"]
    new_product = client.put(f"/v1/stores/{stocked.store}/stock/{LAMP}", json={"on_hand": 1, "price": price}, headers=stocked.auth)
    refused(new_product, "price")
    assert orders_of(client, stocked) == []
    assert client.get(f"/v1/stores/{stocked.store}/stock/{LAMP}", headers=stocked.auth).json()["price"] == "20.00"


def test_the_largest_amount_allowed_is_stored_and_read_back(client, stocked):
    made = client.post("/v1/orders", json=booking(stocked, unit_price="999999999999.99"), headers=stocked.auth)
    assert made.status_code == 201, made.text
    assert made.json()["total"] == "999999999999.99"


def test_an_events_cursor_past_64_bits_is_refused(client, tenant):
    refused(client.get("/v1/events", params={"after": 2**63}, headers=tenant.auth), "after")
    refused(client.get("/v1/events", params={"after": -1}, headers=tenant.auth), "after")
    assert client.get("/v1/events", params={"after": 2**63 - 1}, headers=tenant.auth).status_code == 200


def test_a_page_token_holding_a_huge_number_is_refused(client, tenant):
    import base64
    import json

    token = base64.urlsafe_b64encode(json.dumps({"after": 2**64}).encode()).decode().rstrip("=")
    refused(client.get("/v1/orders", params={"token": token}, headers=tenant.auth), "token", 400)


def test_an_upload_url_with_a_non_ascii_signature_is_refused(client, tenant):
    url = client.get(f"/upload/{tenant.upload_key}").text
    forged = url.rsplit("signature=", 1)[0] + "signature=%C3%A9t%C3%A9"
    refused(client.put(forged, content=b"barcode,price,quantity\n"), "signature")
    assert client.get(f"/v1/stores/{tenant.store}/uploads", headers=tenant.auth).json()["items"] == []
    assert client.put(url, content=f"barcode,price,quantity\n{BOOK},6.99,1\n".encode()).status_code == 200


def test_a_payment_status_of_null_is_refused_and_changes_nothing(client, stocked):
    order = client.post("/v1/orders", json=booking(stocked), headers=stocked.auth).json()
    refused(client.patch(f"/v1/orders/{order['id']}", json={"payment_status": None}, headers=stocked.auth), "payment_status")
    assert client.get(f"/v1/orders/{order['id']}", headers=stocked.auth).json()["payment_status"] == order["payment_status"]
    paid = client.patch(f"/v1/orders/{order['id']}", json={"payment_status": "paid"}, headers=stocked.auth)
    assert paid.status_code == 200 and paid.json()["payment_status"] == "paid"


def test_text_with_a_nul_character_is_refused_everywhere_and_stored_nowhere(client, stocked):
    nul = "Ada\x00Lovelace"
    refused(client.post("/v1/customers", json={"email": "ada@example.com", "name": nul}, headers=stocked.auth), "name")
    refused(client.post("/v1/customers", json={"external_id": nul}, headers=stocked.auth), "external_id")
    refused(client.get("/v1/customers", params={"q": nul}, headers=stocked.auth), "q")
    refused(client.post("/v1/orders", json=booking(stocked, external_id=nul), headers=stocked.auth), "external_id")
    refused(client.post("/v1/orders", json=booking(stocked, customer={"email": "ada@example.com", "name": nul}), headers=stocked.auth), "customer.name")
    refused(client.get(f"/v1/stores/{stocked.store}/stock/{BOOK}%00", headers=stocked.auth), "identifier")
    refused(client.post("/v1/brands", json={"name": nul}, headers=stocked.auth), "name")
    refused(client.post("/oauth/token", data={"grant_type": "client_credentials", "client_id": nul}), "client_id")
    assert client.get("/v1/customers", headers=stocked.auth).json()["items"] == []
    assert orders_of(client, stocked) == []
    # an escaped backslash before "u0000" is text, not a NUL
    fine = client.post("/v1/customers", json={"email": "ada@example.com", "name": "Ada \\u0000"}, headers=stocked.auth)
    assert fine.status_code == 201 and fine.json()["name"] == "Ada \\u0000"


def test_a_query_parameter_given_twice_is_refused(client, stocked):
    refused(client.get("/v1/orders", params=[("status", "requested"), ("status", "cancelled")], headers=stocked.auth), "status")


def test_adjustments_cannot_take_a_count_past_the_quantity_bound(client, stocked, server):
    path = f"/v1/stores/{stocked.store}/stock/adjustments"
    assert client.put(f"/v1/stores/{stocked.store}/stock/{BOOK}", json={"on_hand": 999_999_000}, headers=stocked.auth).status_code == 200
    many = {"adjustments": [{"identifier": BOOK, "delta": 1_000_000}] * 1000}  # 10⁹ more: past 2³¹ altogether
    refused(client.post(path, json=many, headers=stocked.auth | {"Idempotency-Key": "a1"}), "adjustments")
    one = {"adjustments": [{"identifier": BOOK, "delta": 1_001}]}
    refused(client.post(path, json=one, headers=stocked.auth | {"Idempotency-Key": "a2"}), "adjustments")
    assert client.get(f"/v1/stores/{stocked.store}/stock/{BOOK}", headers=stocked.auth).json()["on_hand"] == 999_999_000
    fits = client.post(path, json={"adjustments": [{"identifier": BOOK, "delta": 1_000}]}, headers=stocked.auth | {"Idempotency-Key": "a3"})
    assert fits.status_code == 200 and fits.json()["adjusted"][0]["on_hand"] == 1_000_000_000
    assert reconcile(server.hub).is_empty()


def test_integers_and_booleans_are_taken_strictly(client, stocked):
    path = f"/v1/stores/{stocked.store}/stock/{BOOK}"
    refused(client.put(path, json={"on_hand": 5, "change_from": False}, headers=stocked.auth), "change_from")
    refused(client.put(path, json={"on_hand": True}, headers=stocked.auth), "on_hand")
    refused(client.post("/v1/orders", json=booking(stocked, is_preconfirmed=1), headers=stocked.auth), "is_preconfirmed")
    assert client.get(path, headers=stocked.auth).json()["on_hand"] == 10


def test_first_bookings_of_one_new_customer_at_once_all_succeed_with_one_customer(client, tenant):
    products = ["9780141383743", "4006381333931", "036000291452", "9781409162988", "5012345678900", "9780306406157"]
    upload_and_wait(client, tenant, ("barcode,price,quantity\n" + "".join(f"{p},1.00,5\n" for p in products)).encode())
    barrier = threading.Barrier(len(products))
    answers = []

    def book(n: int, product: str) -> None:
        body = booking(tenant, external_id=f"race-{n}", customer={"email": "new@example.com", "name": "New"})
        body["lines"][0]["identifier"] = product
        barrier.wait()
        answers.append(client.post("/v1/orders", json=body, headers=tenant.auth))

    threads = [threading.Thread(target=book, args=(n, p)) for n, p in enumerate(products)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(a.status_code for a in answers) == [201] * len(products), [a.text for a in answers if a.status_code != 201]
    assert len({a.json()["customer_id"] for a in answers}) == 1
    assert len(client.get("/v1/customers", params={"q": "new@example.com"}, headers=tenant.auth).json()["items"]) == 1


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_busy_sqlite_database_is_a_503_with_retry_after(client, stocked, server, database_url):
    @event.listens_for(server.hub.engine, "connect")
    def short_busy_timeout(dbapi_connection, _record):  # after the engine's own 30 s: wait 0.2 s here
        dbapi_connection.execute("PRAGMA busy_timeout=200")

    server.hub.engine.dispose()
    holder = sqlite3.connect(database_url.removeprefix("sqlite:///"), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process writing: the one write lock is taken
    try:
        busy = client.put(f"/v1/stores/{stocked.store}/stock/{BOOK}", json={"on_hand": 4}, headers=stocked.auth)
        assert busy.status_code == 503, busy.text
        assert busy.headers["retry-after"] == "1" and busy.headers["content-type"].startswith("application/problem+json")
        assert "busy" in busy.json()["detail"]
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    again = client.put(f"/v1/stores/{stocked.store}/stock/{BOOK}", json={"on_hand": 4}, headers=stocked.auth)
    assert again.status_code == 200 and again.json()["on_hand"] == 4
