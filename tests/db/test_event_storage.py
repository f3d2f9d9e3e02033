"""How events are stored for the sequencer, which numbers each one after commit.

Their sequence indexes hold numbered events only (migration 0024): each reader of numbers still
finds them through those indexes, on both engines. SQLite uses a partial index only for a query
whose WHERE implies the index's condition: a bare max(sequence) would scan the table.

On PostgreSQL their pages keep room for that update (fillfactor 70, migration 0025): numbered, an
event mostly stays on its page, where the update is logged as a difference from the old row."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from sqlalchemy import event, insert, text

from stockhub import ids
from stockhub.db import availability
from stockhub.db.engine import is_postgres
from stockhub.db.tables import events as events_table
from stockhub.services import events, tenancy

SEQUENCE_INDEXES = ("uq_events_sequence", "ix_events_store_id_sequence", "ix_events_organization_id_sequence")


def _many_events(hub, numbered: int, unnumbered: int) -> tuple[int, str]:
    org = tenancy.create_organization(hub, "Indexes").id
    brand = tenancy.create_brand_for(hub, org, "Indexes").id
    stores = [tenancy.create_store_for(hub, brand, {"name": f"S{n}", "country": "GB"}).id for n in range(20)]
    organization, now = ids.decode("organization", org), datetime.now(UTC)

    def rows(n: int) -> list[dict]:
        return [{"organization_id": organization, "store_id": ids.decode("store", stores[i % 20]), "type": "upload.processed",
                 "occurred_at": now, "data": "{}"} for i in range(n)]

    with hub.engine.begin() as conn:
        conn.execute(insert(events_table), rows(numbered))
    while events.sequence_events(hub.engine):
        pass
    with hub.engine.begin() as conn:
        conn.execute(insert(events_table), rows(unnumbered))
        conn.execute(text("ANALYZE"))
    return organization, stores[3]


def _plans(engine, call) -> str:
    """The query plans of the SELECTs of numbered events `call` sends, as one text."""
    sent = []
    listener = lambda conn, cursor, statement, parameters, context, many: sent.append((statement, parameters))  # noqa: E731
    event.listen(engine, "before_cursor_execute", listener)
    try:
        call()
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    with engine.connect() as conn:
        explain = "EXPLAIN " if is_postgres(conn) else "EXPLAIN QUERY PLAN "
        selects = [(s, p) for s, p in sent if s.lstrip().upper().startswith(("SELECT", "WITH")) and "sequence IS NULL" not in s]
        return "\n".join(str(row[-1]) for s, p in selects for row in conn.exec_driver_sql(explain + s, p))


def _water(engine) -> None:
    with engine.connect() as conn:
        availability.high_water(conn), availability.oldest_kept(conn)


def test_numbered_events_are_found_through_the_sequence_indexes(hub):
    organization, store = _many_events(hub, numbered=3000, unnumbered=20)
    with hub.engine.connect() as conn:
        assert availability.high_water(conn) == 3000 and availability.oldest_kept(conn) == 1  # the unnumbered are not counted
    water = _plans(hub.engine, lambda: _water(hub.engine))
    store_read = _plans(hub.engine, lambda: events.list_events(hub, organization, store, 2900, 100))
    organization_read = _plans(hub.engine, lambda: events.list_events(hub, organization, None, 2900, 100))

    assert water.count("uq_events_sequence") == 2, water
    assert any(name in store_read for name in SEQUENCE_INDEXES), store_read
    assert any(name in organization_read for name in SEQUENCE_INDEXES), organization_read
    assert "SCAN events\n" not in store_read + "\n" and "Seq Scan on events" not in store_read + organization_read


def test_the_sequencer_numbers_on_from_the_highest_number_through_the_index(hub):
    _many_events(hub, numbered=3000, unnumbered=20)
    with hub.engine.connect() as conn:
        compiled = events._NUMBER_EVENTS.compile(conn)
        postgres = is_postgres(conn)
        params = {name: (100 if name == "limit" else 0) for name in compiled.params}
        args = params if postgres else tuple(params[name] for name in compiled.positiontup)
        plan = "\n".join(str(row[-1]) for row in conn.exec_driver_sql(("EXPLAIN " if postgres else "EXPLAIN QUERY PLAN ") + str(compiled), args))
    assert "uq_events_sequence" in plan and "ix_events_unsequenced" in plan, plan
    assert events.sequence_events(hub.engine) == 20
    with hub.engine.connect() as conn:
        assert availability.high_water(conn) == 3020


def test_numbering_an_event_mostly_keeps_it_on_its_page(pg_store):
    """Written ten at a time, numbered after each commit as the workers do: on full pages (the
    default fillfactor) 105 of these 200 events moved to another page; with the room kept, 44."""
    hub, organization, store = pg_store.hub, pg_store.organization, pg_store.store
    now, moved = datetime.now(UTC), 0
    for _ in range(20):
        with hub.engine.begin() as conn:
            written = conn.execute(
                insert(events_table).returning(events_table.c.id),
                [{"organization_id": organization, "store_id": store, "type": "order.created", "occurred_at": now,
                  "data": json.dumps({"n": n, "order": "x" * 400})} for n in range(10)],
            ).scalars().all()
        before = _pages(hub, written)
        events.sequence_events(hub.engine)
        after = _pages(hub, written)
        moved += sum(before[event] != after[event] for event in written)
    assert moved < 0.35 * 200


def _pages(hub, event_ids: list[int]) -> dict[int, int]:
    with hub.engine.connect() as conn:
        rows = conn.execute(text("SELECT id, (ctid::text::point)[0]::int FROM events WHERE id = ANY(:ids)"), {"ids": event_ids})
        return dict(rows.all())
