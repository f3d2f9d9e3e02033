"""Ordered delivery: a subscription with `"ordered": true` gets each store's events in sequence order,
a failing event holding back that store's later events (for that subscription only); by default
delivery is at least once and possibly out of order. Both databases."""

from __future__ import annotations

import threading

import pytest

from receiver import Receiver, Reply, webhook_settings
from stockhub import ids
from stockhub.db.engine import transaction
from stockhub.services import events, tenancy
from stockhub.settings import Settings


@pytest.fixture
def settings(database_url, tmp_path) -> Settings:
    return webhook_settings(database_url, tmp_path, webhook_lease_seconds=10)


def subscribe(client, tenant, receiver, **fields) -> dict:
    body = {"url": receiver.url, "event_types": ["order.created"], **fields}
    answer = client.post("/v1/webhook-subscriptions", json=body, headers=tenant.auth)
    assert answer.status_code == 201, answer.text
    receiver.secrets.append(answer.json()["secret"])
    return answer.json()


def emit(hub, organization: str, store: str, count: int) -> None:
    with transaction(hub.engine) as conn:
        for n in range(count):
            events.emit(conn, "order.created", ids.decode("organization", organization), ids.decode("store", store), {"order_id": f"ord_{n}"})
    hub.ring()


def failing_first_event_of(store: str, recovered: threading.Event):
    """Answer 500 to the store's event with sequence 1 (its first) until `recovered`; everything else 204."""

    def reply(_message_id, payload):
        if payload and payload["store_id"] == store and payload["sequence"] == 1 and not recovered.is_set():
            return Reply(500)
        return Reply(204)

    return reply


def sequences(receiver: Receiver, store: str) -> list[int]:
    return [p["sequence"] for p in receiver.accepted() if p["store_id"] == store]


def test_an_ordered_subscription_gets_each_store_in_sequence_after_failures(client, server, tenant):
    other_store = tenancy.create_store_for(server.hub, tenant.brand, {"name": "Second store", "country": "GB"}).id
    recovered = threading.Event()
    ordered, unordered = Receiver(), Receiver()
    ordered.reply = failing_first_event_of(tenant.store, recovered)
    unordered.reply = failing_first_event_of(tenant.store, recovered)
    try:
        subscription = subscribe(client, tenant, ordered, ordered=True)
        assert subscription["ordered"] is True
        assert subscribe(client, tenant, unordered)["ordered"] is False
        emit(server.hub, tenant.organization, tenant.store, 8)
        emit(server.hub, tenant.organization, other_store, 5)

        # the other store's events are not held back by the failing one
        ordered.wait_for(lambda r: len(sequences(ordered, other_store)) == 5)
        unordered.wait_for(lambda r: len(sequences(unordered, tenant.store)) == 7)  # all but the failing one
        ordered.wait_for(lambda r: sum(1 for x in r if x.answered == 500) >= 3)  # the failing one is being retried
        assert sequences(ordered, tenant.store) == []  # ... and holds back its store's later events
        attempted = {x.payload["sequence"] for x in ordered.received if x.payload["store_id"] == tenant.store}
        assert attempted == {1}  # later events of that store were not even sent

        recovered.set()
        ordered.wait_for(lambda r: len(sequences(ordered, tenant.store)) == 8)
        unordered.wait_for(lambda r: len(sequences(unordered, tenant.store)) == 8)
        assert sequences(ordered, tenant.store) == list(range(1, 9))
        assert sequences(ordered, other_store) == list(range(9, 14))  # one numbering for all stores: its events came second
        # the default: at least once, possibly out of order (here the failed one came last)
        got = sequences(unordered, tenant.store)
        assert sorted(got) == list(range(1, 9)) and got[-1] == 1
    finally:
        ordered.stop()
        unordered.stop()


def test_ordered_is_changed_with_patch_and_must_be_a_boolean(client, tenant, receiver):
    subscription = subscribe(client, tenant, receiver)
    url = f"/v1/webhook-subscriptions/{subscription['id']}"
    answer = client.patch(url, json={"ordered": True}, headers=tenant.auth)
    assert answer.status_code == 200 and answer.json()["ordered"] is True
    assert client.get(url, headers=tenant.auth).json()["ordered"] is True
    for wrong in (1, "yes"):
        answer = client.patch(url, json={"ordered": wrong}, headers=tenant.auth)
        assert answer.status_code == 422, answer.text
        assert [error["field"] for error in answer.json()["errors"]] == ["ordered"]
    answer = client.post("/v1/webhook-subscriptions", json={"url": receiver.url, "event_types": ["order.created"], "ordered": "true"}, headers=tenant.auth)
    assert answer.status_code == 422
    assert client.patch(url, json={"ordered": False}, headers=tenant.auth).json()["ordered"] is False
