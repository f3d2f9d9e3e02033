"""stores: a structured address (two lines, city, postal code, state) beside the coordinates

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 10:00:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # RENAME COLUMN is plain SQL on both engines (SQLite >= 3.25): no table copy under the foreign keys
    op.execute('ALTER TABLE stores RENAME COLUMN address TO address_line1')
    op.execute('ALTER TABLE stores RENAME COLUMN postcode TO postal_code')
    op.add_column('stores', sa.Column('address_line2', sa.String(length=500), nullable=True))
    op.add_column('stores', sa.Column('state', sa.String(length=200), nullable=True))


def downgrade() -> None:
    op.execute('ALTER TABLE stores DROP COLUMN state')  # SQLite >= 3.35
    op.execute('ALTER TABLE stores DROP COLUMN address_line2')
    op.execute('ALTER TABLE stores RENAME COLUMN postal_code TO postcode')
    op.execute('ALTER TABLE stores RENAME COLUMN address_line1 TO address')
