"""A large upload being applied does not hold up other writers (issue 16, finding 5).

On SQLite there is one write lock: an upload of a few hundred thousand rows applied in one
transaction held it for the whole apply, and bookings at another store waited for it (and got
`500 database is locked` past the busy timeout). Now the apply takes it in short parts.
"""

from __future__ import annotations

import time

from sqlalchemy import func, select

from stockhub import ids
from stockhub.db.tables import stock_movements
from stockhub.services import tenancy
from stockhub.services.ledger import reconcile
from support import Tenant, gtins, upload, upload_and_wait, wait_for_upload

ROWS = 200_000
BOOK = "9780141383743"


def test_bookings_at_another_store_are_not_held_up_by_a_large_upload(client, server, tenant):
    other = tenancy.create_store_for(server.hub, tenant.brand, {"name": "Other", "country": "GB"})
    other_tenant = Tenant(tenant.organization, tenant.brand, other.id, other.secret, tenant.token)
    assert upload_and_wait(client, other_tenant, f"barcode,price,quantity\n{BOOK},6.99,1000\n".encode())["status"] == "applied"
    big = "barcode,price,quantity\n" + "".join(f"{code},{1 + n % 50}.99,{n % 40}\n" for n, code in enumerate(gtins(ROWS, 1)))

    upload_id = upload(client, tenant.upload_key, big.encode())["upload_id"]
    latencies, statuses, during = [], [], 0

    def book(n: int) -> None:
        body = {
            "external_id": f"during-{n}",
            "channel": {"type": "web", "name": "shop.example"},
            "currency": "GBP",
            "lines": [{"identifier": BOOK, "quantity": 1, "unit_price": "6.99"}],
            "fulfilment": {"type": "pickup", "store_id": other.id},
        }
        started = time.monotonic()
        response = client.post("/v1/orders", json=body, headers=tenant.auth)
        latencies.append(time.monotonic() - started)
        statuses.append(response.status_code)

    n = 0
    while client.get(f"/v1/uploads/{upload_id}", headers=tenant.auth).json()["status"] in ("received", "processing"):
        book(n := n + 1)
        during += 1
        time.sleep(0.02)

    record = wait_for_upload(client, tenant, upload_id)
    assert record["status"] == "applied" and record["counts"]["valid"] == ROWS and record["counts"]["changed"] == ROWS
    assert set(statuses) == {201}, statuses
    assert max(latencies) < 1.5, sorted(latencies)[-5:]
    assert during >= 20, "the upload was applied before enough bookings could overlap it"

    hub = server.hub
    with hub.engine.connect() as conn:
        moved = conn.execute(
            select(func.count()).select_from(stock_movements).where(stock_movements.c.upload_id == ids.decode("upload", upload_id))
        ).scalar_one()
    in_stock = sum(1 for n in range(ROWS) if n % 40)
    assert moved == in_stock  # a movement for every product whose count changed from 0, once
    other_level = client.get(f"/v1/stores/{other.id}/stock/{BOOK}", headers=tenant.auth).json()
    assert (other_level["on_hand"], other_level["committed"]) == (1000, during)
    assert reconcile(hub).is_empty()
