"""Bring a database to the newest schema with Alembic (used by `stockhub serve` and the tests)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(engine_connection=None, storage_root: Path | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = engine_connection
    config.attributes["storage_root"] = storage_root  # data migrations of stored file paths (0009)
    return config


def upgrade(engine: Engine, storage_root: Path | None = None, target: str = "head") -> None:
    """`storage_root`: the local file storage's folder, so absolute upload paths under it become keys."""
    with engine.connect() as conn:
        conn = conn.execution_options(sqlite_begin="IMMEDIATE")
        command.upgrade(alembic_config(conn, storage_root), target)
        conn.commit()


def revision(engine: Engine, message: str) -> None:
    """Autogenerate a new migration from the difference between the tables and the database."""
    with engine.connect() as conn:
        command.revision(alembic_config(conn), message=message, autogenerate=True)
