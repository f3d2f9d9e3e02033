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
