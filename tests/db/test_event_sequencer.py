"""Events are numbered after commit by one sequencer (PostgreSQL, where writers run at once):
writers of one store do not wait for each other, and a reader catching up by `after` never
skips an event that commits late, nor sees one twice."""

from __future__ import annotations

import random
import threading
import time

import pytest

from stockhub import representations as show
from stockhub.services import events


@pytest.fixture
def pg(pg_store):
    return pg_store.hub, pg_store.organization, pg_store.store_id, pg_store.store


def _emit(conn, organization: int, store: int, n: int) -> None:
    events.emit(conn, "upload.processed", organization, store, {"n": n})


def _read(hub, organization: int, store_id: str, after: int) -> list[dict]:
    return [show.event(*record) for record in events.list_events(hub, organization, store_id, after, 100)]


def test_a_late_commit_is_not_skipped_and_writers_do_not_wait(pg):
    hub, organization, store_id, store = pg
    late = hub.engine.connect()
    late.begin()
    _emit(late, organization, store, 1)  # written first, committed last
    with hub.engine.connect() as early, early.begin():
        early.exec_driver_sql("SET LOCAL lock_timeout = '200ms'")  # fails if it queues behind `late`
        _emit(early, organization, store, 2)
    [first] = _read(hub, organization, store_id, 0)
    assert first["data"] == {"n": 2}
    late.commit()
    late.close()
    [second] = _read(hub, organization, store_id, first["sequence"])
    assert second["data"] == {"n": 1} and second["sequence"] > first["sequence"]


def test_a_reader_catching_up_during_concurrent_writes_sees_each_event_once(pg):
    hub, organization, store_id, store = pg
    writers, per_writer = 6, 25
    done = threading.Event()

    def write(w: int) -> None:
        rng = random.Random(w)
        for i in range(per_writer):
            with hub.engine.begin() as conn:
                _emit(conn, organization, store, w * 1000 + i)
                time.sleep(rng.random() * 0.004)  # commit at random moments, out of id order

    seen: list[dict] = []

    def read() -> None:
        after = 0
        while True:
            finished = done.is_set()
            page = _read(hub, organization, store_id, after)
            seen.extend(page)
            if page:
                after = page[-1]["sequence"]
            elif finished:
                return

    reader = threading.Thread(target=read)
    reader.start()
    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    done.set()
    reader.join(60)
    numbers = [event["data"]["n"] for event in seen]
    assert sorted(numbers) == sorted(w * 1000 + i for w in range(writers) for i in range(per_writer))
    sequences = [event["sequence"] for event in seen]
    assert sequences == sorted(set(sequences))


def test_events_alone_wake_the_workers_for_events_and_queued_work_for_every_queue(hub, tenant):
    """The bell says what a commit left: a booking's events alone spare the workers a look at
    every queue; anything queued with them (here a delivery to retry) asks for the full look."""
    from stockhub import ids
    from stockhub.db.engine import new_work, transaction

    organization, store = ids.decode("organization", tenant.organization), ids.decode("store", tenant.store)
    hub.work_arrived.clear()
    hub.queued_work.clear()
    with transaction(hub.engine) as conn:
        _emit(conn, organization, store, 1)
    assert hub.work_arrived.is_set() and not hub.queued_work.is_set()

    hub.work_arrived.clear()
    with transaction(hub.engine) as conn:
        _emit(conn, organization, store, 2)
        new_work(conn)
        _emit(conn, organization, store, 3)  # events after queued work do not narrow it
    assert hub.work_arrived.is_set() and hub.queued_work.is_set()

    hub.work_arrived.clear()
    hub.queued_work.clear()
    with transaction(hub.engine) as conn:
        conn.exec_driver_sql("SELECT 1")
    assert not hub.work_arrived.is_set() and not hub.queued_work.is_set()
