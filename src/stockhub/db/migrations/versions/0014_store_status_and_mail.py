"""store status (pending / connected / invalid / disconnected), partner users, and the mail outbox

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-30 10:50:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    with op.batch_alter_table('stores', schema=None) as batch_op:
        batch_op.add_column(sa.Column('status', sa.String(length=20), nullable=False, server_default='pending'))
        batch_op.add_column(sa.Column('status_warnings', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('status_changed_at', sa.DateTime(), nullable=True))
        batch_op.create_index('ix_stores_organization_id_status', ['organization_id', 'status'], unique=False)
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.alter_column('organization_id', existing_type=Id, nullable=True)
        batch_op.add_column(sa.Column('partner_id', Id, nullable=True))
        batch_op.create_foreign_key('fk_users_partner_id_partners', 'partners', ['partner_id'], ['id'])
    op.create_table(
        'mail_outbox',
        sa.Column('id', Id, nullable=False),
        sa.Column('dedupe_key', sa.String(length=200), nullable=False),
        sa.Column('kind', sa.String(length=40), nullable=False),
        sa.Column('organization_id', Id, nullable=False),
        sa.Column('store_id', Id, nullable=False),
        sa.Column('partner_id', Id, nullable=True),
        sa.Column('data', sa.Text(), nullable=False),
        sa.Column('status', sa.String(length=20), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('next_attempt_at', sa.DateTime(), nullable=True),
        sa.Column('lease_until', sa.DateTime(), nullable=True),
        sa.Column('worker_id', sa.String(length=100), nullable=True),
        sa.Column('recipients', sa.Text(), nullable=True),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('sent_at', sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint('id', name='pk_mail_outbox'),
        sa.UniqueConstraint('dedupe_key', name='uq_mail_outbox_dedupe_key'),
    )
    op.create_index('ix_mail_outbox_next_attempt_at', 'mail_outbox', ['next_attempt_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_mail_outbox_next_attempt_at', table_name='mail_outbox')
    op.drop_table('mail_outbox')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_constraint('fk_users_partner_id_partners', type_='foreignkey')
        batch_op.drop_column('partner_id')
        batch_op.alter_column('organization_id', existing_type=Id, nullable=False)
    with op.batch_alter_table('stores', schema=None) as batch_op:
        batch_op.drop_index('ix_stores_organization_id_status')
        batch_op.drop_column('status_changed_at')
        batch_op.drop_column('status_warnings')
        batch_op.drop_column('status')
