"""availability: safety stock (store default, per-product override), location groups, shipping methods

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30 11:00:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.add_column('stores', sa.Column('safety_stock', sa.Integer(), nullable=False, server_default='0'))
    # null: the level follows its store's default; stock_levels.safety_stock is the one in force
    op.add_column('stock_levels', sa.Column('safety_stock_override', sa.Integer(), nullable=True))
    op.create_table(
        'location_groups',
        sa.Column('id', Id, primary_key=True),
        sa.Column('organization_id', Id, sa.ForeignKey('organizations.id', name='fk_location_groups_organization_id_organizations'), nullable=False),
        sa.Column('name', sa.String(200), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.Column('stores_event_id', Id, nullable=True),
        sa.PrimaryKeyConstraint('id', name='pk_location_groups'),
    )
    op.create_index('ix_location_groups_organization_id', 'location_groups', ['organization_id'])
    op.create_table(
        'location_group_stores',
        sa.Column('group_id', Id, sa.ForeignKey('location_groups.id', name='fk_location_group_stores_group_id_location_groups'), nullable=False),
        sa.Column('store_id', Id, sa.ForeignKey('stores.id', name='fk_location_group_stores_store_id_stores'), nullable=False),
        sa.PrimaryKeyConstraint('group_id', 'store_id', name='pk_location_group_stores'),
    )
    op.create_index('ix_location_group_stores_store_id', 'location_group_stores', ['store_id'])
    op.create_table(
        'shipping_methods',
        sa.Column('id', Id, primary_key=True),
        sa.Column('organization_id', Id, sa.ForeignKey('organizations.id', name='fk_shipping_methods_organization_id_organizations'), nullable=False),
        sa.Column('name', sa.String(200), nullable=False),
        sa.Column('price_minor', sa.BigInteger(), nullable=False),
        sa.Column('currency', sa.String(3), nullable=False),
        sa.Column('min_days', sa.Integer(), nullable=False),
        sa.Column('max_days', sa.Integer(), nullable=False),
        sa.Column('countries', sa.Text(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id', name='pk_shipping_methods'),
    )
    op.create_index('ix_shipping_methods_organization_id', 'shipping_methods', ['organization_id'])


def downgrade() -> None:
    op.drop_table('shipping_methods')
    op.drop_table('location_group_stores')
    op.drop_table('location_groups')
    with op.batch_alter_table('stock_levels') as batch_op:
        batch_op.drop_column('safety_stock_override')
    with op.batch_alter_table('stores') as batch_op:
        batch_op.drop_column('safety_stock')
