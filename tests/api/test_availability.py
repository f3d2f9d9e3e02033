"""Availability over HTTP: many keys at once, pickup and delivery options, booking an offer."""

from __future__ import annotations

import base64
import json
from dataclasses import replace

import pytest

from stockhub.services import tenancy
from support import make_tenant, upload_and_wait

BOOK = "9780141383743"  # ISBN-13; ISBN-10 0141383747 spells the same product
BOOK_ISBN10 = "0141383747"
LAMP = "4006381333931"
CEREAL = "036000291452"  # UPC-A


@pytest.fixture
def estate(client, tenant, hub):
    """Two stores in London (King's Cross, and Camden 2.5 km north), one in Edinburgh."""
    stores = {"kings_cross": tenant}
    tenancy.update_store(hub, _org(tenant), tenant.store, tenancy.StoreChanges(latitude=51.5308, longitude=-0.1238))
    for name, lat, lon in (("camden", 51.5517, -0.1588), ("edinburgh", 55.9533, -3.1883)):
        made = tenancy.create_store_for(hub, tenant.brand, {"name": name, "country": "GB", "latitude": lat, "longitude": lon})
        stores[name] = replace(tenant, store=made.id, upload_key=made.secret)
    upload_and_wait(client, stores["kings_cross"], f"barcode,price,quantity\n{BOOK},6.99,10\n{LAMP},20.00,1\n".encode())
    upload_and_wait(client, stores["camden"], f"barcode,price,quantity\n{BOOK},6.99,2\n{LAMP},20.00,5\n{CEREAL},2.50,4\n".encode())
    upload_and_wait(client, stores["edinburgh"], f"barcode,price,quantity\n{CEREAL},2.50,50\n".encode())
    return stores


def _org(tenant) -> int:
    from stockhub import ids

    return ids.decode("organization", tenant.organization)


def test_keys_answer_in_order_with_unknowns_in_place(client, estate):
    kx, camden = estate["kings_cross"], estate["camden"]
    keys = [
        {"identifier": BOOK_ISBN10, "store_id": kx.store},
        {"identifier": LAMP, "store_id": camden.store},
        {"identifier": CEREAL, "store_id": kx.store},
        {"identifier": BOOK, "store_id": "str_doesnotexist"},
        {"identifier": "not a barcode!", "store_id": kx.store},
    ]
    got = client.post("/v1/availability", json={"keys": keys}, headers=kx.auth)
    assert got.status_code == 200, got.text
    items = got.json()["items"]
    assert [(i["identifier"], i["store_id"]) for i in items] == [(k["identifier"], k["store_id"]) for k in keys]
    assert items[0] | {} == items[0] and items[0]["available"] == 10 and items[0]["on_hand"] == 10 and items[0]["price"] == "6.99"
    assert items[0]["status"] == "in_stock" and items[0]["updated_at"].endswith("Z")
    assert items[1]["available"] == 5
    assert items[2] == {"identifier": CEREAL, "store_id": kx.store, "known": False, "reason": "not stocked at this store", "available": 0, "status": "unknown"}
    assert items[3]["known"] is False and items[3]["reason"] == "unknown store"
    assert items[4]["known"] is False and items[4]["reason"] == "invalid identifier"


def test_identifiers_times_stores(client, estate):
    stores = [estate[n].store for n in ("kings_cross", "camden", "edinburgh")]
    got = client.post("/v1/availability", json={"identifiers": [BOOK, CEREAL], "store_ids": stores}, headers=estate["camden"].auth).json()
    assert [i["available"] for i in got["items"]] == [10, 0, 2, 4, 0, 50]


def test_another_organizations_store_answers_unknown(client, estate, hub):
    other = make_tenant(hub, "Other Books")
    got = client.post("/v1/availability", json={"keys": [{"identifier": BOOK, "store_id": estate["camden"].store}]}, headers=other.auth)
    assert got.status_code == 200 and got.json()["items"][0]["reason"] == "unknown store"


def test_more_than_2000_keys_is_422_naming_the_limit(client, estate):
    kx = estate["kings_cross"]
    keys = [{"identifier": BOOK, "store_id": kx.store}] * 2001
    got = client.post("/v1/availability", json={"keys": keys}, headers=kx.auth)
    assert got.status_code == 422 and got.json()["errors"][0]["field"] == "keys" and "2000" in got.json()["errors"][0]["message"]
    crossed = client.post("/v1/availability", json={"identifiers": [BOOK] * 100, "store_ids": [kx.store] * 21}, headers=kx.auth)
    assert crossed.status_code == 422 and crossed.json()["errors"][0]["field"] == "identifiers" and "2100" in crossed.text
    neither = client.post("/v1/availability", json={}, headers=kx.auth)
    assert neither.status_code == 422
    long = client.post("/v1/availability", json={"identifiers": ["9" * 5000], "store_ids": [kx.store]}, headers=kx.auth)
    assert long.status_code == 422 and long.json()["errors"][0]["field"] == "identifiers.0"


BAG = [{"identifier": BOOK, "quantity": 2}, {"identifier": LAMP, "quantity": 1}]
SHOPPER = {"latitude": 51.5314, "longitude": -0.1260}  # beside King's Cross


def test_pickup_options_nearest_first_with_whole_bag_and_token(client, estate):
    kx, camden = estate["kings_cross"], estate["camden"]
    got = client.post("/v1/pickup-options", json={"location": SHOPPER, "bag": BAG, "radius_km": 10}, headers=kx.auth)
    assert got.status_code == 200, got.text
    options = got.json()["options"]
    assert [o["store"]["id"] for o in options] == [kx.store, camden.store]
    assert options[0]["distance_km"] < 0.3 and 2.0 < options[1]["distance_km"] < 4.0
    assert all(o["can_fulfil"] and o["offer_token"] for o in options)
    # a bag of 3 lamps: only Camden can hand it over; include_unavailable lists King's Cross too
    bag = [{"identifier": LAMP, "quantity": 3}]
    only = client.post("/v1/pickup-options", json={"location": SHOPPER, "bag": bag, "radius_km": 10}, headers=kx.auth).json()["options"]
    assert [o["store"]["id"] for o in only] == [camden.store]
    every = client.post("/v1/pickup-options", json={"location": SHOPPER, "bag": bag, "radius_km": 1000, "include_unavailable": True}, headers=kx.auth).json()
    assert [(o["store"]["id"], o["can_fulfil"], o["offer_token"] is not None) for o in every["options"]] == [
        (kx.store, False, False),
        (camden.store, True, True),
        (estate["edinburgh"].store, False, False),
    ]
    assert every["options"][0]["lines"] == [{"identifier": LAMP, "quantity": 3, "available": 1, "can_fulfil": False}]


@pytest.mark.parametrize(
    "body, field",
    [
        ({"location": SHOPPER, "bag": []}, "bag"),
        ({"location": SHOPPER, "bag": [{"identifier": BOOK, "quantity": 0}]}, "bag.0.quantity"),
        ({"location": SHOPPER, "bag": [{"identifier": BOOK, "quantity": -2}]}, "bag.0.quantity"),
        ({"location": {"latitude": 91, "longitude": 0}, "bag": BAG}, "location.latitude"),
        ({"location": {"latitude": 0, "longitude": -181}, "bag": BAG}, "location.longitude"),
        ({"location": SHOPPER, "bag": BAG, "radius_km": 0}, "radius_km"),
        ({"location": SHOPPER, "bag": [{"identifier": "??", "quantity": 1}]}, "bag.0.identifier"),
    ],
)
def test_bad_pickup_requests_are_422_naming_the_field(client, estate, body, field):
    got = client.post("/v1/pickup-options", json=body, headers=estate["camden"].auth)
    assert got.status_code == 422, got.text
    assert field in [e["field"] for e in got.json()["errors"]]


def booking(tenant, token, lines=None, external_id="web-2001") -> dict:
    return {
        "external_id": external_id,
        "channel": {"type": "web", "name": "acme.example"},
        "currency": "GBP",
        "lines": lines or [{"identifier": BOOK_ISBN10, "quantity": 2, "unit_price": "6.99"}, {"identifier": LAMP, "quantity": 1, "unit_price": "20.00"}],
        "offer_token": token,
    }


def _pickup_token(client, tenant, bag=BAG) -> str:
    return client.post("/v1/pickup-options", json={"location": SHOPPER, "bag": bag, "radius_km": 1}, headers=tenant.auth).json()["options"][0]["offer_token"]


def level(client, tenant, store, identifier) -> tuple[int, int, int]:
    got = client.get(f"/v1/stores/{store}/stock/{identifier}", headers=tenant.auth).json()
    return got["on_hand"], got["committed"], got["available"]


def test_booking_with_an_offer_token_books_the_offered_store(client, estate):
    kx = estate["kings_cross"]
    token = _pickup_token(client, kx)
    made = client.post("/v1/orders", json=booking(kx, token), headers=kx.auth)
    assert made.status_code == 201, made.text
    order = made.json()
    assert order["fulfilment"] == {"type": "pickup", "store_id": kx.store}
    assert {line["store_id"] for line in order["lines"]} == {kx.store}
    assert level(client, kx, kx.store, BOOK) == (10, 2, 8)
    again = client.post("/v1/orders", json=booking(kx, token), headers=kx.auth)
    assert again.status_code == 200 and again.json()["id"] == order["id"]  # idempotent
    assert level(client, kx, kx.store, BOOK) == (10, 2, 8)


def test_an_offer_whose_stock_has_gone_is_409_with_the_shortfall(client, estate):
    kx = estate["kings_cross"]
    token = _pickup_token(client, kx)
    upload_and_wait(client, kx, f"barcode,price,quantity\n{BOOK},6.99,1\n{LAMP},20.00,1\n".encode())
    refused = client.post("/v1/orders", json=booking(kx, token), headers=kx.auth)
    assert refused.status_code == 409, refused.text
    assert refused.json()["shortfalls"] == [{"identifier": BOOK_ISBN10, "store_id": kx.store, "requested": 2, "available": 1}]
    assert level(client, kx, kx.store, LAMP) == (1, 0, 1)  # nothing was booked


def test_bad_offer_tokens_are_refused_naming_why(client, estate, hub, server):
    kx = estate["kings_cross"]
    token = _pickup_token(client, kx)
    body, _, signature = token.partition(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    payload["l"] = {i: [q + 5, s] for i, (q, s) in payload["l"].items()}
    forged = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode() + "." + signature

    def attempt(token, tenant=kx, lines=None):
        got = client.post("/v1/orders", json=booking(tenant, token, lines), headers=tenant.auth)
        return got.status_code, got.json().get("reason"), [e["field"] for e in got.json().get("errors", [])]

    assert attempt(forged) == (422, "tampered", ["offer_token"])
    assert attempt("garbage") == (422, "tampered", ["offer_token"])
    assert attempt(token, lines=[{"identifier": BOOK, "quantity": 1, "unit_price": "6.99"}]) == (422, "bag_mismatch", ["offer_token"])
    other = make_tenant(hub, "Other Books")
    assert attempt(token, tenant=other) == (403, "foreign", ["offer_token"])
    server.hub.settings.offer_ttl_seconds = -1
    expired = _pickup_token(client, kx)
    assert attempt(expired) == (422, "expired", ["offer_token"])
    assert level(client, kx, kx.store, BOOK) == (10, 0, 10)


def test_delivery_options_single_store_nearest_else_fewest_shipments(client, estate):
    kx, camden, edinburgh = estate["kings_cross"], estate["camden"], estate["edinburgh"]
    method = {"name": "Standard", "price": "3.95", "currency": "GBP", "min_days": 1, "max_days": 3, "countries": ["gb"]}
    made = client.post("/v1/shipping-methods", json=method, headers=kx.auth)
    assert made.status_code == 201, made.text
    for wrong, field in (({"countries": ["XX"]}, "countries"), ({"price": "1e30"}, "price"), ({"price": "1.999"}, "price"), ({"min_days": 4}, "body")):
        refused = client.post("/v1/shipping-methods", json=method | wrong, headers=kx.auth)
        assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == field, refused.text
    leith = {"country": "GB", "postal_code": "EH6 6QU", "latitude": 55.9756, "longitude": -3.1707}
    # both London stores can serve 1 book and 1 lamp: the one nearer to Leith ships it
    one = client.post("/v1/delivery-options", json={"destination": leith, "bag": [{"identifier": BOOK, "quantity": 1}, {"identifier": LAMP, "quantity": 1}]}, headers=kx.auth)
    assert one.status_code == 200, one.text
    option = one.json()["options"][0]
    assert option["method"]["name"] == "Standard" and option["price"] == "3.95"
    assert [s["store_id"] for s in option["shipments"]] == [camden.store]  # Camden is a little further north
    # 3 books + 4 cereals + 1 lamp: no single store; Camden has lamps and cereal, King's Cross books
    split = client.post(
        "/v1/delivery-options",
        json={"destination": leith, "bag": [{"identifier": BOOK, "quantity": 3}, {"identifier": CEREAL, "quantity": 4}, {"identifier": LAMP, "quantity": 1}]},
        headers=kx.auth,
    ).json()["options"][0]
    assert len(split["shipments"]) == 2 and split["price"] == "7.90"
    by_store = {s["store_id"]: [line["identifier"] for line in s["lines"]] for s in split["shipments"]}
    # greedy from the nearest (Edinburgh: 1 line): Camden serves 2 lines whole, then King's Cross the books
    assert by_store == {camden.store: [CEREAL, LAMP], kx.store: [BOOK]}
    booked = client.post(
        "/v1/orders",
        json=booking(kx, split["offer_token"], lines=[{"identifier": BOOK, "quantity": 3, "unit_price": "6.99"}, {"identifier": CEREAL, "quantity": 4, "unit_price": "2.50"}, {"identifier": LAMP, "quantity": 1, "unit_price": "20.00"}]),
        headers=kx.auth,
    )
    assert booked.status_code == 201, booked.text
    assert booked.json()["fulfilment"]["type"] == "ship"
    nowhere = client.post("/v1/delivery-options", json={"destination": {"country": "FR"}, "bag": BAG}, headers=kx.auth).json()
    assert nowhere["options"] == [] and "country" in nowhere["reason"]
    bad = client.post("/v1/delivery-options", json={"destination": {"country": "GB", "latitude": 95, "longitude": 0}, "bag": BAG}, headers=kx.auth)
    assert bad.status_code == 422 and "destination.latitude" in [e["field"] for e in bad.json()["errors"]]


def test_the_openapi_describes_the_new_routes(hub):
    from stockhub.api.app import create_app

    paths = create_app(hub).openapi()["paths"]
    for path, method in (
        ("/v1/availability", "post"),
        ("/v1/pickup-options", "post"),
        ("/v1/delivery-options", "post"),
        ("/v1/location-groups", "post"),
        ("/v1/location-groups/{group_id}", "patch"),
        ("/v1/location-groups/{group_id}/availability", "get"),
        ("/v1/shipping-methods", "post"),
        ("/v1/stores/{store_id}/safety-stock", "put"),
        ("/v1/stores/{store_id}/stock/{identifier}/safety-stock", "put"),
    ):
        assert method in paths[path], path
    assert {p["name"] for p in paths["/v1/location-groups/{group_id}/availability"]["get"]["parameters"]} >= {"since", "format", "limit", "token"}
    assert "offer_token" in create_app(hub).openapi()["components"]["schemas"]["Booking"]["properties"]
