"""Safety stock: a store default and per-product overrides (API, CLI, the feed's column), in the
one availability rule, each change a ledger-free inventory.updated."""

from __future__ import annotations

from stockhub.services.ledger import reconcile
from support import upload_and_wait

BOOK = "9780141383743"
LAMP = "4006381333931"


def level(client, tenant, identifier) -> dict:
    return client.get(f"/v1/stores/{tenant.store}/stock/{identifier}", headers=tenant.auth).json()


def inventory_changes(client, tenant, after: int) -> list[dict]:
    got = client.get("/v1/events", params={"after": after}, headers=tenant.auth).json()["items"]
    return [change for event in got if event["type"] == "inventory.updated" for change in event["data"]["changes"]]


def last_sequence(client, tenant) -> int:
    return client.get("/v1/events", params={"after": 0, "limit": 100}, headers=tenant.auth).json()["next_after"]


def test_store_default_and_product_override(client, tenant, server):
    upload_and_wait(client, tenant, f"barcode,price,quantity\n{BOOK},6.99,10\n{LAMP},20.00,3\n".encode())
    before = last_sequence(client, tenant)
    made = client.put(f"/v1/stores/{tenant.store}/safety-stock", json={"safety_stock": 2}, headers=tenant.auth)
    assert made.status_code == 200, made.text
    assert made.json()["safety_stock"] == 2 and made.json()["products_changed"] == 2
    assert (level(client, tenant, BOOK)["available"], level(client, tenant, LAMP)["available"]) == (8, 1)
    assert level(client, tenant, BOOK)["safety_stock"] == 2 and level(client, tenant, BOOK)["on_hand"] == 10
    changes = inventory_changes(client, tenant, before)
    assert sorted((c["identifier"], c["safety_stock"], c["available"]) for c in changes) == [("0" + LAMP, 2, 1), ("0" + BOOK, 2, 8)]

    own = client.put(f"/v1/stores/{tenant.store}/stock/{LAMP}/safety-stock", json={"safety_stock": 5}, headers=tenant.auth)
    assert own.status_code == 200 and own.json()["available"] == 0 and own.json()["status"] == "out_of_stock"
    client.put(f"/v1/stores/{tenant.store}/safety-stock", json={"safety_stock": 1}, headers=tenant.auth)
    assert (level(client, tenant, BOOK)["available"], level(client, tenant, LAMP)["safety_stock"]) == (9, 5)  # the override holds
    back = client.put(f"/v1/stores/{tenant.store}/stock/{LAMP}/safety-stock", json={"safety_stock": None}, headers=tenant.auth)
    assert back.json()["safety_stock"] == 1 and back.json()["available"] == 2
    # a booking cannot take what safety stock keeps back
    order = {
        "external_id": "s-1", "channel": {"type": "web", "name": "w"}, "currency": "GBP",
        "lines": [{"identifier": LAMP, "quantity": 3, "unit_price": "20.00"}], "fulfilment": {"type": "pickup", "store_id": tenant.store},
    }
    refused = client.post("/v1/orders", json=order, headers=tenant.auth)
    assert refused.status_code == 409 and refused.json()["shortfalls"][0]["available"] == 2
    # a product new to the store takes the store's default
    upload_and_wait(client, tenant, f"barcode,price,quantity\n{BOOK},6.99,10\n{LAMP},20.00,3\n036000291452,2.50,4\n".encode())
    assert level(client, tenant, "036000291452")["safety_stock"] == 1
    assert reconcile(server.hub).is_empty()  # no ledger movement for any of it


def test_bad_safety_stock_is_422_and_changes_nothing(client, tenant):
    upload_and_wait(client, tenant, f"barcode,price,quantity\n{BOOK},6.99,10\n".encode())
    for body in ({"safety_stock": -1}, {"safety_stock": "lots"}, {}):
        got = client.put(f"/v1/stores/{tenant.store}/safety-stock", json=body, headers=tenant.auth)
        assert got.status_code == 422 and got.json()["errors"][0]["field"] == "safety_stock"
    assert client.put(f"/v1/stores/{tenant.store}/stock/{LAMP}/safety-stock", json={"safety_stock": 1}, headers=tenant.auth).status_code == 404
    assert level(client, tenant, BOOK)["available"] == 10


def test_the_feed_column_sets_a_products_own_and_an_empty_cell_keeps_it(client, tenant):
    done = upload_and_wait(client, tenant, f"barcode,price,quantity,safety_stock\n{BOOK},6.99,10,3\n{LAMP},20.00,3,\n".encode())
    assert done["status"] == "applied", done
    assert (level(client, tenant, BOOK)["available"], level(client, tenant, LAMP)["available"]) == (7, 3)
    client.put(f"/v1/stores/{tenant.store}/safety-stock", json={"safety_stock": 1}, headers=tenant.auth)
    assert (level(client, tenant, BOOK)["safety_stock"], level(client, tenant, LAMP)["safety_stock"]) == (3, 1)
    upload_and_wait(client, tenant, f"barcode,price,quantity\n{BOOK},6.99,10\n".encode())  # no column: kept
    assert level(client, tenant, BOOK)["safety_stock"] == 3
    bad = upload_and_wait(client, tenant, f"barcode,price,quantity,safety_stock\n{BOOK},6.99,10,-2\n{LAMP},20.00,3,1\n".encode())
    rejections = client.get(f"/v1/uploads/{bad['id']}/rejections.csv", headers=tenant.auth)
    assert "safety_stock" in rejections.text and level(client, tenant, LAMP)["safety_stock"] == 1


def test_cli_sets_the_store_default_and_a_products_own(client, tenant, run):
    upload_and_wait(client, tenant, f"barcode,price,quantity\n{BOOK},6.99,10\n".encode())
    assert "1 products changed" in run("store", "safety-stock", tenant.store, "4").stdout
    assert level(client, tenant, BOOK)["available"] == 6
    assert "available 8" in run("store", "safety-stock", tenant.store, "2", "--product", BOOK).stdout
    assert "available 6" in run("store", "safety-stock", tenant.store, "default", "--product", BOOK).stdout
    bad = run("store", "safety-stock", tenant.store, "--", "-3", ok=False)
    assert bad.returncode == 1 and "safety_stock" in bad.stderr
    moved = run("store", "update", tenant.store, "--latitude", "51.5", "--longitude", "-0.12", "--json")
    assert '"latitude": 51.5' in moved.stdout
    assert run("store", "update", tenant.store, "--latitude", "95", ok=False).returncode == 1
