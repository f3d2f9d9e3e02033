"""export presets and column mapping: a store's location name and column mapping, what an upload
recognised and skipped; identifiers up to 64 characters (SKUs keep their characters)

Revision ID: 0017
Revises: 0015
Create Date: 2026-11-30 13:20:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0017'
down_revision = '0015'
branch_labels = None
depends_on = None

IDENTIFIER_TABLES = ('stock_levels', 'stock_movements', 'order_lines', 'catalog_products', 'inventory_changes')


def upgrade() -> None:
    with op.batch_alter_table('stores', schema=None) as batch_op:
        batch_op.add_column(sa.Column('location_name', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('column_mapping', sa.Text(), nullable=True))
    with op.batch_alter_table('uploads', schema=None) as batch_op:
        batch_op.add_column(sa.Column('preset', sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column('skipped_count', sa.Integer(), nullable=True))
    for table in IDENTIFIER_TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column('identifier', existing_type=sa.String(length=40), type_=sa.String(length=64), existing_nullable=False)


def downgrade() -> None:
    for table in IDENTIFIER_TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column('identifier', existing_type=sa.String(length=64), type_=sa.String(length=40), existing_nullable=False)
    with op.batch_alter_table('uploads', schema=None) as batch_op:
        batch_op.drop_column('skipped_count')
        batch_op.drop_column('preset')
    with op.batch_alter_table('stores', schema=None) as batch_op:
        batch_op.drop_column('column_mapping')
        batch_op.drop_column('location_name')
