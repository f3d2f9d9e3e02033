"""upload storage keys: `uploads.path` holds a storage key (`uploads/<store>/<name>`, relative to
the file storage's root) instead of an absolute local path

Rows whose absolute path lies under the local storage root (the data folder by default) become
keys; others stay absolute and are still read from where they are (services.uploads.stored_file).
The root comes from `stockhub.db.migrate.upgrade(engine, storage_root)`; without it nothing changes.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 10:20:00
"""

from pathlib import Path

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

uploads = sa.table("uploads", sa.column("id", sa.BigInteger), sa.column("path", sa.String))


def _storage_root() -> Path | None:
    config = op.get_context().config
    root = config.attributes.get("storage_root") if config is not None else None
    return Path(root).resolve() if root is not None else None


def _rewrite(convert) -> None:
    conn = op.get_bind()
    for row in conn.execute(sa.select(uploads.c.id, uploads.c.path)).all():
        new = convert(row.path)
        if new is not None and new != row.path:
            conn.execute(uploads.update().where(uploads.c.id == row.id).values(path=new))


def upgrade() -> None:
    root = _storage_root()
    if root is None:
        return

    def to_key(path: str) -> str | None:
        if not Path(path).is_absolute():
            return None
        try:
            return Path(path).relative_to(root).as_posix()
        except ValueError:
            return None  # outside the storage root: kept absolute, still readable

    _rewrite(to_key)


def downgrade() -> None:
    root = _storage_root()
    if root is None:
        return
    _rewrite(lambda path: None if Path(path).is_absolute() else str(root / path))
