"""Several workers share the delivery queue: every event arrives, no attempt is sent twice at once."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from receiver import Receiver
from stockhub import ids
from stockhub.db.engine import transaction
from stockhub.db.tables import webhook_attempts
from stockhub.jobs.worker import Worker
from stockhub.services import events, webhooks
from stockhub.services.context import Hub
from stockhub.settings import Settings

EVENTS = 1000


@pytest.fixture
def settings(database_url, tmp_path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data", database_url=database_url, secret_key="test-secret",
        worker_poll_seconds=0.1, webhook_allow_loopback=True, webhook_lease_seconds=60,
    )


def test_two_workers_deliver_a_thousand_events_each_once(hub, settings, tenant):
    receiver = Receiver()
    organization, store = ids.decode("organization", tenant.organization), ids.decode("store", tenant.store)
    fields = webhooks.SubscriptionFields(url=receiver.url, event_types=["order.created"])
    receiver.secrets.append(webhooks.create_subscription(hub, organization, fields)[1])
    for start in range(0, EVENTS, 100):
        with transaction(hub.engine) as conn:
            for n in range(start, start + 100):
                events.emit(conn, "order.created", organization, store, {"order_id": f"ord_{n}"})

    hubs = [Hub.from_settings(settings) for _ in range(2)]
    workers = [Worker(h, name=f"worker-{i}") for i, h in enumerate(hubs)]
    threads = [w.start() for w in workers]
    try:
        receiver.wait_for(lambda r: len({x.message_id for x in r}) == EVENTS, timeout=120)
    finally:
        for worker, thread in zip(workers, threads):
            worker.stop()
            thread.join(30)
        receiver.stop()
        for h in hubs:
            h.engine.dispose()

    assert receiver.most_at_once == 1
    assert len(receiver.received) == EVENTS  # each once: no lease lapsed, no claim shared
    assert all(r.payload is not None for r in receiver.received)
    sequences = sorted(r.payload["sequence"] for r in receiver.received)
    assert sequences == list(range(1, EVENTS + 1))
    with hub.engine.connect() as conn:
        by_worker = dict(conn.execute(select(webhook_attempts.c.worker_id, func.count()).group_by(webhook_attempts.c.worker_id)).all())
    assert set(by_worker) == {"worker-0", "worker-1"} and sum(by_worker.values()) == EVENTS
