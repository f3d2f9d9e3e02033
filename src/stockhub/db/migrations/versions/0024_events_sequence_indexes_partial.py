"""events' sequence indexes hold numbered events only: an event is written unnumbered and numbered
after commit, so each of the three indexed its NULL once on insert and its number again on
numbering; every reader asks for `sequence > n` (or min/max), which the partial indexes answer

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-01 17:20:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0024'
down_revision = '0023'
branch_labels = None
depends_on = None

INDEXES = {
    'uq_events_sequence': (['sequence'], True),
    'ix_events_store_id_sequence': (['store_id', 'sequence'], False),
    'ix_events_organization_id_sequence': (['organization_id', 'sequence'], False),
}


def upgrade() -> None:
    _rebuild(sa.text('sequence IS NOT NULL'))


def downgrade() -> None:
    _rebuild(None)


def _rebuild(where) -> None:
    with op.batch_alter_table('events', schema=None) as batch_op:
        for name, (columns, unique) in INDEXES.items():
            batch_op.drop_index(name)
            batch_op.create_index(name, columns, unique=unique, sqlite_where=where, postgresql_where=where)
