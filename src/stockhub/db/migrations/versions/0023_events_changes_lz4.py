"""events.changes compressed with lz4 on PostgreSQL: an ingest's inventory.updated rows carry
~25 KB of changes each; inserting 200,000 changes (10 MB, varied counts and prices) took 0.30 s
under pglz and 0.05 s under lz4, for 19% more on disk (docs/benchmarks.md, Issue 13, ninth part)

Only values written from now on are compressed so; the rows before stay readable as they are.
A server built without lz4 (or older than 14) keeps its default (pglz).

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-01 15:40:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0023'
down_revision = '0022'
branch_labels = None
depends_on = None


def upgrade() -> None:
    _compress_changes("lz4")


def downgrade() -> None:
    _compress_changes("DEFAULT")  # the server's default_toast_compression, as before


def _compress_changes(method: str) -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql" or bind.dialect.server_version_info < (14,):
        return
    try:
        with bind.begin_nested():  # a server without lz4 refuses it: that refusal alone is undone
            op.execute(sa.text(f"ALTER TABLE events ALTER COLUMN changes SET COMPRESSION {method}"))
    except sa.exc.DBAPIError:
        pass
