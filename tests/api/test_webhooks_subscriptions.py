"""Webhook subscriptions over HTTP: what may be subscribed, changing them, and who may see them."""

from __future__ import annotations

import pytest

from stockhub.settings import Settings
from support import make_tenant

HOOK = "http://127.0.0.1:9/hooks"


@pytest.fixture
def settings(database_url, tmp_path) -> Settings:
    return Settings(data_dir=tmp_path / "data", database_url=database_url, secret_key="test-secret", webhook_allow_loopback=True)


def test_a_subscription_shows_its_secret_once_and_changes_only_what_is_sent(client, tenant):
    made = client.post(
        "/v1/webhook-subscriptions",
        json={"url": HOOK, "event_types": ["upload.processed", "inventory.updated"], "store_ids": [tenant.store], "description": "POS"},
        headers=tenant.auth,
    )
    assert made.status_code == 201, made.text
    subscription = made.json()
    assert subscription["id"].startswith("whk_") and subscription["secret"].startswith("whsec_")
    assert subscription["event_types"] == ["inventory.updated", "upload.processed"] and subscription["store_ids"] == [tenant.store]

    url = f"/v1/webhook-subscriptions/{subscription['id']}"
    shown = client.get(url, headers=tenant.auth).json()
    assert "secret" not in shown and shown["url"] == HOOK
    listed = client.get("/v1/webhook-subscriptions", headers=tenant.auth).json()["items"]
    assert [s["id"] for s in listed] == [subscription["id"]] and "secret" not in listed[0]

    patched = client.patch(url, json={"event_types": ["order.created"], "store_ids": None}, headers=tenant.auth).json()
    assert patched["event_types"] == ["order.created"] and patched["store_ids"] is None and patched["description"] == "POS"

    assert client.post(f"{url}/pause", headers=tenant.auth).json()["status"] == "paused"
    assert client.post(f"{url}/resume", headers=tenant.auth).json()["status"] == "active"
    assert client.delete(url, headers=tenant.auth).status_code == 204
    assert client.get(url, headers=tenant.auth).status_code == 404
    assert client.get("/v1/webhook-subscriptions", headers=tenant.auth).json()["items"] == []


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://127.0.0.1/hooks", "https"),
        ("https://10.1.2.3/hooks", "private"),
        ("https://192.168.0.7/hooks", "private"),
        ("https://169.254.169.254/latest/meta-data", "link-local"),
        ("https://[fe80::1]/hooks", "link-local"),
        ("https://user:pw@127.0.0.1/hooks", "password"),
        ("http://0.0.0.0/hooks", "unicast"),
    ],
)
def test_receivers_that_could_reach_inside_are_refused(client, tenant, url, why):
    refused = client.post("/v1/webhook-subscriptions", json={"url": url, "event_types": ["upload.processed"]}, headers=tenant.auth)
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"][0]["field"] == "url" and why in refused.text
    assert client.get("/v1/webhook-subscriptions", headers=tenant.auth).json()["items"] == []


def test_event_types_and_stores_are_checked(client, hub, tenant):
    unknown = client.post("/v1/webhook-subscriptions", json={"url": HOOK, "event_types": ["stock.changed"]}, headers=tenant.auth)
    assert unknown.status_code == 422 and "stock.changed" in unknown.text
    empty = client.post("/v1/webhook-subscriptions", json={"url": HOOK, "event_types": []}, headers=tenant.auth)
    assert empty.status_code == 422
    other = make_tenant(hub, "Other Books")
    foreign = client.post(
        "/v1/webhook-subscriptions", json={"url": HOOK, "event_types": ["upload.processed"], "store_ids": [other.store]}, headers=tenant.auth
    )
    assert foreign.status_code == 422 and foreign.json()["errors"][0]["field"] == "store_ids.0"


def test_another_organizations_subscriptions_deliveries_and_events_are_not_found(client, hub, tenant):
    mine = client.post("/v1/webhook-subscriptions", json={"url": HOOK, "event_types": ["upload.processed"]}, headers=tenant.auth).json()
    other = make_tenant(hub, "Other Books")
    for method, path in [
        ("GET", f"/v1/webhook-subscriptions/{mine['id']}"),
        ("PATCH", f"/v1/webhook-subscriptions/{mine['id']}"),
        ("POST", f"/v1/webhook-subscriptions/{mine['id']}/pause"),
        ("POST", f"/v1/webhook-subscriptions/{mine['id']}/secret"),
        ("DELETE", f"/v1/webhook-subscriptions/{mine['id']}"),
        ("GET", f"/v1/webhook-subscriptions/{mine['id']}/deliveries"),
        ("POST", "/v1/webhook-deliveries/dlv_nonsense/retry"),
        ("GET", f"/v1/events?store_id={tenant.store}"),
    ]:
        answer = client.request(method, path, headers=other.auth, json={} if method == "PATCH" else None)
        assert answer.status_code == 404, (method, path, answer.text)
    assert client.get("/v1/webhook-subscriptions", headers=other.auth).json()["items"] == []


def test_rotation_grace_is_bounded(client, tenant):
    mine = client.post("/v1/webhook-subscriptions", json={"url": HOOK, "event_types": ["upload.processed"]}, headers=tenant.auth).json()
    bad = client.post(f"/v1/webhook-subscriptions/{mine['id']}/secret", json={"grace_seconds": -1}, headers=tenant.auth)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "grace_seconds"
