"""A partner's webhooks for its connected store, through the same routes as an organization's:
signed deliveries of that store's events only, its own subscriptions only, and `store.connected`
on connection (as a webhook and through `GET /v1/events`). Both databases."""

from __future__ import annotations

import time

import pytest

from oauth_support import bearer, make_partner, make_user, partner_tokens
from stockhub.services import tenancy
from receiver import webhook_settings
from stockhub.settings import Settings
from support import make_tenant, upload, upload_and_wait, wait_for_upload

ALL = (
    "organization.read organization.service_integration stock.read stock.write orders.read orders.write "
    "webhooks.manage uploads.read"
)
STOCK = b"barcode,price,quantity\n9780141383743,6.99,3\n036000291452,2.50,0\n"
TYPES = ["inventory.updated", "upload.processed", "store.connected"]


@pytest.fixture
def settings(database_url, tmp_path) -> Settings:
    return webhook_settings(database_url, tmp_path)


@pytest.fixture
def email(hub, tenant) -> str:
    return make_user(hub, tenant)


def connection_path(tenant, store: str | None = None) -> str:
    return f"/organization/v1/organization/brands/{tenant.brand}/stores/{store or tenant.store}/connection"


def connected(client, hub, tenant, email, name="Till Co POS", partner_store_id="pos-1", scope=ALL) -> str:
    """A partner connected to the tenant's store as `partner_store_id`; its access token."""
    access = partner_tokens(client, make_partner(hub, name=name), email, scope)["access_token"]
    answer = client.post(connection_path(tenant), json={"storeId": partner_store_id}, headers=bearer(access))
    assert answer.status_code == 204, answer.text
    return access


def subscribe(client, headers, url, receiver=None, **fields) -> dict:
    answer = client.post("/v1/webhook-subscriptions", json={"url": url, "event_types": TYPES} | fields, headers=headers)
    assert answer.status_code == 201, answer.text
    if receiver is not None:
        receiver.secrets.append(answer.json()["secret"])
    return answer.json()


def deliveries(client, headers, subscription) -> list[dict]:
    answer = client.get(f"/v1/webhook-subscriptions/{subscription['id']}/deliveries", headers=headers)
    assert answer.status_code == 200, answer.text
    return answer.json()["items"]


def recorded_deliveries(client, headers, subscription, timeout: float = 30) -> list[dict]:
    """The deliveries once none is still being delivered: a receiver has a message a moment
    before the worker records its answer."""
    deadline = time.monotonic() + timeout
    found = deliveries(client, headers, subscription)
    while any(d["status"] == "delivering" for d in found) and time.monotonic() < deadline:
        time.sleep(0.05)
        found = deliveries(client, headers, subscription)
    return found


def test_a_partner_receives_its_connected_stores_events_signed_and_no_other_stores(client, hub, tenant, email, receiver):
    access = connected(client, hub, tenant, email)
    pos = bearer(access, "pos-1")
    subscription = subscribe(client, pos, receiver.url, receiver)
    assert subscription["store_ids"] == [tenant.store]  # always that store, though none was named

    second = tenancy.create_store_for(hub, tenant.brand, {"name": "Second shop", "country": "GB"})
    wait_for_upload(client, tenant, upload(client, second.secret, STOCK)["upload_id"])  # same organization, not connected
    ours = upload_and_wait(client, tenant, STOCK)

    got = receiver.wait_for(lambda r: len(r) == 2)
    assert all(r.payload is not None for r in got), "every message verifies with standardwebhooks"
    assert {p["type"] for p in receiver.accepted()} == {"inventory.updated", "upload.processed"}
    assert {p["store_id"] for p in receiver.accepted()} == {tenant.store}
    assert receiver.accepted_of("upload.processed")[0]["data"]["upload_id"] == ours["id"]
    # the second store's events made no delivery for the partner
    history = recorded_deliveries(client, pos, subscription)
    assert sorted(d["event_type"] for d in history) == ["inventory.updated", "upload.processed"]

    # its delivery history and a replay by hand
    delivery = history[0]
    shown = client.get(f"/v1/webhook-deliveries/{delivery['id']}", headers=pos)
    assert shown.status_code == 200 and shown.json()["attempts"], shown.text
    assert client.post(f"/v1/webhook-deliveries/{delivery['id']}/retry", headers=pos).status_code == 202
    got = receiver.wait_for(lambda r: len(r) == 3)
    assert got[-1].message_id == delivery["event_id"] and got[-1].payload is not None


def test_a_partner_manages_only_its_own_subscriptions(client, hub, tenant, email, receiver):
    access = connected(client, hub, tenant, email)
    rival = connected(client, hub, tenant, email, name="Other POS", partner_store_id="till-7")
    pos = bearer(access, "pos-1")
    organizations = subscribe(client, tenant.auth, receiver.url, store_ids=[tenant.store])
    rivals = subscribe(client, bearer(rival, "till-7"), receiver.url)
    ours = subscribe(client, pos, receiver.url, description="till")

    listed = client.get("/v1/webhook-subscriptions", headers=pos).json()["items"]
    assert [s["id"] for s in listed] == [ours["id"]]
    assert [s["id"] for s in client.get("/v1/webhook-subscriptions", headers=tenant.auth).json()["items"]] == [organizations["id"]]

    for foreign in (organizations, rivals):
        url = f"/v1/webhook-subscriptions/{foreign['id']}"
        for method, path, body in (
            ("GET", url, None),
            ("PATCH", url, {"description": "mine now"}),
            ("POST", f"{url}/pause", None),
            ("POST", f"{url}/resume", None),
            ("POST", f"{url}/secret", None),
            ("GET", f"{url}/deliveries", None),
            ("DELETE", url, None),
        ):
            answer = client.request(method, path, json=body, headers=pos)
            assert answer.status_code == 404, f"{method} {path}: {answer.status_code} {answer.text}"
    assert client.get(f"/v1/webhook-subscriptions/{ours['id']}", headers=tenant.auth).status_code == 404
    assert client.get(f"/v1/webhook-subscriptions/{organizations['id']}", headers=tenant.auth).json()["description"] is None

    url = f"/v1/webhook-subscriptions/{ours['id']}"
    patched = client.patch(url, json={"event_types": ["inventory.updated"], "store_ids": None}, headers=pos).json()
    assert patched["event_types"] == ["inventory.updated"] and patched["store_ids"] == [tenant.store]
    assert client.post(f"{url}/pause", headers=pos).json()["status"] == "paused"
    assert client.post(f"{url}/resume", headers=pos).json()["status"] == "active"
    assert client.post(f"{url}/secret", json={"grace_seconds": 0}, headers=pos).json()["secret"].startswith("whsec_")
    assert client.delete(url, headers=pos).status_code == 204
    assert client.get("/v1/webhook-subscriptions", headers=pos).json()["items"] == []


def test_a_partner_subscribes_for_its_connected_store_only(client, hub, tenant, email):
    access = connected(client, hub, tenant, email)
    pos = bearer(access, "pos-1")
    second = tenancy.create_store_for(hub, tenant.brand, {"name": "Second shop", "country": "GB"})
    other = make_tenant(hub, "Rival Records")
    hook = "http://127.0.0.1:9/hooks"
    for store_ids in ([second.id], [other.store], [tenant.store, second.id]):
        refused = client.post("/v1/webhook-subscriptions", json={"url": hook, "event_types": TYPES, "store_ids": store_ids}, headers=pos)
        assert refused.status_code == 422, refused.text
        assert refused.json()["errors"][0]["field"].startswith("store_ids.")
    assert client.get("/v1/webhook-subscriptions", headers=pos).json()["items"] == []  # nothing was made

    made = subscribe(client, pos, hook, store_ids=[tenant.store])
    refused = client.patch(f"/v1/webhook-subscriptions/{made['id']}", json={"store_ids": [second.id]}, headers=pos)
    assert refused.status_code == 422, refused.text
    assert client.get(f"/v1/webhook-subscriptions/{made['id']}", headers=pos).json()["store_ids"] == [tenant.store]

    # without naming a connected store, or naming one it is not connected to: nothing is found
    for headers in (bearer(access), bearer(access, "pos-unknown")):
        assert client.get("/v1/webhook-subscriptions", headers=headers).status_code == 404
        assert client.post("/v1/webhook-subscriptions", json={"url": hook, "event_types": TYPES}, headers=headers).status_code == 404
    # and a token without webhooks.manage is refused
    narrow = partner_tokens(client, make_partner(hub, name="Stock reader"), email, "stock.read organization.service_integration")
    answer = client.post(connection_path(tenant), json={"storeId": "reader-1"}, headers=bearer(narrow["access_token"]))
    assert answer.status_code == 204, answer.text
    assert client.get("/v1/webhook-subscriptions", headers=bearer(narrow["access_token"], "reader-1")).status_code == 403


def test_after_connecting_a_partner_reads_store_connected_in_its_stores_events(client, hub, tenant, email, receiver):
    organizations = subscribe(client, tenant.auth, receiver.url, receiver, event_types=["store.connected"])
    access = connected(client, hub, tenant, email)
    rival = connected(client, hub, tenant, email, name="Other POS", partner_store_id="till-7")
    pos = bearer(access, "pos-1")

    events = client.get("/v1/events", params={"store_id": tenant.store, "after": 0}, headers=pos)
    assert events.status_code == 200, events.text
    [event] = events.json()["items"]  # not the other partner's connection
    assert event["type"] == "store.connected" and event["store_id"] == tenant.store
    assert event["data"]["store_id"] == tenant.store and event["data"]["partner_store_id"] == "pos-1"
    assert event["data"]["partner_id"].startswith("app_")
    assert client.get("/v1/events", headers=pos).json()["items"] == [event]  # its store's stream by default
    [rivals] = client.get("/v1/events", headers=bearer(rival, "till-7")).json()["items"]
    assert rivals["data"]["partner_store_id"] == "till-7" and rivals["data"]["partner_id"] != event["data"]["partner_id"]

    # the organization sees both connections, in its store's stream and at its receiver
    seen = client.get("/v1/events", params={"store_id": tenant.store}, headers=tenant.auth).json()["items"]
    assert [e["data"]["partner_store_id"] for e in seen] == ["pos-1", "till-7"]
    receiver.wait_for(lambda r: len(r) == 2)
    assert sorted(p["data"]["partner_store_id"] for p in receiver.accepted_of("store.connected")) == ["pos-1", "till-7"]
    assert len(deliveries(client, tenant.auth, organizations)) == 2

    # another store's stream is not the partner's to read
    second = tenancy.create_store_for(hub, tenant.brand, {"name": "Second shop", "country": "GB"})
    assert client.get("/v1/events", params={"store_id": second.id}, headers=pos).status_code == 404
    assert client.get("/v1/events", headers=bearer(access)).status_code == 404


def test_a_reconnected_partner_is_told_and_hears_nothing_while_disconnected(client, hub, tenant, email, receiver):
    access = connected(client, hub, tenant, email)
    rival = connected(client, hub, tenant, email, name="Other POS", partner_store_id="till-7")
    subscription = subscribe(client, bearer(access, "pos-1"), receiver.url, receiver)
    assert client.delete(connection_path(tenant), headers=bearer(access)).status_code == 204
    upload_and_wait(client, tenant, STOCK)  # while disconnected: no delivery is made for the partner
    rival_again = client.delete(connection_path(tenant), headers=bearer(rival))
    assert rival_again.status_code == 204
    assert client.post(connection_path(tenant), json={"storeId": "till-8"}, headers=bearer(rival)).status_code == 204
    assert client.post(connection_path(tenant), json={"storeId": "pos-2"}, headers=bearer(access)).status_code == 204

    [told] = receiver.wait_for(lambda r: len(r) == 1)
    assert told.payload["type"] == "store.connected" and told.payload["data"]["partner_store_id"] == "pos-2"
    history = deliveries(client, bearer(access, "pos-2"), subscription)
    assert [d["event_type"] for d in history] == ["store.connected"]  # not the rival's, nor the upload's
