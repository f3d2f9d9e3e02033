"""Bring a database to the newest schema with Alembic (used by `stockhub serve` and the tests)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine

from stockhub.db.locks import lock_migrations

log = logging.getLogger("stockhub.migrate")

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(engine_connection=None, storage_root: Path | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = engine_connection
    config.attributes["storage_root"] = storage_root  # data migrations of stored file paths (0009)
    return config


def upgrade(engine: Engine, storage_root: Path | None = None, target: str = "head") -> None:
    """`storage_root`: the local file storage's folder, so absolute upload paths under it become keys.

    Quiet when the database is already there (every CLI command calls this); when a migration
    runs, Alembic's own chatter is kept down and one line says what changed."""
    config = alembic_config(None, storage_root)
    wanted = set(ScriptDirectory.from_config(config).get_revisions(target))
    wanted_ids = {script.revision for script in wanted}
    with engine.connect() as conn:
        current = set(MigrationContext.configure(conn).get_current_heads())
    if current == wanted_ids:
        return
    alembic_log = logging.getLogger("alembic")
    level = alembic_log.level
    alembic_log.setLevel(logging.WARNING)
    try:
        with _migrating(engine) as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, target)
    finally:
        alembic_log.setLevel(level)
    log.info(
        "migrated the database %s from %s to %s",
        engine.url.render_as_string(hide_password=True),
        ", ".join(sorted(current)) or "empty",
        ", ".join(sorted(wanted_ids)),
    )


def downgrade(engine: Engine, target: str) -> None:
    with _migrating(engine) as conn:
        command.downgrade(alembic_config(conn), target)


@contextmanager
def _migrating(engine: Engine) -> Iterator[Connection]:
    """One transaction for a migration. On SQLite, batch migrations copy and drop tables that
    others reference, so foreign keys are checked once, at the end, instead of on every DROP."""
    with engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        if sqlite:  # outside any transaction, where the pragma takes effect
            conn.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")
        try:
            conn = conn.execution_options(sqlite_begin="IMMEDIATE")
            lock_migrations(conn)
            yield conn
            if sqlite and conn.exec_driver_sql("PRAGMA foreign_key_check").first() is not None:
                conn.rollback()
                raise RuntimeError("the migration left rows whose foreign keys point nowhere: nothing was changed")
            conn.commit()
        finally:
            if sqlite:
                conn.rollback()
                conn.connection.driver_connection.execute("PRAGMA foreign_keys=ON")


def revision(engine: Engine, message: str) -> None:
    """Autogenerate a new migration from the difference between the tables and the database."""
    with engine.connect() as conn:
        command.revision(alembic_config(conn), message=message, autogenerate=True)
