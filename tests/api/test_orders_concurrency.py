"""Invariant 1 under load: many clients booking the same few products at once never oversell."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor

import httpx2 as httpx

from stockhub.services import tenancy
from stockhub.services.ledger import reconcile
from support import upload_and_wait

CLIENTS = 50


def ean13(n: int) -> str:
    body = f"50{n:010d}"
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(body))
    return body + str((10 - total % 10) % 10)


def test_fifty_clients_booking_ten_products_sell_exactly_what_there_is(server, client, tenant):
    second = tenancy.create_store_for(server.hub, tenant.brand, {"name": "Second", "country": "GB"})
    stores = {tenant.store: tenant.upload_key, second.id: second.secret}
    skus = {store: [ean13(n + 10 * i) for n in range(5)] for i, store in enumerate(stores)}
    for store, key in stores.items():
        body = "barcode,price,quantity\n" + "".join(f"{sku},1.00,100\n" for sku in skus[store])
        upload_and_wait(client, tenant.__class__(tenant.organization, tenant.brand, store, key, tenant.token), body.encode())
    products = [(store, sku) for store, listed in skus.items() for sku in listed]

    def booking(n: int, lines: list[tuple[str, str]]) -> dict:
        return {
            "external_id": f"load-{n}",
            "channel": {"type": "marketplace", "name": "load"},
            "currency": "GBP",
            "lines": [{"identifier": sku, "quantity": 1, "unit_price": "1.00", "store_id": store} for store, sku in lines],
            "fulfilment": {"type": "ship", "store_id": tenant.store},
        }

    def shopper(worker: int) -> list[dict]:
        rng = random.Random(worker)
        booked = []
        with httpx.Client(base_url=server.url, headers=tenant.auth, timeout=60) as http:
            for n in range(8):  # multi-line, multi-store orders in random line order: lock order must hold
                response = http.post("/v1/orders", json=booking(worker * 1000 + n, rng.sample(products, rng.randint(1, 3))))
                assert response.status_code in (201, 409), response.text
                if response.status_code == 201:
                    booked.append(response.json())
            n = 100
            for product in rng.sample(products, len(products)):  # then take single units until refused
                while True:
                    n += 1
                    response = http.post("/v1/orders", json=booking(worker * 1000 + n, [product]))
                    assert response.status_code in (201, 409), response.text
                    if response.status_code == 409:
                        break
                    booked.append(response.json())
        return booked

    with ThreadPoolExecutor(CLIENTS) as pool:
        orders = [order for booked in pool.map(shopper, range(CLIENTS)) for order in booked]

    sold: dict[tuple[str, str], int] = {}
    for order in orders:
        for line in order["lines"]:
            key = (line["store_id"], line["identifier"][1:])
            sold[key] = sold.get(key, 0) + line["quantity"]
    assert sold == {product: 100 for product in products}  # every unit once, never more
    for store, sku in products:
        level = client.get(f"/v1/stores/{store}/stock/{sku}", headers=tenant.auth).json()
        assert (level["on_hand"], level["committed"], level["available"]) == (100, 100, 0)
    assert reconcile(server.hub).is_empty()
