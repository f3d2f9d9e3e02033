"""events are numbered after commit by one sequencer: one numbering for every stream, no
per-stream counter row that every writer of a store must lock

Revision ID: 0012
Revises: 0009
Create Date: 2026-11-30 10:30:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0012'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index('uq_events_stream_sequence')
        batch_op.alter_column('sequence', existing_type=sa.BigInteger(), nullable=True)
    # Existing events keep their relative order: renumber them by id, one numbering for all.
    op.execute(
        "UPDATE events SET sequence = (SELECT COUNT(*) FROM events AS earlier WHERE earlier.id <= events.id)"
    )
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_column('stream')
        batch_op.create_index('uq_events_sequence', ['sequence'], unique=True)
        batch_op.create_index('ix_events_store_id_sequence', ['store_id', 'sequence'], unique=False)
        batch_op.create_index('ix_events_organization_id_sequence', ['organization_id', 'sequence'], unique=False)
        batch_op.create_index(
            'ix_events_unsequenced', ['id'], unique=False,
            sqlite_where=sa.text('sequence IS NULL'), postgresql_where=sa.text('sequence IS NULL'),
        )
    op.drop_table('event_streams')


def downgrade() -> None:
    op.create_table(
        'event_streams',
        sa.Column('stream', sa.String(length=40), nullable=False),
        sa.Column('last_sequence', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('stream'),
    )
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index('ix_events_unsequenced')
        batch_op.drop_index('ix_events_organization_id_sequence')
        batch_op.drop_index('ix_events_store_id_sequence')
        batch_op.drop_index('uq_events_sequence')
        batch_op.add_column(sa.Column('stream', sa.String(length=40), nullable=True))
    op.execute("UPDATE events SET stream = CASE WHEN store_id IS NULL THEN 'organization:' || organization_id ELSE 'store:' || store_id END")
    op.execute("UPDATE events SET sequence = id WHERE sequence IS NULL")
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.alter_column('stream', existing_type=sa.String(length=40), nullable=False)
        batch_op.alter_column('sequence', existing_type=sa.BigInteger(), nullable=False)
        batch_op.create_index('uq_events_stream_sequence', ['stream', 'sequence'], unique=True)
