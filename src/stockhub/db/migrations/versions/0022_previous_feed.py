"""a store's last applied stock file, for diffing the next one against it

Revision ID: 0022_previous_feed
Revises: 0020
Create Date: 2026-11-30 20:00:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0022'
down_revision = '0021'
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table(
        'previous_feeds',
        sa.Column('store_id', Id, nullable=False),
        sa.Column('upload_id', Id, nullable=False),
        sa.Column('applied_at', sa.DateTime(), nullable=False),
        sa.Column('event_watermark', sa.BigInteger(), nullable=False),
        sa.Column('means_available', sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint('store_id', name=op.f('pk_previous_feeds')),
    )


def downgrade() -> None:
    op.drop_table('previous_feeds')
