"""partner webhooks: a subscription may be a partner's (for its connected store), and an
event may be a partner's (store.connected), seen only by that partner and the organization

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23 14:32:54.897540
"""

from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('partner_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_events_partner_id_partners'), 'partners', ['partner_id'], ['id'])

    with op.batch_alter_table('webhook_subscriptions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('partner_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_webhook_subscriptions_partner_id_partners'), 'partners', ['partner_id'], ['id'])


def downgrade() -> None:
    with op.batch_alter_table('webhook_subscriptions', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_webhook_subscriptions_partner_id_partners'), type_='foreignkey')
        batch_op.drop_column('partner_id')

    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_events_partner_id_partners'), type_='foreignkey')
        batch_op.drop_column('partner_id')
