"""The migrations build exactly the schema the code declares, on both engines."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from stockhub.db.engine import make_engine
from stockhub.db.tables import metadata


def test_migrated_database_matches_the_tables(database_url):
    engine = make_engine(database_url)
    with engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
    engine.dispose()
    assert differences == []


def test_nodes_starting_together_migrate_a_new_postgresql_database_once(empty_postgres_url):
    """A fleet's nodes all migrate at start: on an empty database one builds the schema, the
    others wait for it and find it current (no duplicate-table error kills a node)."""
    from concurrent.futures import ThreadPoolExecutor

    from sqlalchemy import text

    from stockhub.db.migrate import upgrade

    engines = [make_engine(empty_postgres_url) for _ in range(4)]
    try:
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(upgrade, engines))  # raises if any of them failed
        with engines[0].connect() as conn:
            versions = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
            differences = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
        assert len(versions) == 1 and differences == []
    finally:
        for engine in engines:
            engine.dispose()


def test_inventory_events_written_before_0021_read_the_same_after_it_and_back(request, tmp_path):
    """0021 moves each inventory.updated event's changes from inventory_changes rows into the
    event's own row: events written before it read the same changes after it (in identifier
    order), and a downgrade gives the rows back, on both engines."""
    from datetime import datetime

    from sqlalchemy import text

    from stockhub.db.migrate import downgrade, upgrade
    from stockhub.services.events import changes_of

    urls = {"sqlite": f"sqlite:///{tmp_path / 'old.sqlite3'}", "postgresql": request.getfixturevalue("empty_postgres_url")}
    changes = [  # as written before 0021, not in identifier order
        (1, "B2", None, 4, 0, 1, False, 699, "GBP", None),
        (1, "A1", 3, 5, 2, 0, True, 1000, "EUR", 250),
        (2, "C3", 0, 1, 0, 0, False, 5, "GBP", None),
    ]
    for kind, url in urls.items():
        engine = make_engine(url)
        try:
            upgrade(engine, target="0020")
            with engine.begin() as conn:
                conn.execute(text("INSERT INTO organizations (id, name, created_at) VALUES (1, 'Old', :now)"), {"now": datetime(2026, 11, 1)})
                for number, kind_of in ((1, "inventory.updated"), (2, "inventory.updated"), (3, "upload.processed")):
                    conn.execute(
                        text("INSERT INTO events (id, organization_id, store_id, type, sequence, occurred_at, data, change_count) "
                             "VALUES (:id, 1, 7, :type, :id, :now, '{}', NULL)"),
                        {"id": number, "type": kind_of, "now": datetime(2026, 11, 1)},
                    )
                conn.execute(
                    text("INSERT INTO inventory_changes (event_id, identifier, on_hand_before, on_hand, committed, safety_stock, expired, "
                         "price_minor, currency, promotion_minor) VALUES (:e, :i, :b, :h, :c, :s, :x, :p, :cur, :promo)"),
                    [dict(zip(("e", "i", "b", "h", "c", "s", "x", "p", "cur", "promo"), row)) for row in changes],
                )
            upgrade(engine)
            with engine.connect() as conn:
                rows = conn.execute(text("SELECT id, type FROM events ORDER BY id")).all()
                read = {number: [tuple(change) for change in found] for number, found in changes_of(conn, rows).items()}
            assert read == {1: [tuple(changes[1][1:]), tuple(changes[0][1:])], 2: [tuple(changes[2][1:])]}, kind
            downgrade(engine, "0020")
            with engine.connect() as conn:
                back = conn.execute(text("SELECT * FROM inventory_changes ORDER BY event_id, identifier")).all()
            assert [(r[0], r[1], r[2], r[3], r[4], r[5], bool(r[6]), *r[7:]) for r in back] == sorted(changes, key=lambda r: (r[0], r[1])), kind
            upgrade(engine)
        finally:
            engine.dispose()


def test_an_ingests_event_changes_are_compressed_with_lz4_and_read_back_whole(empty_postgres_url):
    """0023: on PostgreSQL, events.changes is compressed with lz4 (inserting 200,000 changes took
    0.30 s under pglz, 0.05 s under lz4); large changes read back as written, also after a downgrade."""
    from datetime import datetime

    from sqlalchemy import text

    from stockhub.db.migrate import downgrade, upgrade

    engine = make_engine(empty_postgres_url)
    compression = text("SELECT attcompression FROM pg_attribute WHERE attrelid = 'events'::regclass AND attname = 'changes'")
    written = '{"identifier": [' + ", ".join(f'"{n:014d}"' for n in range(5000)) + "]}"  # ~90 KB: stored compressed, out of line
    try:
        upgrade(engine)
        with engine.begin() as conn:
            assert conn.execute(compression).scalar_one() == "l"  # lz4
            conn.execute(text("INSERT INTO organizations (id, name, created_at) VALUES (1, 'Big', :now)"), {"now": datetime(2026, 12, 1)})
            conn.execute(
                text("INSERT INTO events (organization_id, type, occurred_at, data, changes) VALUES (1, 'inventory.updated', :now, '{}', :changes)"),
                {"now": datetime(2026, 12, 1), "changes": written},
            )
            assert conn.execute(text("SELECT pg_column_compression(changes) FROM events")).scalar_one() == "lz4"
        downgrade(engine, "0022")
        with engine.connect() as conn:
            assert conn.execute(compression).scalar_one() in ("", "\x00")  # the server's default, as before
            assert conn.execute(text("SELECT changes FROM events")).scalar_one() == written
    finally:
        engine.dispose()
