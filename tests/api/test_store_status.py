"""Store status (issue 12): pending → connected / invalid (with warning codes) → disconnected
after 3 days without an upload; on every store in the API, filterable; each change is a
store.status_changed event. On SQLite and PostgreSQL."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta

from stockhub.domain.store_status import LastUpload, StoreStatus, stability, store_status
from stockhub.services import store_status as statuses
from support import upload_and_wait

BOOK = "9780141383743"
GOOD = f"barcode,price,quantity\n{BOOK},6.99,3\n".encode()
ALL_OUT = f"barcode,price,quantity\n{BOOK},6.99,0\n".encode()
WRONG = "Qty Count,Description,Code\n3,A book,9780141383743\n5,Cereal,036000291452\n1,Lamp,4006381333931\n".encode()


def store(client, tenant) -> dict:
    return client.get(f"/v1/stores/{tenant.store}", headers=tenant.auth).json()


def status_events(client, tenant) -> list[dict]:
    answer = client.get("/v1/events", params={"store_id": tenant.store, "after": 0}, headers=tenant.auth).json()
    return [e["data"] for e in answer["items"] if e["type"] == "store.status_changed"]


def test_a_store_goes_from_pending_to_connected_invalid_and_disconnected(client, tenant, hub):
    assert store(client, tenant)["status"] == "pending"

    upload_and_wait(client, tenant, GOOD)
    assert (store(client, tenant)["status"], store(client, tenant)["status_warnings"]) == ("connected", [])

    upload_and_wait(client, tenant, WRONG)
    assert (store(client, tenant)["status"], store(client, tenant)["status_warnings"]) == ("invalid", ["invalid_inventory_format"])

    upload_and_wait(client, tenant, ALL_OUT)
    assert store(client, tenant)["status_warnings"] == ["insufficient_in_stock_items"]

    upload_and_wait(client, tenant, GOOD)
    assert statuses.refresh_all(hub, datetime.now(UTC) + timedelta(days=2)) == 0  # still within 3 days
    assert store(client, tenant)["status"] == "connected"
    assert statuses.refresh_all(hub, datetime.now(UTC) + timedelta(days=3, hours=1)) == 1
    assert store(client, tenant)["status"] == "disconnected"

    seen = [(e["previous_status"], e["status"], e["warnings"]) for e in status_events(client, tenant)]
    assert seen == [
        ("pending", "connected", []),
        ("connected", "invalid", ["invalid_inventory_format"]),
        ("invalid", "invalid", ["insufficient_in_stock_items"]),
        ("invalid", "connected", []),
        ("connected", "disconnected", []),
    ]


def test_stores_are_filtered_by_status_and_a_wrong_status_is_a_400(client, tenant):
    second = client.post(f"/v1/brands/{tenant.brand}/stores", json={"name": "Second", "country": "GB"}, headers=tenant.auth)
    assert second.status_code == 201
    upload_and_wait(client, tenant, GOOD)

    def listed(status: str) -> list[str]:
        answer = client.get(f"/v1/brands/{tenant.brand}/stores", params={"status": status}, headers=tenant.auth)
        assert answer.status_code == 200, answer.text
        return [s["id"] for s in answer.json()["items"]]

    assert listed("connected") == [tenant.store]
    assert listed("pending") == [second.json()["id"]]
    assert listed("invalid") == []
    wrong = client.get(f"/v1/brands/{tenant.brand}/stores", params={"status": "happy"}, headers=tenant.auth)
    assert wrong.status_code == 400
    assert wrong.json()["errors"][0]["field"] == "status"


def test_the_rule_itself():
    now = datetime(2026, 11, 30, 12, tzinfo=UTC)
    three = timedelta(days=3)
    assert store_status(None, now, three).status == StoreStatus.PENDING
    fresh = LastUpload(now - timedelta(days=2, hours=23), "applied", 5)
    assert store_status(fresh, now, three).status == StoreStatus.CONNECTED
    assert store_status(LastUpload(now - timedelta(days=3, seconds=1), "applied", 5), now, three).status == StoreStatus.DISCONNECTED
    assert store_status(LastUpload(now, "failed", None), now, three).warnings == ("invalid_inventory_format",)
    assert store_status(LastUpload(now, "applied", 4), now, three, min_in_stock_items=5).warnings == ("insufficient_in_stock_items",)
    # connected on a day when an upload was applied within the 3 days before it
    days = stability({date(2026, 11, 2)}, date(2026, 11, 30), 3)
    assert len(days) == 30 and days.count(True) == 4 and days[0] is False and days[1] is True


def test_a_store_whose_first_upload_failed_outside_an_ingest_is_invalid_after_the_sweep(client, tenant, hub, server):
    from stockhub import ids
    from stockhub.db.engine import transaction
    from stockhub.db.tables import uploads

    store = ids.decode("store", tenant.store)
    deadline = time.monotonic() + 10
    while server.worker._next_sweep == 0.0:  # the running worker's first sweep is over: the next is the test's own
        assert time.monotonic() < deadline, "the worker never swept"
        time.sleep(0.01)
    with transaction(hub.engine) as conn:  # as jobs/queue.fail_upload leaves it once attempts are spent
        conn.execute(
            uploads.insert().values(
                organization_id=ids.decode("organization", tenant.organization), store_id=store, kind="stock", source="http",
                path="/nowhere", size_bytes=1, sha256="0" * 64, status="failed", received_at=datetime.now(UTC), error="processing failed",
            )
        )
    assert store_of(client, tenant)["status"] == "pending"
    assert statuses.refresh_all(hub) == 1
    assert (store_of(client, tenant)["status"], store_of(client, tenant)["status_warnings"]) == ("invalid", ["invalid_inventory_format"])


def store_of(client, tenant) -> dict:
    return client.get(f"/v1/stores/{tenant.store}", headers=tenant.auth).json()
