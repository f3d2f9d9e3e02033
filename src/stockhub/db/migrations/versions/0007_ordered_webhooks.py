"""ordered webhook delivery: a subscription may ask for each store's events in sequence order;
indexes for claiming deliveries fairly per subscription

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 10:10:00.000000
"""

from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('webhook_subscriptions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('ordered', sa.Boolean(), server_default=sa.false(), nullable=False))

    with op.batch_alter_table('webhook_deliveries', schema=None) as batch_op:
        batch_op.create_index('ix_webhook_deliveries_subscription_id_next_attempt_at', ['subscription_id', 'next_attempt_at'], unique=False)
        batch_op.create_index(
            'ix_webhook_deliveries_delivering', ['subscription_id'], unique=False,
            postgresql_where=sa.text("status = 'delivering'"), sqlite_where=sa.text("status = 'delivering'"),
        )


def downgrade() -> None:
    with op.batch_alter_table('webhook_deliveries', schema=None) as batch_op:
        batch_op.drop_index('ix_webhook_deliveries_delivering')
        batch_op.drop_index('ix_webhook_deliveries_subscription_id_next_attempt_at')

    with op.batch_alter_table('webhook_subscriptions', schema=None) as batch_op:
        batch_op.drop_column('ordered')
