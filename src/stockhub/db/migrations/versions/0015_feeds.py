"""inventory feeds (push and pull, Jetti's dialect): providers, feeds, feed items, pushed batches,
daily item-update counts per organization, uploads marked with their feed

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-30 13:10:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    with op.batch_alter_table('organizations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('daily_item_limit', sa.Integer(), nullable=True))
    with op.batch_alter_table('uploads', schema=None) as batch_op:
        batch_op.add_column(sa.Column('feed_id', Id, nullable=True))
    op.create_table(
        'dropship_providers',
        sa.Column('id', Id, nullable=False),
        sa.Column('organization_id', Id, nullable=False),
        sa.Column('store_id', Id, nullable=True),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['organization_id'], ['organizations.id'], name='fk_dropship_providers_organization_id_organizations'),
        sa.ForeignKeyConstraint(['store_id'], ['stores.id'], name='fk_dropship_providers_store_id_stores'),
        sa.PrimaryKeyConstraint('id', name='pk_dropship_providers'),
    )
    op.create_index('ix_dropship_providers_organization_id', 'dropship_providers', ['organization_id'], unique=False)
    op.create_table(
        'feeds',
        sa.Column('id', Id, nullable=False),
        sa.Column('organization_id', Id, nullable=False),
        sa.Column('store_id', Id, nullable=False),
        sa.Column('provider_id', Id, nullable=True),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('kind', sa.String(length=10), nullable=False),
        sa.Column('auto_connect', sa.String(length=20), nullable=False),
        sa.Column('sku_match', sa.String(length=20), nullable=False),
        sa.Column('source_url', sa.String(length=2000), nullable=True),
        sa.Column('credentials_sealed', sa.Text(), nullable=True),
        sa.Column('format', sa.String(length=10), nullable=True),
        sa.Column('mapping', sa.Text(), nullable=True),
        sa.Column('fetch_frequency', sa.Integer(), nullable=False),
        sa.Column('delta', sa.Boolean(), nullable=False),
        sa.Column('missing_items', sa.String(length=20), nullable=False),
        sa.Column('enabled', sa.Boolean(), nullable=False),
        sa.Column('next_fetch_at', sa.DateTime(), nullable=True),
        sa.Column('lease_until', sa.DateTime(), nullable=True),
        sa.Column('worker_id', sa.String(length=100), nullable=True),
        sa.Column('failures', sa.Integer(), nullable=False, server_default=sa.text('0')),
        sa.Column('etag', sa.String(length=500), nullable=True),
        sa.Column('last_modified', sa.String(length=100), nullable=True),
        sa.Column('last_fetch_at', sa.DateTime(), nullable=True),
        sa.Column('last_fetch_status', sa.String(length=20), nullable=True),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.Column('last_upload_id', Id, nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['organization_id'], ['organizations.id'], name='fk_feeds_organization_id_organizations'),
        sa.ForeignKeyConstraint(['store_id'], ['stores.id'], name='fk_feeds_store_id_stores'),
        sa.ForeignKeyConstraint(['provider_id'], ['dropship_providers.id'], name='fk_feeds_provider_id_dropship_providers'),
        sa.PrimaryKeyConstraint('id', name='pk_feeds'),
    )
    op.create_index('ix_feeds_store_id', 'feeds', ['store_id'], unique=False)
    op.create_index('ix_feeds_next_fetch_at', 'feeds', ['next_fetch_at'], unique=False)
    op.create_table(
        'feed_items',
        sa.Column('id', Id, nullable=False),
        sa.Column('feed_id', Id, nullable=False),
        sa.Column('organization_id', Id, nullable=False),
        sa.Column('store_id', Id, nullable=False),
        sa.Column('external_id', sa.String(length=255), nullable=False),
        sa.Column('vendor_sku', sa.String(length=255), nullable=True),
        sa.Column('barcode', sa.String(length=64), nullable=True),
        sa.Column('sku_folded', sa.String(length=255), nullable=True),
        sa.Column('quantity', sa.Integer(), nullable=False),
        sa.Column('price_minor', sa.BigInteger(), nullable=True),
        sa.Column('currency', sa.String(length=3), nullable=True),
        sa.Column('identifier', sa.String(length=64), nullable=True),
        sa.Column('connected_by', sa.String(length=10), nullable=True),
        sa.Column('status', sa.String(length=10), nullable=False),
        sa.Column('reason', sa.Text(), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['feed_id'], ['feeds.id'], name='fk_feed_items_feed_id_feeds'),
        sa.PrimaryKeyConstraint('id', name='pk_feed_items'),
        sa.UniqueConstraint('feed_id', 'external_id', name='uq_feed_items_feed_id_external_id'),
    )
    op.create_index('ix_feed_items_store_id_sku_folded', 'feed_items', ['store_id', 'sku_folded'], unique=False)
    op.create_index('ix_feed_items_feed_id_status', 'feed_items', ['feed_id', 'status'], unique=False)
    op.create_table(
        'feed_batches',
        sa.Column('id', Id, nullable=False),
        sa.Column('organization_id', Id, nullable=False),
        sa.Column('store_id', Id, nullable=False),
        sa.Column('feed_id', Id, nullable=False),
        sa.Column('status', sa.String(length=20), nullable=False),
        sa.Column('items', sa.Text(), nullable=False),
        sa.Column('result', sa.Text(), nullable=True),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('lease_until', sa.DateTime(), nullable=True),
        sa.Column('worker_id', sa.String(length=100), nullable=True),
        sa.Column('error', sa.Text(), nullable=True),
        sa.Column('received_at', sa.DateTime(), nullable=False),
        sa.Column('finished_at', sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(['feed_id'], ['feeds.id'], name='fk_feed_batches_feed_id_feeds'),
        sa.PrimaryKeyConstraint('id', name='pk_feed_batches'),
    )
    op.create_index('ix_feed_batches_status', 'feed_batches', ['status'], unique=False)
    op.create_index('ix_feed_batches_feed_id_id', 'feed_batches', ['feed_id', 'id'], unique=False)
    op.create_table(
        'item_update_counts',
        sa.Column('organization_id', Id, nullable=False),
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('count', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('organization_id', 'day', name='pk_item_update_counts'),
    )


def downgrade() -> None:
    op.drop_table('item_update_counts')
    op.drop_index('ix_feed_batches_feed_id_id', table_name='feed_batches')
    op.drop_index('ix_feed_batches_status', table_name='feed_batches')
    op.drop_table('feed_batches')
    op.drop_index('ix_feed_items_feed_id_status', table_name='feed_items')
    op.drop_index('ix_feed_items_store_id_sku_folded', table_name='feed_items')
    op.drop_table('feed_items')
    op.drop_index('ix_feeds_next_fetch_at', table_name='feeds')
    op.drop_index('ix_feeds_store_id', table_name='feeds')
    op.drop_table('feeds')
    op.drop_index('ix_dropship_providers_organization_id', table_name='dropship_providers')
    op.drop_table('dropship_providers')
    with op.batch_alter_table('uploads', schema=None) as batch_op:
        batch_op.drop_column('feed_id')
    with op.batch_alter_table('organizations', schema=None) as batch_op:
        batch_op.drop_column('daily_item_limit')
