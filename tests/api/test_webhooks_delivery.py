"""Webhooks end to end: an HTTP upload, a real receiver verifying with `standardwebhooks`,
outages, retries, history and catch-up through the API. Both databases."""

from __future__ import annotations

import random
import threading
import time

import pytest

from receiver import Receiver, Reply, webhook_settings
from stockhub.settings import Settings
from support import upload_and_wait


@pytest.fixture
def settings(database_url, tmp_path) -> Settings:
    return webhook_settings(database_url, tmp_path, webhook_lease_seconds=10)


def subscribe(client, tenant, receiver, types=("inventory.updated", "upload.processed"), **fields) -> dict:
    answer = client.post("/v1/webhook-subscriptions", json={"url": receiver.url, "event_types": list(types), **fields}, headers=tenant.auth)
    assert answer.status_code == 201, answer.text
    receiver.secrets.append(answer.json()["secret"])
    return answer.json()


def deliveries(client, tenant, subscription) -> list[dict]:
    answer = client.get(f"/v1/webhook-subscriptions/{subscription['id']}/deliveries", headers=tenant.auth)
    assert answer.status_code == 200, answer.text
    return answer.json()["items"]


def wait_deliveries(client, tenant, subscription, condition, timeout: float = 30) -> list[dict]:
    deadline = time.monotonic() + timeout
    while not (found := deliveries(client, tenant, subscription)) or not condition(found):  # made once their events are numbered
        assert time.monotonic() < deadline, found
        time.sleep(0.05)
    return found


STOCK = b"barcode,price,quantity\n9780141383743,6.99,3\n036000291452,2.50,0\n9780141383744,5.00,1\n"


def test_a_subscriber_receives_signed_upload_and_inventory_events(client, tenant, receiver):
    subscription = subscribe(client, tenant, receiver)
    assert subscription["secret"].startswith("whsec_") and subscription["status"] == "active"

    upload = upload_and_wait(client, tenant, STOCK)
    got = receiver.wait_for(lambda r: len(r) == 2)
    assert all(r.payload is not None for r in got), "every message verifies with standardwebhooks"
    assert {r.message_id for r in got} == {r.payload["id"] for r in got}

    [inventory] = receiver.accepted_of("inventory.updated")
    [processed] = receiver.accepted_of("upload.processed")
    assert inventory["store_id"] == processed["store_id"] == tenant.store
    assert inventory["organization_id"] == tenant.organization
    assert (inventory["sequence"], processed["sequence"]) == (1, 2)
    assert inventory["id"].startswith("evt_") and inventory["occurred_at"].endswith("Z")
    assert inventory["data"]["upload_id"] == upload["id"]
    changes = {c["identifier"]: c for c in inventory["data"]["changes"]}
    assert changes["09780141383743"] | {"change_id": None} == {
        "change_id": None,
        "identifier": "09780141383743",
        "on_hand_before": None,
        "on_hand": 3,
        "committed": 0,
        "safety_stock": 0,
        "available": 3,
        "status": "in_stock",
        "price": "6.99",
        "currency": "GBP",
        "promotion_amount": None,
    }
    assert changes["00036000291452"]["status"] == "out_of_stock"
    assert len(changes) == 2  # the row with a bad check digit changed nothing
    assert processed["data"]["status"] == "applied"
    assert processed["data"]["counts"]["rejected"] == 1 and processed["data"]["counts"]["changed"] == 2

    history = wait_deliveries(client, tenant, subscription, lambda d: all(x["status"] == "succeeded" for x in d) and len(d) == 2)
    assert {d["event_id"] for d in history} == {inventory["id"], processed["id"]}
    attempt = history[0]["last_attempt"]
    assert attempt["status_code"] == 204 and attempt["latency_ms"] >= 0 and attempt["error"] is None

    # the same events, by catching up without webhooks
    caught_up = client.get("/v1/events", params={"store_id": tenant.store, "after": 0}, headers=tenant.auth).json()
    # (and the store's status: its first upload connected it; not subscribed to, so not delivered)
    assert [e["id"] for e in caught_up["items"]][:2] == [inventory["id"], processed["id"]]
    assert caught_up["items"][2]["type"] == "store.status_changed" and caught_up["items"][2]["data"]["status"] == "connected"
    assert caught_up["items"][0] == inventory and caught_up["next_after"] == 3

    # a second upload reports only what changed, with the level before
    upload_and_wait(client, tenant, b"barcode,price,quantity\n9780141383743,6.99,1\n036000291452,2.50,0\n")
    receiver.wait_for(lambda r: len(r) == 4)
    second = receiver.accepted_of("inventory.updated")[1]
    assert second["sequence"] == 4
    assert [(c["identifier"], c["on_hand_before"], c["on_hand"]) for c in second["data"]["changes"]] == [("09780141383743", 3, 1)]
    later = client.get("/v1/events", params={"store_id": tenant.store, "after": 3}, headers=tenant.auth).json()
    assert [e["sequence"] for e in later["items"]] == [4, 5]


def _gtins(count: int) -> list[str]:
    out = []
    for body in random.Random(7).sample(range(10**10, 10**11), count):
        digits = f"5{body:011d}"
        total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(digits))
        out.append(digits + str((10 - total % 10) % 10))
    return out


def test_a_big_upload_arrives_in_bounded_batches_each_change_identifiable(client, tenant, receiver):
    subscribe(client, tenant, receiver)
    rows = "".join(f"{code},1.00,{i % 5}\n" for i, code in enumerate(_gtins(1201)))
    upload_and_wait(client, tenant, ("barcode,price,quantity\n" + rows).encode())
    receiver.wait_for(lambda r: len(r) == 4)
    batches = sorted(receiver.accepted_of("inventory.updated"), key=lambda p: p["sequence"])
    assert [len(b["data"]["changes"]) for b in batches] == [500, 500, 201]
    assert [(b["data"]["batch"], b["data"]["batches"]) for b in batches] == [(1, 3), (2, 3), (3, 3)]
    change_ids = [c["change_id"] for b in batches for c in b["data"]["changes"]]
    assert len(set(change_ids)) == 1201
    identifiers = [c["identifier"] for b in batches for c in b["data"]["changes"]]
    assert identifiers == sorted(identifiers), "the batches hold the changes in identifier order"
    assert receiver.accepted_of("upload.processed")[0]["sequence"] == 4


def test_everything_arrives_after_the_receiver_was_down_with_the_same_ids(client, tenant, receiver):
    subscription = subscribe(client, tenant, receiver)
    receiver.stop()
    upload_and_wait(client, tenant, STOCK)
    down = wait_deliveries(client, tenant, subscription, lambda d: len(d) == 2 and all(x["attempts"] >= 2 for x in d))
    assert all(d["status"] in ("pending", "delivering") for d in down)
    assert all(d["last_error"] for d in down)

    receiver.start()
    receiver.wait_for(lambda r: len(r) == 2)
    caught_up = client.get("/v1/events", params={"store_id": tenant.store}, headers=tenant.auth).json()["items"]
    caught_up = [e for e in caught_up if e["type"] != "store.status_changed"]  # not subscribed to
    assert sorted(p["id"] for p in receiver.accepted()) == sorted(e["id"] for e in caught_up)
    history = wait_deliveries(client, tenant, subscription, lambda d: all(x["status"] == "succeeded" for x in d))
    detail = client.get(f"/v1/webhook-deliveries/{history[0]['id']}", headers=tenant.auth).json()
    assert [a["status_code"] for a in detail["attempts"]][-1] == 204
    assert all(a["error"] and a["status_code"] is None for a in detail["attempts"][:-1])
    assert client.get(f"/v1/webhook-subscriptions/{subscription['id']}", headers=tenant.auth).json()["failing_since"] is None


def test_a_429_is_retried_no_sooner_than_retry_after(client, tenant, receiver):
    seen: set[str] = set()

    def reply(message_id, _payload):
        if message_id in seen:
            return Reply(200, body=b"thanks")
        seen.add(message_id)
        return Reply(429, {"Retry-After": "1"}, b"slow down")

    receiver.reply = reply
    subscription = subscribe(client, tenant, receiver, types=["upload.processed"])
    upload_and_wait(client, tenant, STOCK)
    got = receiver.wait_for(lambda r: len(r) == 2)
    assert [r.answered for r in got] == [429, 200]
    assert got[1].at - got[0].at >= 0.95
    [delivery] = wait_deliveries(client, tenant, subscription, lambda d: d[0]["status"] == "succeeded")
    detail = client.get(f"/v1/webhook-deliveries/{delivery['id']}", headers=tenant.auth).json()
    assert [(a["status_code"], a["response_excerpt"]) for a in detail["attempts"]] == [(429, "slow down"), (200, "thanks")]


def test_a_410_disables_the_subscription_and_resume_sends_what_was_kept(client, tenant, receiver):
    receiver.reply = lambda _id, _payload: Reply(410)
    subscription = subscribe(client, tenant, receiver, types=["upload.processed"])
    upload_and_wait(client, tenant, STOCK)
    receiver.wait_for(lambda r: len(r) == 1)
    url = f"/v1/webhook-subscriptions/{subscription['id']}"
    deadline = time.monotonic() + 30
    while (state := client.get(url, headers=tenant.auth).json())["status"] != "disabled":
        assert time.monotonic() < deadline, state
        time.sleep(0.05)
    assert "410" in state["disabled_reason"]
    [gone] = deliveries(client, tenant, subscription)
    assert gone["status"] == "failed" and gone["last_status_code"] == 410

    upload_and_wait(client, tenant, STOCK)  # while disabled: kept, not sent
    held = wait_deliveries(client, tenant, subscription, lambda d: len(d) == 2)
    assert held[0]["status"] == "held" and len(receiver.received) == 1

    receiver.reply = lambda _id, _payload: Reply(204)
    resumed = client.post(f"{url}/resume", headers=tenant.auth).json()
    assert resumed["status"] == "active" and resumed["disabled_reason"] is None
    got = receiver.wait_for(lambda r: len(r) == 2)
    assert got[1].payload["id"] == held[0]["event_id"]


def test_a_slow_receiver_times_out_is_retried_and_holds_up_no_one_else(client, tenant, receiver):
    released = threading.Event()
    slow_once: set[str] = set()

    def slow(message_id, _payload):
        if message_id not in slow_once:
            slow_once.add(message_id)
            return Reply(204, hold=released)  # longer than the 1 s timeout
        return Reply(204)

    receiver.reply = slow
    fast = Receiver()
    try:
        slow_subscription = subscribe(client, tenant, receiver, types=["upload.processed"])
        subscribe(client, tenant, fast, types=["upload.processed"])
        upload_and_wait(client, tenant, STOCK)
        fast.wait_for(lambda r: len(r) == 1)
        assert not released.is_set() and len(receiver.received) == 0  # the slow one is still answering
        [delivery] = wait_deliveries(client, tenant, slow_subscription, lambda d: d[0]["attempts"] >= 2)
        released.set()
        receiver.wait_for(lambda r: any(x.answered == 204 for x in r))
        [delivery] = wait_deliveries(client, tenant, slow_subscription, lambda d: d[0]["status"] == "succeeded")
        detail = client.get(f"/v1/webhook-deliveries/{delivery['id']}", headers=tenant.auth).json()
        assert "timed out" in detail["attempts"][0]["error"]
    finally:
        released.set()
        fast.stop()


def test_rotating_the_secret_signs_with_both_during_the_grace_period(client, tenant, receiver):
    subscription = subscribe(client, tenant, receiver, types=["upload.processed"])
    old = receiver.secrets[:]
    rotated = client.post(f"/v1/webhook-subscriptions/{subscription['id']}/secret", json={"grace_seconds": 3600}, headers=tenant.auth)
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()["secret"]
    assert new.startswith("whsec_") and new != old[0] and rotated.json()["previous_secret_expires_at"]

    receiver.secrets = [new]
    upload_and_wait(client, tenant, STOCK)
    [got] = receiver.wait_for(lambda r: len(r) == 1)
    assert got.payload is not None and len(got.signature.split(" ")) == 2
    receiver.secrets = old  # a receiver not yet switched over verifies too
    assert receiver._verify(got.body, {"webhook-id": got.message_id, "webhook-timestamp": got.timestamp, "webhook-signature": got.signature})

    client.post(f"/v1/webhook-subscriptions/{subscription['id']}/secret", json={"grace_seconds": 0}, headers=tenant.auth)
    assert "secret" not in client.get(f"/v1/webhook-subscriptions/{subscription['id']}", headers=tenant.auth).json()


def test_pause_keeps_events_and_a_delivery_can_be_replayed(client, tenant, receiver):
    subscription = subscribe(client, tenant, receiver, types=["upload.processed"])
    url = f"/v1/webhook-subscriptions/{subscription['id']}"
    assert client.post(f"{url}/pause", headers=tenant.auth).json()["status"] == "paused"
    upload_and_wait(client, tenant, STOCK)
    [held] = wait_deliveries(client, tenant, subscription, lambda d: len(d) == 1)
    assert held["status"] == "held" and receiver.received == []

    client.post(f"{url}/resume", headers=tenant.auth)
    [first] = receiver.wait_for(lambda r: len(r) == 1)
    wait_deliveries(client, tenant, subscription, lambda d: d[0]["status"] == "succeeded")
    replay = client.post(f"/v1/webhook-deliveries/{held['id']}/retry", headers=tenant.auth)
    assert replay.status_code == 202, replay.text
    second = receiver.wait_for(lambda r: len(r) == 2)[1]
    assert second.message_id == first.message_id and second.payload == first.payload
    [done] = wait_deliveries(client, tenant, subscription, lambda d: d[0]["status"] == "succeeded")
    detail = client.get(f"/v1/webhook-deliveries/{done['id']}", headers=tenant.auth).json()
    assert len(detail["attempts"]) == 2


def test_the_address_is_checked_again_when_delivering(client, server, tenant, receiver):
    subscription = subscribe(client, tenant, receiver, types=["upload.processed"])
    server.hub.settings.webhook_allow_loopback = False  # as if the host now resolved somewhere forbidden
    upload_and_wait(client, tenant, STOCK)
    [delivery] = wait_deliveries(client, tenant, subscription, lambda d: d[0]["attempts"] >= 1 and d[0]["last_error"])
    assert "loopback" in delivery["last_error"] and receiver.received == []


def test_order_events_reach_a_subscriber_with_the_stock_they_moved(client, tenant, receiver):
    upload_and_wait(client, tenant, STOCK)
    subscribe(client, tenant, receiver, types=("order.created", "order.updated", "inventory.updated"))
    booking = {
        "external_id": "web-77",
        "channel": {"type": "web", "name": "shop"},
        "currency": "GBP",
        "lines": [{"identifier": "9780141383743", "quantity": 2, "unit_price": "6.99"}],
        "fulfilment": {"type": "pickup", "store_id": tenant.store},
    }
    order = client.post("/v1/orders", json=booking, headers=tenant.auth).json()
    client.post(f"/v1/orders/{order['id']}/confirm", headers=tenant.auth)
    got = receiver.wait_for(lambda r: len(r) == 4)
    assert all(r.payload is not None for r in got), "every message verifies with standardwebhooks"

    [created] = receiver.accepted_of("order.created")
    [updated] = receiver.accepted_of("order.updated")
    assert created["data"]["order"]["id"] == order["id"] and created["data"]["order"]["status"] == "requested"
    assert updated["data"]["order"]["status"] == "confirmed" and "confirmed_at" in updated["data"]["changed"]
    held, shipped = sorted(receiver.accepted_of("inventory.updated"), key=lambda e: e["sequence"])
    assert created["sequence"] < held["sequence"] < updated["sequence"] < shipped["sequence"]
    # Order events are on the store's and the organization's catch-up reads, in commit order.
    expected = [
        "inventory.updated", "upload.processed", "store.status_changed",
        "order.created", "inventory.updated", "order.updated", "inventory.updated",
    ]
    for scope in ({"store_id": tenant.store}, {}):
        listed = client.get("/v1/events", params=scope | {"after": 0}, headers=tenant.auth).json()["items"]
        assert [e["type"] for e in listed] == expected
        assert [e["id"] for e in listed if e["type"].startswith("order.")] == [created["id"], updated["id"]]
    [held_change], [shipped_change] = held["data"]["changes"], shipped["data"]["changes"]
    assert (held_change["on_hand"], held_change["committed"], held_change["available"]) == (3, 2, 1)
    assert (shipped_change["on_hand"], shipped_change["committed"], shipped_change["available"]) == (1, 0, 1)
