"""Location groups over HTTP: CRUD, summed availability by page or streamed, increments by cursor."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace

import pytest

from stockhub.services import tenancy
from stockhub.services.paging import encode_token
from support import make_tenant, upload_and_wait

BOOK = "9780141383743"
LAMP = "4006381333931"
CEREAL = "036000291452"


@pytest.fixture
def north(client, tenant, hub):
    """Two stores; a third outside the group."""
    stores = [tenant]
    for name in ("Leeds", "York"):
        made = tenancy.create_store_for(hub, tenant.brand, {"name": name, "country": "GB"})
        stores.append(replace(tenant, store=made.id, upload_key=made.secret))
    upload_and_wait(client, stores[0], f"barcode,price,quantity\n{BOOK},6.99,10\n{LAMP},20.00,1\n".encode())
    upload_and_wait(client, stores[1], f"barcode,price,quantity\n{BOOK},6.99,2\n{CEREAL},2.50,4\n".encode())
    upload_and_wait(client, stores[2], f"barcode,price,quantity\n{BOOK},6.99,100\n".encode())
    made = client.post("/v1/location-groups", json={"name": "North", "store_ids": [stores[0].store, stores[1].store]}, headers=tenant.auth)
    assert made.status_code == 201, made.text
    return made.json(), stores


def test_crud(client, tenant, north, hub):
    group, stores = north
    assert group["id"].startswith("grp_") and sorted(group["store_ids"]) == sorted([stores[0].store, stores[1].store])
    assert client.get(f"/v1/location-groups/{group['id']}", headers=tenant.auth).json() == group
    assert [g["id"] for g in client.get("/v1/location-groups", headers=tenant.auth).json()["items"]] == [group["id"]]
    renamed = client.patch(f"/v1/location-groups/{group['id']}", json={"name": "The North"}, headers=tenant.auth).json()
    assert renamed["name"] == "The North" and renamed["store_ids"] == group["store_ids"]
    bad = client.post("/v1/location-groups", json={"name": "X", "store_ids": ["str_nope"]}, headers=tenant.auth)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "store_ids.0"
    other = make_tenant(hub, "Other")
    assert client.get(f"/v1/location-groups/{group['id']}", headers=other.auth).status_code == 404
    assert client.post("/v1/location-groups", json={"name": "X", "store_ids": [stores[0].store]}, headers=other.auth).status_code == 422
    assert client.delete(f"/v1/location-groups/{group['id']}", headers=tenant.auth).status_code == 204
    assert client.get(f"/v1/location-groups/{group['id']}/availability", headers=tenant.auth).status_code == 404


def test_summed_by_page_and_streamed(client, tenant, north):
    group, stores = north
    url = f"/v1/location-groups/{group['id']}/availability"
    first = client.get(url, params={"limit": 2}, headers=tenant.auth).json()
    assert first["items"] == [  # by identifier
        {"identifier": "00" + CEREAL, "available": 4, "stores": 1},
        {"identifier": "0" + LAMP, "available": 1, "stores": 1},
    ]
    second = client.get(url, params={"limit": 2, "token": first["next_token"]}, headers=tenant.auth).json()
    assert second["next_token"] is None and second["cursor"] == first["cursor"] and isinstance(first["cursor"], int)
    totals = {i["identifier"]: i["available"] for i in first["items"] + second["items"]}
    assert totals == {"0" + BOOK: 12, "0" + LAMP: 1, "00" + CEREAL: 4}
    for forged in ("W10", encode_token([1]), encode_token(["a", "b"]), encode_token(["a", "b", None])):
        refused = client.get(url, params={"token": forged}, headers=tenant.auth)
        assert refused.status_code == 400 and refused.json()["errors"][0]["field"] == "token", refused.text
    as_csv = client.get(url, params={"format": "csv"}, headers=tenant.auth)
    assert as_csv.headers["content-type"].startswith("text/csv") and int(as_csv.headers["stockhub-cursor"]) == first["cursor"]
    assert {r["identifier"]: int(r["available"]) for r in csv.DictReader(io.StringIO(as_csv.text))} == totals
    as_ndjson = client.get(url, headers=tenant.auth | {"Accept": "application/x-ndjson"})
    assert {r["identifier"]: r["available"] for r in map(json.loads, as_ndjson.text.splitlines())} == totals


def test_since_a_cursor_only_what_changed(client, tenant, north, server):
    group, stores = north
    url = f"/v1/location-groups/{group['id']}/availability"
    cursor = client.get(url, headers=tenant.auth).json()["cursor"]
    assert client.get(url, params={"since": cursor}, headers=tenant.auth).json()["items"] == []
    upload_and_wait(client, stores[1], f"barcode,price,quantity\n{BOOK},6.99,5\n{CEREAL},2.50,4\n".encode())  # the book changes
    upload_and_wait(client, stores[2], f"barcode,price,quantity\n{LAMP},20.00,7\n".encode())  # outside the group
    order = {
        "external_id": "o-1", "channel": {"type": "web", "name": "w"}, "currency": "GBP",
        "lines": [{"identifier": LAMP, "quantity": 1, "unit_price": "20.00"}], "fulfilment": {"type": "pickup", "store_id": stores[0].store},
    }
    assert client.post("/v1/orders", json=order, headers=tenant.auth).status_code == 201
    changed = client.get(url, params={"since": cursor}, headers=tenant.auth).json()
    assert changed["items"] == [{"identifier": "0" + LAMP, "available": 0, "stores": 1}, {"identifier": "0" + BOOK, "available": 15, "stores": 2}]
    assert changed["cursor"] > cursor
    assert client.get(url, params={"since": changed["cursor"]}, headers=tenant.auth).json()["items"] == []
    assert client.get(url, params={"since": changed["cursor"], "format": "csv"}, headers=tenant.auth).text == "identifier,available,stores\n"
    future = client.get(url, params={"since": changed["cursor"] + 1000}, headers=tenant.auth)
    assert future.status_code == 422 and future.json()["errors"][0]["field"] == "since"
    # a change of the group's stores: a cursor from before it is refused, a new export works
    grown = client.patch(f"/v1/location-groups/{group['id']}", json={"store_ids": [s.store for s in stores]}, headers=tenant.auth)
    assert grown.status_code == 200 and len(grown.json()["store_ids"]) == 3
    stale = client.get(url, params={"since": changed["cursor"]}, headers=tenant.auth)
    assert stale.status_code == 409 and stale.json()["reason"] == "group_changed"
    fresh = client.get(url, headers=tenant.auth).json()
    assert {i["identifier"]: i["available"] for i in fresh["items"]}["0" + LAMP] == 7
    assert client.get(url, params={"since": fresh["cursor"]}, headers=tenant.auth).json()["items"] == []


def test_an_unknown_group_is_404(client, tenant, north):
    assert client.get("/v1/location-groups/grp_00000000000/availability", headers=tenant.auth).status_code == 404
