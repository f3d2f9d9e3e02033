"""Orders over HTTP: booking commits stock all-or-nothing, each step moves it, retries are safe."""

from __future__ import annotations

import pytest

from stockhub.services.ledger import reconcile
from support import make_tenant, upload_and_wait

BOOK = "9780141383743"
LAMP = "4006381333931"
CEREAL = "036000291452"


@pytest.fixture
def stocked(client, tenant):
    """The tenant's store holds 10 books, 3 lamps and 5 cereals."""
    upload_and_wait(client, tenant, f"barcode,price,quantity\n{BOOK},6.99,10\n{LAMP},20.00,3\n{CEREAL},2.50,5\n".encode())
    return tenant


def booking(tenant, external_id="web-1001", lines=None, **extra) -> dict:
    return {
        "external_id": external_id,
        "channel": {"type": "web", "name": "acme.example"},
        "currency": "GBP",
        "customer": {"email": "Ada@Example.com", "name": "Ada"},
        "lines": lines or [{"identifier": BOOK, "quantity": 2, "unit_price": "6.99"}],
        "fulfilment": {"type": "pickup", "store_id": tenant.store},
        "payment_type": "checkout",
        **extra,
    }


def level(client, tenant, identifier) -> tuple[int, int, int]:
    got = client.get(f"/v1/stores/{tenant.store}/stock/{identifier}", headers=tenant.auth).json()
    return got["on_hand"], got["committed"], got["available"]


def test_an_order_commits_stock_then_confirms_dispatches_and_delivers(client, stocked, server):
    made = client.post("/v1/orders", json=booking(stocked), headers=stocked.auth)
    assert made.status_code == 201, made.text
    order = made.json()
    assert order["id"].startswith("ord_") and order["status"] == "requested" and order["confirmed_at"] is None
    assert order["total"] == "13.98" and order["lines"][0]["identifier"] == "0" + BOOK
    assert level(client, stocked, BOOK) == (10, 2, 8)

    confirmed = client.post(f"/v1/orders/{order['id']}/confirm", headers=stocked.auth).json()
    assert confirmed["status"] == "confirmed" and confirmed["confirmed_at"]
    assert level(client, stocked, BOOK) == (8, 0, 8)  # Sellar's 10/2/8 → 8/0/8

    dispatched = client.post(f"/v1/orders/{order['id']}/dispatch", headers=stocked.auth).json()
    delivered = client.post(f"/v1/orders/{order['id']}/deliver", headers=stocked.auth).json()
    assert dispatched["dispatched_at"] and delivered["status"] == "delivered" and delivered["delivered_at"]
    assert level(client, stocked, BOOK) == (8, 0, 8)
    assert reconcile(server.hub).is_empty()


def test_a_booking_that_cannot_be_served_whole_is_refused_whole(client, stocked):
    lines = [
        {"identifier": BOOK, "quantity": 4, "unit_price": "6.99"},
        {"identifier": LAMP, "quantity": 5, "unit_price": "20"},
        {"identifier": "9781409162988", "quantity": 1, "unit_price": "9"},  # never stocked here
    ]
    refused = client.post("/v1/orders", json=booking(stocked, lines=lines), headers=stocked.auth)
    assert refused.status_code == 409
    short = {s["identifier"]: s for s in refused.json()["shortfalls"]}
    assert short[LAMP] == {"identifier": LAMP, "store_id": stocked.store, "requested": 5, "available": 3}
    assert short["9781409162988"]["available"] == 0 and BOOK not in short
    assert level(client, stocked, BOOK) == (10, 0, 10)  # nothing committed for the line that fitted
    assert client.get("/v1/orders", headers=stocked.auth).json()["items"] == []


def test_lines_for_one_product_are_summed_before_the_check(client, stocked):
    lines = [{"identifier": LAMP, "quantity": 2, "unit_price": "20"}, {"identifier": "0" + LAMP, "quantity": 2, "unit_price": "20"}]
    refused = client.post("/v1/orders", json=booking(stocked, lines=lines), headers=stocked.auth)
    assert refused.status_code == 409 and refused.json()["shortfalls"][0]["requested"] == 4
    lines[1]["quantity"] = 1
    assert client.post("/v1/orders", json=booking(stocked, lines=lines), headers=stocked.auth).status_code == 201
    assert level(client, stocked, LAMP) == (3, 3, 0)


def test_a_retried_booking_never_books_twice(client, stocked):
    first = client.post("/v1/orders", json=booking(stocked), headers=stocked.auth)
    again = client.post("/v1/orders", json=booking(stocked), headers=stocked.auth)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    assert level(client, stocked, BOOK) == (10, 2, 8)
    different = client.post("/v1/orders", json=booking(stocked, lines=[{"identifier": BOOK, "quantity": 3, "unit_price": "6.99"}]), headers=stocked.auth)
    assert different.status_code == 409 and "different request" in different.json()["detail"]


def test_cancelling_releases_or_restocks(client, stocked):
    requested = client.post("/v1/orders", json=booking(stocked, "a"), headers=stocked.auth).json()
    cancelled = client.post(f"/v1/orders/{requested['id']}/cancel", json={"reason": "customer changed mind"}, headers=stocked.auth).json()
    assert cancelled["status"] == "cancelled" and cancelled["cancellation_reason"] == "customer changed mind"
    assert level(client, stocked, BOOK) == (10, 0, 10)

    kept = client.post("/v1/orders", json=booking(stocked, "b"), headers=stocked.auth).json()
    client.post(f"/v1/orders/{kept['id']}/confirm", headers=stocked.auth)
    client.post(f"/v1/orders/{kept['id']}/cancel", json={"restock": False}, headers=stocked.auth)
    assert level(client, stocked, BOOK) == (8, 0, 8)  # damaged in transit: not back on the shelf

    back = client.post("/v1/orders", json=booking(stocked, "c"), headers=stocked.auth).json()
    client.post(f"/v1/orders/{back['id']}/confirm", headers=stocked.auth)
    client.post(f"/v1/orders/{back['id']}/dispatch", headers=stocked.auth)
    restocked = client.post(f"/v1/orders/{back['id']}/cancel", json={"restock": True}, headers=stocked.auth).json()
    assert restocked["restocked"] is True
    assert level(client, stocked, BOOK) == (8, 0, 8)


def test_an_illegal_step_names_the_allowed_ones(client, stocked):
    order = client.post("/v1/orders", json=booking(stocked), headers=stocked.auth).json()
    early = client.post(f"/v1/orders/{order['id']}/deliver", headers=stocked.auth)
    assert early.status_code == 409 and early.json()["allowed"] == ["confirm", "cancel"]
    client.post(f"/v1/orders/{order['id']}/cancel", headers=stocked.auth)
    final = client.post(f"/v1/orders/{order['id']}/confirm", headers=stocked.auth)
    assert final.status_code == 409 and final.json()["allowed"] == []


def test_a_preconfirmed_order_takes_stock_at_once(client, stocked):
    order = client.post("/v1/orders", json=booking(stocked, is_preconfirmed=True), headers=stocked.auth).json()
    assert order["status"] == "confirmed" and order["confirmed_at"]
    assert level(client, stocked, BOOK) == (8, 0, 8)


def test_patch_changes_only_what_may_change(client, stocked):
    order = client.post("/v1/orders", json=booking(stocked, payment_type="manual"), headers=stocked.auth).json()
    path = f"/v1/orders/{order['id']}"
    read_only = client.patch(path, json={"status": "delivered", "currency": "EUR"}, headers=stocked.auth)
    assert read_only.status_code == 422 and {e["field"] for e in read_only.json()["errors"]} == {"status", "currency"}
    paid = client.patch(path, json={"paid_at": "2026-11-20T10:00:00Z", "payment_status": "paid", "dispatch_planned_at": "2026-11-25T09:00:00Z"}, headers=stocked.auth)
    assert paid.status_code == 200 and paid.json()["paid_at"] == "2026-11-20T10:00:00Z" and paid.json()["payment_status"] == "paid"
    client.post(f"{path}/confirm", headers=stocked.auth)
    assert client.patch(path, json={"custom_invoice_number": "INV-1"}, headers=stocked.auth).json()["custom_invoice_number"] == "INV-1"
    locked = client.patch(path, json={"custom_invoice_number": "INV-2"}, headers=stocked.auth)
    assert locked.status_code == 422 and locked.json()["errors"][0]["field"] == "custom_invoice_number"

    card = client.post("/v1/orders", json=booking(stocked, "card-1"), headers=stocked.auth).json()
    not_manual = client.patch(f"/v1/orders/{card['id']}", json={"paid_at": "2026-11-20T10:00:00Z"}, headers=stocked.auth)
    assert not_manual.status_code == 422 and "manual" in not_manual.text


def test_bad_bookings_are_explained_field_by_field(client, stocked, server):
    bad = booking(stocked, lines=[{"identifier": "9780141383744", "quantity": 1, "unit_price": "6.999"}], currency="ZZZ")
    response = client.post("/v1/orders", json=bad, headers=stocked.auth)
    assert response.status_code == 422
    assert {e["field"] for e in response.json()["errors"]} == {"currency"}
    bad["currency"] = "GBP"
    response = client.post("/v1/orders", json=bad, headers=stocked.auth)
    assert response.status_code == 422
    assert {e["field"] for e in response.json()["errors"]} == {"lines.0.identifier", "lines.0.unit_price"}
    other = make_tenant(server.hub, "Other")
    foreign = client.post("/v1/orders", json=booking(stocked) | {"fulfilment": {"type": "ship", "store_id": other.store}}, headers=stocked.auth)
    assert foreign.status_code == 422 and foreign.json()["errors"][0]["field"] == "fulfilment.store_id"


def test_customers_are_found_or_made_and_keep_their_history(client, stocked):
    made = client.post("/v1/customers", json={"email": "ada@example.com", "name": "Ada"}, headers=stocked.auth)
    found = client.post("/v1/customers", json={"email": "ADA@example.com"}, headers=stocked.auth)
    assert (made.status_code, found.status_code) == (201, 200) and made.json()["id"] == found.json()["id"]
    customer = made.json()["id"]
    first = client.post("/v1/orders", json=booking(stocked, "h1", customer={"id": customer}), headers=stocked.auth).json()
    second = client.post("/v1/orders", json=booking(stocked, "h2"), headers=stocked.auth).json()  # by the same email
    assert first["customer_id"] == second["customer_id"] == customer
    history = client.get(f"/v1/customers/{customer}/orders", params={"limit": 1}, headers=stocked.auth).json()
    assert [o["id"] for o in history["items"]] == [second["id"]] and history["next_token"]
    assert [c["id"] for c in client.get("/v1/customers", params={"q": "ada"}, headers=stocked.auth).json()["items"]] == [customer]
    market = client.post("/v1/customers", json={"external_id": "sellar-retailer-42", "name": "Shop"}, headers=stocked.auth)
    assert market.status_code == 201 and market.json()["id"] != customer


def test_another_organizations_orders_do_not_exist_for_you(client, stocked, server):
    order = client.post("/v1/orders", json=booking(stocked), headers=stocked.auth).json()
    other = make_tenant(server.hub, "Other")
    for method, path in [("get", f"/v1/orders/{order['id']}"), ("post", f"/v1/orders/{order['id']}/confirm"), ("patch", f"/v1/orders/{order['id']}")]:
        kwargs = {"json": {}} if method == "patch" else {}
        assert getattr(client, method)(path, headers=other.auth, **kwargs).status_code == 404, path
    assert client.get("/v1/orders", headers=other.auth).json()["items"] == []
